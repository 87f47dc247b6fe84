"""`python -m hybrid.bridge`: the phone as a virtual USB security key (see `hybrid.cli.bridge`)."""

from hybrid.cli.bridge import main

if __name__ == "__main__":
    raise SystemExit(main())
