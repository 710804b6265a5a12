# Control for finding 4: ten times more training steps does not fix OOD recall. As in the method, no
# single token tells the language (shared_token_frac = 1); the baseline is config/shared_tokens.py at
# shared_token_frac = 1. Long: shard it, e.g. python train.py config/steps_10x.py --shard=0/4
# (one process per GPU, torchrun, or a job array).
out_dir = 'out/steps_10x'
max_iters = 120000
eval_interval = 5000
shared_token_frac = 1.0
sweep = {'celeb_frac': [0.0, 0.04, 0.08, 0.12, 0.16, 0.2, 0.24, 0.3]}
