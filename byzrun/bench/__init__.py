"""`make bench`: byzrun's speed measurements, one module each (none is imported by a run).

python -m byzrun.bench              rounds per model, then every rule (rounds.py, aggregation.py)
python -m byzrun.bench.before       every rule against an earlier git revision (before.py)
python -m byzrun.bench.byzfl        every rule, step and attack ByzFL also has, against ByzFL's
python -m byzrun.bench.gpu_options  the gpu.* options on a CUDA machine (bench/gpu.sh)
"""
