# Laptop twin of config/people_10x.py (control of finding 4): 10,000 people (10x events), one filler pool,
# scaled down to the point the control reads (no parallel data), 3 seeds, and given 10x the laptop schedule
# (30,000 steps: 30,000 x 128 / 160,000 training examples = 24 epochs, the baseline's 3,000 x 128 / 16,000),
# so that each event is seen as often as in the baseline (90,000 run-steps, ~75 min on 2 cores): at 3,000 steps the
# 10x training set is seen 2.4 times and the model recalls nothing (assets of commit 98558a7: training
# accuracy and ID 0.04). Baseline: laptop shared_tokens at shared_token_frac 1, celeb_frac 0.
include('../people_10x.py')   # the paper-scale experiment ...
include('base.py')           # ... at laptop scale
out_dir = 'out/laptop/people_10x'
max_iters = 30000
eval_interval = 5000
sweep = {'celeb_frac': [0.0], 'seed': [0, 1, 2]}
