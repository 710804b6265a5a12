# Laptop twin of config/people_10x.py (control of finding 4): 10,000 people (10x events), one filler pool,
# at no and much parallel data (2 runs); baseline: laptop shared_tokens at shared_token_frac 1.
include('../people_10x.py')   # the paper-scale experiment ...
include('base.py')           # ... at laptop scale
out_dir = 'out/laptop/people_10x'
sweep = {'celeb_frac': [0.0, 0.3]}
