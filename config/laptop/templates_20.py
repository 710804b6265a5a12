# Laptop twin of config/templates_20.py (finding 4, extractability): 20 templates per language, one filler pool,
# at celeb_frac 0 (the point finding 4 reads), 3 seeds, 14,250 steps (42,750 run-steps, ~51 min on 2 cores); baseline:
# laptop shared_tokens at shared_token_frac 1.
# 14,250 x 128 / 76,000 training examples = 24.0 epochs, the baseline's (shared_tokens at 1: 3,000 x 128 /
# 16,000 = 24); the scan's epochs and why: config/laptop/templates_02.py.
include('../templates_20.py')   # the paper-scale experiment ...
include('base.py')           # ... at laptop scale
out_dir = 'out/laptop/templates_20'
max_iters = 14250
eval_interval = 2375
sweep = {'celeb_frac': [0.0], 'seed': [0, 1, 2]}
