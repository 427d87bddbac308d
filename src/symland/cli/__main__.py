"""`python -m symland.cli …`: the same as the `symland` command."""

import sys

from symland.cli import main

sys.exit(main())
