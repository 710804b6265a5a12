# Laptop twin of config/regularization.py: weight decay x learning rate at no and much parallel data,
# one seed (24 runs), at 1,500 steps (not 3,000) to fit the hour.
include('../regularization.py')   # the paper-scale experiment ...
include('base.py')           # ... at laptop scale
out_dir = 'out/laptop/regularization'
max_iters = 1500
sweep = {'weight_decay': [0.03, 0.1, 0.3, 1.0], 'learning_rate': [1e-3, 3e-3, 1e-2], 'celeb_frac': [0.0, 0.3]}
