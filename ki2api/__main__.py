"""`python -m ki2api <command>` (ki2api/cli)."""
from .cli import main

raise SystemExit(main())
