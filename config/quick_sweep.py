# A CPU-sized miniature of the main sweep, stacked on config/quick.py (config files apply left to right):
#   python train.py config/quick.py config/quick_sweep.py
# quick.py's run at four celeb_frac values in lockstep: about 17 minutes on 2 CPU cores.
out_dir = 'out/quick_sweep'
sweep = {'celeb_frac': [0.0, 0.1, 0.2, 0.3]}
