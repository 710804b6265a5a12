# Finding 4 (extractability): more templates per language make language harder to extract.
# n_templates = 10 across celeb_frac; compare with config/shared_tokens.py at shared_token_frac = 1
# (5 templates). As in the method, no single token tells the language: both languages draw their
# filler words from one pool (shared_token_frac = 1). The training size is not held constant here
# (with 2 templates a constant size leaves no room for parallel data), so more templates also means
# more examples; people_10x and steps_10x are the matching controls.
out_dir = 'out/templates_10'
n_templates = 10
shared_token_frac = 1.0
fixed_train_size = False
sweep = {'celeb_frac': [0.0, 0.04, 0.08, 0.12, 0.16, 0.2, 0.24, 0.3]}
