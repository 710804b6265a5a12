# The demo: the phenomenon in two commands on a laptop's CPU (python train.py config/demo.py, then python analyze.py
# out/demo). Three runs in lockstep, one knob apart: no, some and much parallel data (celeb_frac: the share of
# people whose facts are written in both languages, with every template).
# Without parallel data the model recalls a fact in the language it learned it in (ID) but not in the other (OOD);
# with much of it, in both, and its representations of the two languages unify: the analysis prints each run's
# unification score and draws figures/contrast.png (similarity matrices: a language checkerboard vs unified blocks).
include('laptop/base.py')      # the laptop regime: 1,000 people, 4 layers, batch 128, lr 3e-3, weight decay 0.1
out_dir = 'out/demo'
sweep = {'celeb_frac': [0.0, 0.1, 0.2]}   # 0.2, not 0.3: 0.3 learns slower (at 2,000 steps still ID 0.94, OOD 0.93)
# 2,000 steps, not the laptop regime's 3,000 (training is most of the demo's time): the laptop sweep's curves
# (assets/laptop/sweep_celeb, seed 0) have the gap in place at step 2,000 of their 3,000: celeb_frac 0 at ID 1.00 /
# OOD 0.50, 0.12 at OOD 0.85, 0.18-0.24 at OOD 0.95-0.98; at step 1,500 no run is above OOD 0.89 yet
max_iters = 2000
# checkpoints 0, 125, 250, 500, 1000, 2000: where recall and unification grow (before 125 every run is at chance);
# six, not base.py's thirteen, so that the analysis (which on a CPU takes up to 8 per run) analyses each one and
# stays ~1/4 cheaper than at 8; its other CPU picks (400 examples for footprints, 50 parallel facts, 500 test
# examples) are analyze.py's defaults
n_ckpts = 5
ckpt_first = 125
eval_interval = 500            # with the checkpoints': 7 lines of ID and OOD per run while it trains (0 ... 2,000)
