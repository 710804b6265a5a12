"""
The toy model: a linear model on one-hot features that shows the transformers' effect, that
an informative and extractable language feature hurts cross-lingual recall (docs/method.md section 9).

    python toy.py                           # both tables and the figure, in a couple of seconds
    python toy.py --l2=0 --steps=300        # gradient descent instead of the ridge solve
    python toy.py --help                    # every knob with its default

Data. Each of `n_entities` entities has one of `n_labels` labels (an attribute value; labels
are balanced). A training example is a language-entity pair,
    x = [lang_scale * onehot(language) (2,), ent_scale * onehot(entity) (n_entities,)],
with target onehot(label) (n_labels,). A share `celeb_frac` of entities (the parallel data)
is seen in both languages, every other entity in one. A seen pair occurs 1..max_copies times
(facts differ in frequency), with the same log-uniform frequency profile in every
(label, language) group. The language an entity is seen in depends on its label: each label
gets a random lean towards language 0 or 1 (centred over labels), and the leans are scaled up
until language alone explains the asked share `lang_var` of the label variance in the
training examples (eta^2 = R^2 of onehot(label) on onehot(language): the share of the
squared-error loss of a constant prediction that a per-language prediction removes; at most
about 1/(n_labels-1) with two languages). The share reached is measured and printed. The
entity alone determines the label; language only correlates with it. With lang_var = 0 the
two languages are mirror images (same labels, same frequencies).

Model. W (2 + n_entities, n_labels) minimising sum over examples ||x W - y||^2 + l2 ||W||^2,
by a closed-form ridge solve (steps=0) or `steps` of full-batch gradient descent from W = 0.
Prediction: argmax of x W. Same-language accuracy: the one-language entities in the language
they were trained in (a held-out example of a seen pair has the very same one-hot input, so
this is the held-out test). Cross-lingual accuracy: the same entities in the other language.

Why it behaves like the transformers. The output for (language l, entity e) is c_l + b_e, with
c_l = lang_scale * W[l] and b_e = ent_scale * W[2 + e]: a linear readout of a language
feature plus a subject feature, which is what the unembedding sees at the last prompt token.
The penalty makes memorising each fact cost something, and one language offset c_l serves
every example of its language at once: so the fit puts most of the per-language mean label
into c_l (about 70% of the difference between languages at the defaults) and stores in b_e the
entity's label *relative to* its language, shrunk (more for rare facts). In the training
language the two add up to the right label; in the other language c_l is swapped for c_l' and
the prediction moves away from the labels common in the training language. The fact is
stored language-specifically ("separated") instead of once for both ("unified").
- Informativeness = lang_var: how far the per-language mean labels differ. With lang_var = 0,
  c_0 = c_1 and cross-lingual accuracy equals same-language accuracy exactly.
- Extractability = lang_scale relative to ent_scale: the penalty charges ||c_l||^2 /
  lang_scale^2 for a language offset, and under gradient descent c_l moves at a speed
  proportional to lang_scale^2; a small-scale language feature is expensive and slow to use,
  so the labels go to the entity features, which transfer.
The effect needs the penalty (or early stopping): trained to convergence with l2 = 0 the
entity weights interpolate their labels and at lang_var <= 0.1 the cross-lingual drop goes away.
"""
import json
import os
import time

import numpy as np

from configurator import cli, configure, config_keys, overrides

