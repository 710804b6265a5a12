# Control for finding 4: ten times more events (10,000 people) does not fix OOD recall. As in the
# method, no single token tells the language (shared_token_frac = 1); the baseline is
# config/shared_tokens.py at shared_token_frac = 1.
out_dir = 'out/people_10x'
n_people = 10000
shared_token_frac = 1.0
sweep = {'celeb_frac': [0.0, 0.04, 0.08, 0.12, 0.16, 0.2, 0.24, 0.3]}
