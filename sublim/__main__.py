"""`python -m sublim`: the same as the `sublim` command."""

import sys

from sublim.cli import main

sys.exit(main())
