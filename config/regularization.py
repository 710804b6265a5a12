# Regularisation as a force: weight decay x learning rate at no and high parallel data, 2 seeds, in
# one lockstep sweep (learning_rate and weight_decay may differ between the runs of a sweep). The CPU
# miniature reached birth-year OOD 0.99 at celeb_frac 0 with lr 1e-2 / weight decay 0.5, the
# paper-scale run 0.71 with lr 3e-3 / 0.1. Pick GPU defaults by ID recall and stability (docs/method.md section 7), not
# by OOD, and report what OOD does across the grid. 48 runs x 12,000 steps.
out_dir = 'out/regularization'
sweep = {'weight_decay': [0.03, 0.1, 0.3, 1.0], 'learning_rate': [1e-3, 3e-3, 1e-2],
         'celeb_frac': [0.0, 0.3], 'seed': [0, 1]}
