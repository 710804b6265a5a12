# Laptop twin of config/word.py (finding 4, extractability): the word-tokenizer run beside the char twins,
# trained as long as they are (10,000 steps, config/laptop/char_low.py): 10,000 x 128 / 16,000 training
# examples = 80 epochs for all three. sweep_celeb's word runs train 3,000 steps (24 epochs), so comparing
# them with the char twins mixes tokenizer and training length. One run (37 min on a 2-core AVX2 CPU, float32).
include('../word.py')   # the paper-scale experiment ...
include('base.py')      # ... at laptop scale
out_dir = 'out/laptop/word'
max_iters = 10000
eval_interval = 2500
sweep = {'celeb_frac': [0.0]}
