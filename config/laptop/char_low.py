# Laptop twin of config/char_low.py (finding 4, extractability): the char_low tokenizer at no, some and much
# parallel data (3 runs; a character run-step costs ~5x a word one).
include('../char_low.py')   # the paper-scale experiment ...
include('base.py')           # ... at laptop scale
out_dir = 'out/laptop/char_low'
sweep = {'celeb_frac': [0.0, 0.1, 0.3]}
