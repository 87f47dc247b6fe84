"""`python -m hybrid.authenticator`: answer a FIDO:/ QR code as the phone (see `cli`)."""

from hybrid.authenticator.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
