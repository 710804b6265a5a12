# Laptop twin of config/selection_long.py (finding 5, checkpoint selection where OOD peaks and then falls while
# ID stays high): steps_10x's long schedule (in whose logs OOD falls from 0.343 at 5,000 steps to 0.257 at
# 30,000) with parallel data, 6 runs x 15,000 steps (~1 hour of steps on 2 cores), a snapshot every 1,250 steps.
# Analyze every checkpoint: python analyze.py out/laptop/selection_long --max_ckpts=0
include('../selection_long.py')   # the paper-scale experiment ...
include('base.py')                # ... at laptop scale
out_dir = 'out/laptop/selection_long'
max_iters = 15000
eval_interval = 500
n_ckpts_linear = 12
