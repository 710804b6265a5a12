# Laptop twin of config/sweep_celeb.py (findings 1, 2, 3, 5): 6 celeb_frac values x 2 seeds = 12 runs in lockstep.
include('../sweep_celeb.py')   # the paper-scale experiment ...
include('base.py')           # ... at laptop scale
out_dir = 'out/laptop/sweep_celeb'
sweep = {'celeb_frac': [0.0, 0.06, 0.12, 0.18, 0.24, 0.3], 'seed': [0, 1]}
