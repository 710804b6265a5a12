# The main sweep with the Gemma-2 block: the findings should not hinge on the architecture.
out_dir = 'out/gemma2'
block = 'gemma2'
sweep = {'celeb_frac': [round(0.02 * i, 2) for i in range(16)], 'seed': [0, 1]}
