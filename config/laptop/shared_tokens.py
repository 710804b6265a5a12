# Laptop twin of config/shared_tokens.py (finding 4, extractability at the token level): disjoint, half and
# fully shared filler words at celeb_frac 0 (the only point finding 4 reads), 3 seeds (9 runs, 27,000 run-steps,
# ~20 min on 2 cores). Shared words in random slots (the default shared_token_mode); the variant in which a
# shared word keeps its role is config/laptop/shared_tokens_role.py. At shared_token_frac 1 it is the 5-template
# point of the templates scan and the baseline of people_10x and steps_10x: 16,000 training examples, 3,000 steps
# of 128 = 24 epochs.
include('../shared_tokens.py')   # the paper-scale experiment ...
include('base.py')           # ... at laptop scale
out_dir = 'out/laptop/shared_tokens'
sweep = {'shared_token_frac': [0.0, 0.5, 1.0], 'celeb_frac': [0.0], 'seed': [0, 1, 2]}
