# Laptop twin of config/shared_tokens_role.py (finding 4, shared words that keep their role in both languages):
# disjoint, half and fully shared filler words at celeb_frac 0 (the only point finding 4 reads), 3 seeds,
# like config/laptop/shared_tokens.py (random placement) beside it: 9 runs, 27,000 run-steps, ~20 min of
# training on 2 cores (shared_tokens: 770 s for 18,000 run-steps, assets/laptop/shared_tokens/summary.json).
include('../shared_tokens_role.py')   # the paper-scale experiment ...
include('base.py')           # ... at laptop scale
out_dir = 'out/laptop/shared_tokens_role'
sweep = {'shared_token_frac': [0.0, 0.5, 1.0], 'celeb_frac': [0.0], 'seed': [0, 1, 2]}
