# Finding 4 (informativeness): src / balanced / imbalanced at little or no parallel data, 1:1 languages.
# balanced adds new monolingual events so that language says nothing about the attribute (MI = 0);
# imbalanced adds the same events in the language where each value is already frequent.
out_dir = 'out/balance'
lang_ratio = 1.0
sweep = {'variant': ['src', 'balanced', 'imbalanced'], 'celeb_frac': [0.0, 0.02, 0.04, 0.06, 0.08, 0.1]}
