# Laptop twin of config/balance.py (finding 4, informativeness): src / balanced / imbalanced with no
# parallel data, 2 seeds = 6 runs.
include('../balance.py')   # the paper-scale experiment ...
include('base.py')           # ... at laptop scale
out_dir = 'out/laptop/balance'
sweep = {'variant': ['src', 'balanced', 'imbalanced'], 'celeb_frac': [0.0], 'seed': [0, 1]}
