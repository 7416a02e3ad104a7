"""`python -m ki2api.cli <command>`."""
from . import main

raise SystemExit(main())
