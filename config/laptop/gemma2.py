# Laptop twin of config/gemma2.py: the laptop main sweep with the Gemma-2 block (12 runs).
include('../gemma2.py')   # the paper-scale experiment ...
include('base.py')           # ... at laptop scale
out_dir = 'out/laptop/gemma2'
sweep = {'celeb_frac': [0.0, 0.06, 0.12, 0.18, 0.24, 0.3], 'seed': [0, 1]}
