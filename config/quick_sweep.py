# A CPU-sized miniature of the main sweep: config/quick.py's setting at four celeb_frac values, in
# lockstep. About 15-20 minutes on 2 CPU cores; enough to see OOD recall rise with parallel data.
out_dir = 'out/quick_sweep'
sweep = {'celeb_frac': [0.0, 0.1, 0.2, 0.3]}
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
