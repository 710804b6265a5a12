# Finding 1-2: ID vs OOD recall as parallel (celebrity) data grows, word tokenizer, Pythia block.
# 16 celeb_frac values x 2 seeds = 32 runs in lockstep; GPU defaults of train.py (12,000 steps, lr 3e-3).
out_dir = 'out/sweep_celeb'
sweep = {'celeb_frac': [round(0.02 * i, 2) for i in range(16)], 'seed': [0, 1]}
