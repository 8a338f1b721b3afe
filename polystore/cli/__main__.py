"""``python -m polystore.cli``."""

from polystore.cli import main

raise SystemExit(main())
