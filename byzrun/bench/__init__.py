"""`make bench`: byzrun's speed measurements, one module each (none is imported by a run).

python -m byzrun.bench              rounds per model, then every rule (rounds.py, aggregation.py)
python -m byzrun.bench.before       every rule against an earlier git revision (before.py)
python -m byzrun.bench.byzfl        every rule, step and attack ByzFL also has, against ByzFL's
python -m byzrun.bench.gpu_options  the gpu.* options on a CUDA machine (bench/gpu.sh)
python -m byzrun.bench.bf16         how far gpu.bf16 moves the gradients and ALIE's statistics
python -m byzrun.bench.machine      the machine and its load, before the first step and after the last
python -m byzrun.bench.fresh_clone  make install && make test in a fresh clone, timed (not in make bench)
"""
