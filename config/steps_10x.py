# Control for finding 4: ten times more training steps does not fix OOD recall. Long: shard it,
# e.g. python train.py config/steps_10x.py --shard=0/4 (one process per GPU or a job array).
out_dir = 'out/steps_10x'
max_iters = 120000
eval_interval = 5000
sweep = {'celeb_frac': [0.0, 0.04, 0.08, 0.12, 0.16, 0.2, 0.24, 0.3]}
