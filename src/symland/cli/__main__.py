"""`python -m symland.cli …`: the same as the `symland` command."""

import sys

from symland.cli import main

if __name__ == "__main__":  # importing the module (e.g. to collect doctests) runs nothing
    sys.exit(main())
