# Laptop twin of config/templates_10.py (finding 4, extractability): 10 templates per language, one filler pool,
# at celeb_frac 0 (the point finding 4 reads), 3 seeds, 6,750 steps (20,250 run-steps, ~17 min on 2 cores); baseline:
# laptop shared_tokens at shared_token_frac 1.
# 6,750 x 128 / 36,000 training examples = 24.0 epochs, the baseline's (shared_tokens at 1: 3,000 x 128 /
# 16,000 = 24); the scan's epochs and why: config/laptop/templates_02.py.
include('../templates_10.py')   # the paper-scale experiment ...
include('base.py')           # ... at laptop scale
out_dir = 'out/laptop/templates_10'
max_iters = 6750
eval_interval = 1125
sweep = {'celeb_frac': [0.0], 'seed': [0, 1, 2]}
