# Laptop twin of config/char_cased.py (finding 4, extractability): the char_cased tokenizer at no, some and much
# parallel data (3 runs; a character run-step costs ~5x a word one).
include('../char_cased.py')   # the paper-scale experiment ...
include('base.py')           # ... at laptop scale
out_dir = 'out/laptop/char_cased'
sweep = {'celeb_frac': [0.0, 0.1, 0.3]}
