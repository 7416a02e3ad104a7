"""`python -m ki2api.cli ...`: the same as `python -m ki2api ...`."""
import sys

from ki2api.cli import main

sys.exit(main())
