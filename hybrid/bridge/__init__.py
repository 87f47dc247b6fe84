"""The phone as a virtual USB security key: CTAP2 answered by the phone over hybrid.

`responder` answers the CTAP2 commands a program sends the key (getInfo here, makeCredential and
getAssertion with one phone ceremony each).
"""
