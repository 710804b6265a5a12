# A CPU-sized miniature of balance.py (informativeness), stacked on config/quick.py:
#   python train.py config/quick.py config/quick_balance.py
# src / balanced / imbalanced with no parallel data, 1:1 languages: about 15 minutes on 2 CPU cores.
out_dir = 'out/quick_balance'
lang_ratio = 1.0
sweep = {'variant': ['src', 'balanced', 'imbalanced'], 'celeb_frac': [0.0]}
