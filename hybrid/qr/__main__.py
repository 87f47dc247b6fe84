"""`python -m hybrid.qr`: see `hybrid.qr.cli`."""

from hybrid.qr.cli import main

raise SystemExit(main())
