"""Vigil's shared package. Importing it first (every service, job and the `vigil` command do) sets one process-wide
default before numpy loads: one OpenBLAS thread. numpy's OpenBLAS otherwise starts a worker per core that spin-waits
after every call; on 2 cores that one thread took 35 % of a core in infer, for Kalman matrices of 8 x 8 that gain
nothing from it (`load/bench_realtime.py` measured infer at 46 % of a core with it and 10 % without, at 2 cameras).
Set OPENBLAS_NUM_THREADS yourself to override it."""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
