"""`python -m byzrun.report --results-dir DIR`: the tables of the runs under DIR/runs/ (see byzrun.report)."""

import sys

from byzrun.report import main

sys.exit(main())
