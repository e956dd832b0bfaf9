"""`python -m byzrun.bench`: the rounds per model and every aggregation rule (rounds.py)."""

from byzrun.bench.rounds import main

main()