# -----------------------------------------------------------------------------
# advanced: max_copies, ent_scale, lang_scales, l2, steps, lr, n_seeds
n_entities = 400                     # entities (people); each has one label
n_labels = 4                         # label values (attributes); language explains at most 1/(n_labels-1)
celeb_frac = 0.1                     # share of entities seen in both languages in training (parallel data)
max_copies = 30                      # a seen pair occurs 1..max_copies times in training (log-uniform)
lang_vars = [0.0, 0.05, 0.10]        # asked shares of label variance explained by language (informativeness)
lang_scale = 1.0                     # magnitude of the language one-hot (extractability), for the first table
ent_scale = 1.0                      # magnitude of each entity one-hot
lang_scales = [1.0, 0.5, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01]  # swept for the second table and the figure
l2 = 5.0                             # weight penalty: loss = sum_examples ||x W - y||^2 + l2 * ||W||^2
steps = 0                            # 0: closed-form ridge solve; >0: full-batch gradient descent steps from W=0
lr = 0.5                             # gradient-descent step size, on the loss divided by the number of examples
seed = 0                             # first seed; rows average seeds seed .. seed+n_seeds-1
n_seeds = 5                          # seeds per row (labels, leans, language assignment)
out_dir = 'out/toy'                  # results.json and the figure go here
plot = True                          # write the cross-lingual accuracy vs lang_scale figure
# -----------------------------------------------------------------------------
DEFAULTS = config_keys(globals())
N_LANGS = 2
# no knob takes one of a fixed set of values (no CHOICES): the ranges are checked in check_config


def check_config(cfg):
    """The ranges the knobs need, as one-line ValueErrors (types are checked by configure)."""
    if cfg['n_seeds'] < 1 or cfg['steps'] < 0 or cfg['l2'] < 0 or cfg['ent_scale'] <= 0 or cfg['lang_scale'] < 0:
        raise ValueError("toy: need n_seeds >= 1, steps >= 0, l2 >= 0, ent_scale > 0, lang_scale >= 0")
    if not all(0 <= v < 1 for v in cfg['lang_vars']) or not all(s >= 0 for s in cfg['lang_scales']):
        raise ValueError("toy: need every lang_var in [0, 1) and every lang_scales entry >= 0")
    if cfg['steps'] == 0 and cfg['l2'] == 0:
        raise ValueError("toy: the closed-form solve needs l2 > 0 (or set steps > 0)")


def explained_share(pairs, copies, labels, n_labels):
    """eta^2 of the one-hot label on language over training examples: between-language sum of
    squares over total sum of squares (= R^2 of regressing onehot(label) on onehot(language))."""
    Y = np.eye(n_labels)[labels[pairs[:, 1]]]                      # (P, K)
    w = copies / copies.sum()                                      # (P,) example weights
    mu = w @ Y                                                     # (K,)
    total = w @ ((Y - mu) ** 2).sum(1)
    between = 0.0
    for l in range(N_LANGS):
        m = pairs[:, 0] == l
        if w[m].sum() > 0:
            between += w[m].sum() * (((w[m] @ Y[m]) / w[m].sum() - mu) ** 2).sum()
    return between / total if total > 0 else 0.0


