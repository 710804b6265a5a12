"""Under pytest-xdist (`-n auto`, the README's command: a worker per core) every worker runs on one torch thread, and so do the
scripts its tests start (they inherit OMP_NUM_THREADS): two workers of two threads each on two cores would
wait for each other at every operation. Run alone, the tests keep torch's own thread count."""
import os

if os.environ.get('PYTEST_XDIST_WORKER'):
    os.environ['OMP_NUM_THREADS'] = '1'
    import torch
    torch.set_num_threads(1)
