# Laptop twin of config/steps_10x.py (control of finding 4): 10x the laptop schedule (30,000 steps), one
# filler pool, scaled down to the point that asks the question: no parallel data, 3 seeds (90,000 run-steps,
# ~90 min on 2 cores); 30,000 x 128 / 16,000 training examples = 240 epochs, 10x the baseline's 24 by design;
# baseline: laptop shared_tokens at shared_token_frac 1, celeb_frac 0.
include('../steps_10x.py')   # the paper-scale experiment ...
include('base.py')           # ... at laptop scale
out_dir = 'out/laptop/steps_10x'
max_iters = 30000
eval_interval = 5000
sweep = {'celeb_frac': [0.0], 'seed': [0, 1, 2]}