def make_data(cfg, lang_var, seed):
    """Labels, celebrities and the training pairs (language, entity) with their copy counts,
    with the language assignment skewed until language explains `lang_var` of the label variance."""
    E, K = cfg['n_entities'], cfg['n_labels']
    if K < 2 or E < 4 * K or not 0 <= cfg['celeb_frac'] < 1 or cfg['max_copies'] < 1:
        raise ValueError("toy: need n_labels >= 2, n_entities >= 4*n_labels, 0 <= celeb_frac < 1, max_copies >= 1")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(E) % K)                     # (E,) balanced labels
    celeb = np.zeros(E, bool)
    groups = []                                                    # per label: its one-language entities
    for k in range(K):
        idx = rng.permutation(np.flatnonzero(labels == k))
        n_c = int(round(cfg['celeb_frac'] * len(idx)))
        n_c += (len(idx) - n_c) % 2                                # even remainder: lang_var=0 splits it exactly
        celeb[idx[:n_c]] = True
        groups.append(idx[n_c:])
    lean = rng.uniform(-1, 1, K)                                   # (K,) how much each label leans to language 0
    lean -= lean.mean()                                            # centred: labels lean both ways

    def copies(n):  # same log-uniform frequency profile in every group, so only the label mix differs
        return np.floor(np.exp(np.log(cfg['max_copies'] + 1) * (np.arange(n) + 0.5) / n)).astype(int)

    def assign(t):
        pairs, cps = [], []
        for k in range(K):
            c = np.flatnonzero(celeb & (labels == k))
            n0 = int(np.floor(len(groups[k]) * (0.5 + 0.5 * np.tanh(t * lean[k])) + 0.5))
            parts = [(0, c), (1, c), (0, groups[k][:n0]), (1, groups[k][n0:])]
            for l, ents in parts:
                pairs += [(l, e) for e in ents]
                cps.append(copies(len(ents)))
        pairs, cps = np.array(pairs), np.concatenate(cps)
        return pairs, cps, explained_share(pairs, cps, labels, K)

    lo, hi = 0.0, 1e3                                              # bisect the lean strength t
    if assign(hi)[2] < lang_var - 0.005:
        raise ValueError(f"toy: lang_var={lang_var} unreachable; at most {assign(hi)[2]:.3f} "
                         f"with n_labels={K}, celeb_frac={cfg['celeb_frac']}")
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if assign(mid)[2] < lang_var else (lo, mid)
    pairs, cps, measured = min((assign(lo), assign(hi)), key=lambda a: abs(a[2] - lang_var))
    if abs(measured - lang_var) > 0.005:
        raise ValueError(f"toy: lang_var={lang_var} missed (reached {measured:.4f}); use more n_entities")
    return dict(labels=labels, celeb=celeb, pairs=pairs, copies=cps, lang_var_measured=float(measured))


def predict(W, pairs, lang_scale, ent_scale):
    """x @ W without building x: (P, K) = lang_scale * W[lang] + ent_scale * W[2 + entity]."""
    return lang_scale * W[pairs[:, 0]] + ent_scale * W[N_LANGS + pairs[:, 1]]


def fit(cfg, data, lang_scale):
    """Minimise sum_i copies_i ||x_i W - y_i||^2 + l2 ||W||^2 -> W (2+E, K)."""
    pairs, es = data['pairs'], cfg['ent_scale']
    Y = np.eye(cfg['n_labels'])[data['labels'][pairs[:, 1]]]           # (P, K) one-hot targets
    c = data['copies'][:, None].astype(float)                          # (P, 1) examples per pair
    D = N_LANGS + cfg['n_entities']
    if cfg['steps'] == 0:                                              # ridge: (X^T C X + l2 I) W = X^T C Y
        X = np.zeros((len(pairs), D))                                  # (P, D)
        X[np.arange(len(pairs)), pairs[:, 0]] = lang_scale
        X[np.arange(len(pairs)), N_LANGS + pairs[:, 1]] = es
        XL, XE = X[:, :N_LANGS], X[:, N_LANGS:]                        # (P, 2), (P, E)
        A = XL.T @ (c * XL) + cfg['l2'] * np.eye(N_LANGS)              # (2, 2) language block
        B = XL.T @ (c * XE)                                            # (2, E) language-entity block
        d = (c * XE ** 2).sum(0) + cfg['l2']                           # (E,) entity block is diagonal
        yL, yE = XL.T @ (c * Y), XE.T @ (c * Y)                        # (2, K), (E, K)
        WL = np.linalg.solve(A - (B / d) @ B.T, yL - (B / d) @ yE)     # eliminate the entities (Schur)
        return np.concatenate([WL, (yE - B.T @ WL) / d[:, None]])
    W, n = np.zeros((D, Y.shape[1])), c.sum()
    with np.errstate(over='ignore', invalid='ignore'):                 # divergence is reported below
        for _ in range(cfg['steps']):                                  # gradient of (loss / n)
            R = c * (predict(W, pairs, lang_scale, es) - Y)            # (P, K) weighted residuals
            G = cfg['l2'] * W
            np.add.at(G, pairs[:, 0], lang_scale * R)
            np.add.at(G, N_LANGS + pairs[:, 1], es * R)
            W -= cfg['lr'] * 2 * G / n
    if not np.isfinite(W).all():
        raise ValueError(f"toy: gradient descent diverged at lr={cfg['lr']}; lower lr")
    return W


