# Finding 4 (extractability): the char_cased character tokenizer across celeb_frac (compare with sweep_celeb,
# the word tokenizer). char_low: both languages lowercase, language is hard to read off the letters;
# char_cased: language 1 uppercase, language is trivial to read off. Sequences are ~5x longer than words.
out_dir = 'out/char_cased'
tokenizer = 'char_cased'
sweep = {'celeb_frac': [0.0, 0.04, 0.08, 0.12, 0.16, 0.2, 0.24, 0.3]}
