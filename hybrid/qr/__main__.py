"""`python -m hybrid.qr`: the desktop command line (see `hybrid.cli.desktop`)."""

from hybrid.cli.desktop import main

if __name__ == "__main__":
    raise SystemExit(main())
