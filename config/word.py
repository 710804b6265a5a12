# Finding 4 (extractability): the word-tokenizer twin of config/char_low.py and config/char_cased.py, trained
# exactly as they are, so that word < char_cased < char_low compares tokenizers and nothing else (at paper
# scale it repeats sweep_celeb's seed-0 runs under the char twins' name).
out_dir = 'out/word'
tokenizer = 'word'
sweep = {'celeb_frac': [0.0, 0.04, 0.08, 0.12, 0.16, 0.2, 0.24, 0.3]}
