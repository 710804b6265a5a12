# The laptop run: one run at celeb_frac 0.3 that reaches ID accuracy >= 0.9 in a few minutes on 2 CPU cores.
# Smaller than the paper's setting: 200 people (not 1,000), 4 layers (not 6), batch 128 (not 256),
# 2,500 steps; a higher learning rate and weight decay than the GPU defaults, found by a small search
# on CPU (lr 3e-3 / wd 0.1 plateaued at ID ~0.87-0.89 here; see README).
out_dir = 'out/quick'
celeb_frac = 0.3
n_people = 200
n_layer = 4
batch_size = 128
learning_rate = 1e-2
weight_decay = 0.5
max_iters = 2500
warmup_iters = 100
eval_interval = 500
eval_max = 1000
device = 'cpu'
