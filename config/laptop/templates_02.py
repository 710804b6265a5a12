# Laptop twin of config/templates_02.py (finding 4, extractability): 2 templates per language, one filler pool,
# at celeb_frac 0 (the point finding 4 reads), 3 seeds (9,000 run-steps: 39 min on a 2-core AVX2 EPYC); baseline: laptop
# shared_tokens at shared_token_frac 1.
# Epochs (max_iters x batch_size / training examples at celeb_frac 0, 4 x 1,000 people x (templates - 1)) of the
# templates scan: 2 templates 3,000 x 128 / 4,000 = 96; 5 (shared_tokens at 1) 3,000 x 128 / 16,000 = 24;
# 10 6,750 x 128 / 36,000 = 24.0; 20 14,250 x 128 / 76,000 = 24.0. Each point gets at least the baseline's 24
# epochs and 3,000 steps (2 templates keeps 96: fewer steps would cut its schedule to a quarter, and at this
# scale OOD is still at its highest at the end (final OOD within 0.02 of the run's best evaluation in 23 of 24
# selection and 6 of 6 shared_tokens runs), so the extra epochs favour 2 templates, against the finding).
include('../templates_02.py')   # the paper-scale experiment ...
include('base.py')           # ... at laptop scale
out_dir = 'out/laptop/templates_02'
sweep = {'celeb_frac': [0.0], 'seed': [0, 1, 2]}
