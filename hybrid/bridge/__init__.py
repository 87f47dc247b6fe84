"""The phone as a virtual USB security key for every Linux program (`python -m hybrid.bridge`).

To programs it is a FIDO HID device made through the kernel's uhid (`uhid`, `uhid_events`);
its CTAPHID side (`key`) drives the sans-I/O `hybrid.ctaphid` machine; `responder` answers each
CTAP2 request, getInfo itself and the rest with one hybrid ceremony each (the phone's reply
byte for byte), routing browsers' probes as `probes` explains; `daemon.Bridge` runs it all and
shows the QR code through a `presenter` (a Tk `window`, or the terminal). `loopback` is a
software hidraw for tests and benchmarks on kernels without uhid.
"""
