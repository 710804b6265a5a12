# Laptop twin of config/templates_10.py (finding 4, extractability): 10 templates per language, one
# filler pool, at no, some and much parallel data (3 runs); baseline: laptop shared_tokens at shared_token_frac 1.
include('../templates_10.py')   # the paper-scale experiment ...
include('base.py')           # ... at laptop scale
out_dir = 'out/laptop/templates_10'
sweep = {'celeb_frac': [0.0, 0.1, 0.3]}
