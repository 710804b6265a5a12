# A CPU-sized miniature of regularization.py, stacked on config/quick.py:
#   python train.py config/quick.py config/quick_regularization.py
# weight decay x learning rate at no and high parallel data, one seed, 1,500 steps: 8 runs in lockstep.
out_dir = 'out/quick_regularization'
max_iters = 1500
eval_interval = 250
sweep = {'weight_decay': [0.1, 0.5], 'learning_rate': [3e-3, 1e-2], 'celeb_frac': [0.0, 0.3]}
