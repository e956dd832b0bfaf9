"""`make tables`: the papers' tables and plots from the runs under a results folder (see byzrun.report).

Usage: python scripts/make_tables.py [--results-dir DIR] [--paper-numbers CSV]
"""

import sys

from byzrun.report import main

if __name__ == "__main__":
    sys.exit(main())
