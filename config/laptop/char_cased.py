# Laptop twin of config/char_cased.py (finding 4, extractability): the one run the check reads (no parallel
# data, one seed), given 10,000 steps: a character model learns its facts late (~5x longer sequences):
# the 3-run, 3,000-step twin (commit 3cb38e4, 42 min of training) ended at char_low training
# accuracy 0.73, ID 0.62 at celeb_frac 0, still rising. A character run-step costs ~8x a word one here
# (3.9 run-steps/s): 10,000 steps is ~45 min of training.
include('../char_cased.py')   # the paper-scale experiment ...
include('base.py')           # ... at laptop scale
out_dir = 'out/laptop/char_cased'
max_iters = 10000
eval_interval = 2500
sweep = {'celeb_frac': [0.0]}
