# Finding 5: run and checkpoint selection by unification over ~110 runs:
# celeb_frac 0.00..0.20 x lang_ratio 1:1..20:1. Shard it: --shard=i/4.
out_dir = 'out/selection'
sweep = {'celeb_frac': [round(0.02 * i, 2) for i in range(11)],
         'lang_ratio': [1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0, 10.0, 15.0, 20.0]}