def evaluate(cfg, data, lang_scale):
    """Fit on the training pairs; accuracy of the one-language entities in their training language
    (same) and in the other language (cross). Celebrities are in training in both, so in neither test."""
    W = fit(cfg, data, lang_scale)
    same = data['pairs'][~data['celeb'][data['pairs'][:, 1]]]      # (P', 2) seen pairs
    cross = np.stack([1 - same[:, 0], same[:, 1]], 1)              # (P', 2) the unseen language

    def acc(p):
        return float((predict(W, p, lang_scale, cfg['ent_scale']).argmax(1) == data['labels'][p[:, 1]]).mean())
    return dict(lang_var_measured=data['lang_var_measured'], same_acc=acc(same), cross_acc=acc(cross))


def row(cfg, datasets, lang_var, lang_scale):
    """Mean over seeds of one (lang_var, lang_scale) cell; datasets: {seed: make_data(...)}."""
    runs = [evaluate(cfg, d, lang_scale) for d in datasets.values()]
    mean = {k: round(float(np.mean([r[k] for r in runs])), 4) for k in runs[0]}
    return dict(lang_var=lang_var, lang_scale=lang_scale, **mean,
                cross_acc_std=round(float(np.std([r['cross_acc'] for r in runs])), 4), seeds=list(datasets))


def main(cfg):
    check_config(cfg)
    t0 = time.time()
    seeds = range(cfg['seed'], cfg['seed'] + cfg['n_seeds'])
    data = {v: {s: make_data(cfg, v, s) for s in seeds} for v in cfg['lang_vars']}
    table = [row(cfg, data[v], v, cfg['lang_scale']) for v in cfg['lang_vars']]
    scale_table = [row(cfg, data[v], v, s) for s in cfg['lang_scales'] for v in cfg['lang_vars']]
    print(f"toy: {overrides(cfg, DEFAULTS)}; mean over {cfg['n_seeds']} seeds, lang_scale={cfg['lang_scale']}")
    print("lang_var  measured  same_acc  cross_acc")
    for r in table:
        print(f"{r['lang_var']:8.3f}  {r['lang_var_measured']:8.4f}  {r['same_acc']:8.3f}  {r['cross_acc']:9.3f}")
    print("cross_acc by lang_scale (columns: lang_var " + ' '.join(f'{v:g}' for v in cfg['lang_vars']) + ")")
    for s in cfg['lang_scales']:
        print(f"{s:8g}  " + '  '.join(f"{r['cross_acc']:.3f}" for r in scale_table if r['lang_scale'] == s))
    os.makedirs(cfg['out_dir'], exist_ok=True)
    results = dict(config=cfg, table=[{k: r[k] for k in ('lang_var', 'lang_var_measured', 'same_acc', 'cross_acc',
                                                          'cross_acc_std', 'seeds')} for r in table],
                   scale_table=scale_table)
    with open(os.path.join(cfg['out_dir'], 'results.json'), 'w') as f:
        json.dump(results, f, indent=1)
    if cfg['plot']:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for v in cfg['lang_vars']:
            rs = [r for r in scale_table if r['lang_var'] == v]
            ax.plot([r['lang_scale'] for r in rs], [r['cross_acc'] for r in rs], 'o-', label=f'lang_var={v:g}')
        ax.set_xscale('log')
        ax.set_xlabel('language-feature scale / entity-feature scale')
        ax.set_ylabel('cross-lingual accuracy')
        ax.set_title(f'toy model, mean of {cfg["n_seeds"]} seeds')
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(cfg['out_dir'], 'cross_acc_vs_scale.png'), dpi=120)
        plt.close(fig)
    print(f"wrote {cfg['out_dir']}/results.json in {time.time() - t0:.1f}s")
    return results


if __name__ == '__main__':
    cli(lambda: main(configure(DEFAULTS, sources=[__file__])))
