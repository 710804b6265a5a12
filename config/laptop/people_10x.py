# Laptop twin of config/people_10x.py (control of finding 4): 10,000 people (10x events), one filler pool,
# scaled down to the one run the control reads (no parallel data, one seed) and given 10x the laptop
# schedule (30,000 steps), so that each event is seen as often as in the baseline: at 3,000 steps the
# 10x training set is seen 2.4 times and the model recalls nothing (assets of commit 98558a7: training
# accuracy and ID 0.04). Baseline: laptop shared_tokens at shared_token_frac 1, celeb_frac 0.
include('../people_10x.py')   # the paper-scale experiment ...
include('base.py')           # ... at laptop scale
out_dir = 'out/laptop/people_10x'
max_iters = 30000
eval_interval = 5000
sweep = {'celeb_frac': [0.0]}
