"""`python -m ki2api ...`: hands off to the command line in ki2api.cli."""
import sys

from ki2api.cli import main

sys.exit(main())
