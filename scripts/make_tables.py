"""The same as `python -m byzrun.report` (what `make tables` runs): the tables of the runs under
<results-dir>/runs/ (see byzrun.report). Kept for existing commands.

Usage: python scripts/make_tables.py [--results-dir DIR] [--out DIR] [--rows KEY] [--cols KEY]
       [--metric last-k|final|max] [--k K] [--paper-numbers CSV]
"""

import sys

from byzrun.report import main

if __name__ == "__main__":
    sys.exit(main())
