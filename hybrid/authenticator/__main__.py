"""`python -m hybrid.authenticator`: the phone command line (see `hybrid.cli.phone`)."""

from hybrid.cli.phone import main

if __name__ == "__main__":
    raise SystemExit(main())
