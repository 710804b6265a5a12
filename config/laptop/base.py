# The laptop regime: every experiment of config/ at a scale that trains on 2 CPU cores within about an hour
# and still shows the method's behaviour (with no parallel data ID near perfect and OOD far below it,
# years above cities; with much parallel data both near perfect). Same knowledge graph (1,000 people),
# languages and optimiser (lr 3e-3, weight decay 0.1: the paper-scale defaults) as config/*.py; a smaller
# model (4 layers, not 6), batch (128, not 256) and schedule (3,000 steps, not 12,000). Why this regime:
# docs/experiments.md. config/laptop/<name>.py stacks the paper config, then this file, then its own lines,
# so this file sets only what scale changes (population, optimiser and data stay the paper config's).
n_layer = 4
n_head = 4
n_embd = 128
batch_size = 128
max_iters = 3000
warmup_iters = 100
eval_interval = 500
eval_max = 1000
n_ckpts = 12
