# Finding 5, checkpoint selection in the regime its claim is about (docs/verdicts.md change C3): trained long
# enough that OOD peaks and then falls while ID stays high, with evenly spaced late checkpoints to pick among.
# At this scale OOD peaks at 5,000-8,000 of 12,000 steps (the paper-scale sweep_celeb of data version 1).
include('selection.py')
out_dir = 'out/selection_long'
sweep = {'celeb_frac': [0.04, 0.08, 0.12], 'seed': [0, 1]}
n_ckpts_linear = 12        # a snapshot every 1,000 steps besides the log-spaced ones
