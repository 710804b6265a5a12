# Finding 4 (extractability) at the token level: the share of filler words the two languages draw
# from one pool, from 0 (disjoint: every filler token tells the language) to 1 (one pool: only the
# arrangement of words does), across celeb_frac. shared_token_frac = 1 is the baseline of the
# templates, people and steps experiments. The vocabulary does not change with it (data_gen.py),
# so all runs train in lockstep.
out_dir = 'out/shared_tokens'
sweep = {'shared_token_frac': [0.0, 0.25, 0.5, 0.75, 1.0], 'celeb_frac': [0.0, 0.1, 0.2, 0.3]}
