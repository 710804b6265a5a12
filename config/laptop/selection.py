# Laptop twin of config/selection.py (finding 5): run and checkpoint selection over 6 celeb_frac x 4 lang_ratio
# = 24 runs, at 2,000 steps (not 3,000) to fit the hour.
include('../selection.py')   # the paper-scale experiment ...
include('base.py')           # ... at laptop scale
out_dir = 'out/laptop/selection'
max_iters = 2000
sweep = {'celeb_frac': [0.0, 0.04, 0.08, 0.12, 0.16, 0.2], 'lang_ratio': [1.0, 2.0, 5.0, 20.0]}
