# Laptop twin of config/shared_tokens.py (finding 4, extractability at the token level): disjoint, half and
# fully shared filler words, at no and much parallel data (6 runs).
include('../shared_tokens.py')   # the paper-scale experiment ...
include('base.py')           # ... at laptop scale
out_dir = 'out/laptop/shared_tokens'
sweep = {'shared_token_frac': [0.0, 0.5, 1.0], 'celeb_frac': [0.0, 0.3]}
