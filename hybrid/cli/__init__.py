"""The command lines: `python -m hybrid.qr` (desktop, and its `demo`) and
`python -m hybrid.authenticator` (phone), sharing flags, logging and exit codes (`common`)."""
