"""metrics.py on inputs whose answer is known by construction."""
import math

import numpy as np
import pytest
import torch

import data_gen
import metrics


def orthonormal(n, d, seed=0):
    q, _ = torch.linalg.qr(torch.randn(d, n, generator=torch.Generator().manual_seed(seed)))
    return q.T                                                       # (n, d) orthonormal rows


def parallel_reps(alpha, n_facts=6, n_tmpl=4, noise=0.0, seed=0, d=64, common=0.0, unrelated=False):
    """Celebrity examples: rep = fact vector + alpha * language direction (+ a direction common to
    all, + template noise). unrelated: the language-1 fact vectors are other, unrelated vectors."""
    basis = orthonormal(2 * n_facts + 3, d, seed)
    fact = torch.arange(n_facts).repeat_interleave(2 * n_tmpl)
    lang = torch.arange(2).repeat_interleave(n_tmpl).repeat(n_facts)
    fvec = basis[fact + n_facts * lang] if unrelated else basis[fact]
    reps = fvec + alpha * basis[2 * n_facts + lang] + common * basis[2 * n_facts + 2]
    reps = reps + noise * torch.randn(reps.shape, generator=torch.Generator().manual_seed(seed + 1))
    return reps, fact, lang, fact % 2


def brute_similarities(reps, fact, lang, ftype, ref=0):
    u = metrics.unit(reps)
    out = []
    for f in fact.unique():
        X, Y = u[(fact == f) & (lang == ref)], u[(fact == f) & (lang != ref)]
        O = u[(fact != f) & (lang == ref) & (ftype == ftype[fact == f][0])]
        xx = X @ X.T
        within = (xx.sum() - xx.diagonal().sum()) / (len(X) * (len(X) - 1))
        out.append((float((X @ Y.T).mean()), float(within), float((X @ O.T).mean())))
    return np.array(out)


def test_fact_similarities_equal_a_direct_loop():
    reps, fact, lang, ft = parallel_reps(0.7, noise=0.3, seed=3)
    for ref in (0, 1):                                               # seen from either language
        s = metrics.fact_similarities(metrics.unit(reps + 0.5), fact, lang, ft, ref)
        got = np.stack([s['cross'][:, 0].numpy(), s['within'].numpy(), s['base'].numpy()], 1)
        assert got == pytest.approx(brute_similarities(reps + 0.5, fact, lang, ft, ref), abs=1e-5)


def test_unification_known_answers():
    res, why = metrics.unification(*parallel_reps(0.0))
    assert why is None and res['normalized'] == pytest.approx(1.0) and res['same_fact'] == pytest.approx(1.0)
    # a language offset a orthogonal to unit fact vectors: the paper's ratio 1 / (1 + a^2); normalized
    # 1 - a^2 (0 where language weighs as much as the fact, < 0 once a fact is closer to other facts
    # of its language than to itself in the other language: the checkerboard)
    alphas = (0.25, 0.5, 1.0, 1.5)
    res = [metrics.unification(*parallel_reps(a))[0] for a in alphas]
    assert [r['same_fact'] for r in res] == pytest.approx([1 / (1 + a * a) for a in alphas], abs=1e-5)
    assert [r['normalized'] for r in res] == pytest.approx([1 - a * a for a in alphas], abs=1e-5)
    # separate codes per language: nothing shared, whatever the common part of all vectors
    res = metrics.unification(*parallel_reps(0.0, unrelated=True, common=3.0))[0]
    assert res['normalized'] == pytest.approx(0.0, abs=1e-5)
    assert res['same_fact'] > 0.85                     # the raw ratio reads the common part as unification


def test_unification_is_stable_on_noise_and_weak_signal():
    # pure noise: no fact signal, so no score, at every seed (the paper's ratios swing widely)
    noise = [metrics.unification(*parallel_reps(0.0, noise=50.0, seed=s, d=256, n_facts=40))[0] for s in range(20)]
    assert all(r['normalized'] is None and r['signal_z'] < 3 for r in noise)
    assert np.ptp([r['same_fact'] for r in noise]) > 1.0
    # weak fact signal in heavy noise: near the known answer with a small spread over seeds
    for unrelated, truth in ((False, 1.0), (True, 0.0)):
        vals = [metrics.unification(*parallel_reps(0.0, noise=0.15, seed=s, d=256, n_facts=40, n_tmpl=5,
                                                   unrelated=unrelated))[0]['normalized'] for s in range(20)]
        assert all(v is not None for v in vals)
        assert abs(np.mean(vals) - truth) < 0.05 and np.std(vals) < 0.05


def test_unification_null_reasons():
    reps, fact, lang, ft = parallel_reps(0.0)
    res, why = metrics.unification(reps, fact, torch.zeros_like(lang), ft)
    assert res is None and 'one language' in why


def test_unification_averages_both_directions():
    """Language 0's verbalizations of a fact agree exactly, language 1's spread over template
    directions of norm b: seen from language 0 the score is sqrt(P/Q) - a^2, from language 1
    sqrt(Q/P) - a^2 (P = 1 + a^2, Q = P + b^2), so the paper's one direction would depend on which
    language is called 0. The score pools both directions and does not change when the labels swap."""
    n_facts, n_tmpl, a, b = 6, 4, 0.5, 1.0
    basis = orthonormal(n_facts + 2 + n_facts * n_tmpl, 64, seed=2)
    reps, fact, lang = [], [], []
    for f in range(n_facts):
        for l in (0, 1):
            for t in range(n_tmpl):
                spread = b * basis[n_facts + 2 + f * n_tmpl + t] if l == 1 else 0
                reps.append(basis[f] + a * basis[n_facts + l] + spread)
                fact.append(f), lang.append(l)
    reps, fact, lang = torch.stack(reps), torch.tensor(fact), torch.tensor(lang)
    ft = fact % 2
    P, Q = 1 + a * a, 1 + a * a + b * b
    one_way = [metrics.unification(reps, fact, lang, ft, refs=[r])[0]['normalized'] for r in (0, 1)]
    assert one_way == pytest.approx([(P / Q) ** 0.5 - a * a, (Q / P) ** 0.5 - a * a], abs=1e-5)
    pooled = (2 / (P * Q) ** 0.5 - a * a / P - a * a / Q) / (1 / P + 1 / Q)
    both, swapped = (metrics.unification(reps, fact, l, ft)[0] for l in (lang, 1 - lang))
    assert both['normalized'] == pytest.approx(pooled, abs=1e-5) and one_way[0] < pooled < one_way[1]
    assert swapped == pytest.approx(both, abs=1e-6)


def test_variance_explained():
    g = torch.arange(500) % 5
    means = torch.randn(5, 16, generator=torch.Generator().manual_seed(0))
    assert metrics.variance_explained(means[g], g) == pytest.approx(1.0, abs=1e-6)
    x = torch.randn(2000, 16, generator=torch.Generator().manual_seed(1))
    assert metrics.variance_explained(x, torch.randint(0, 2, (2000,), generator=torch.Generator().manual_seed(2))) < 0.01
    # equals the R^2 of a least-squares fit on the one-hot feature (intercept included)
    x = means[g] + torch.randn(500, 16, generator=torch.Generator().manual_seed(3))
    onehot = torch.nn.functional.one_hot(g).double()
    fit = onehot @ torch.linalg.lstsq(onehot, x.double()).solution
    ref = 1 - ((x - fit) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    assert metrics.variance_explained(x, g) == pytest.approx(float(ref), abs=1e-5)


def test_whiten_trackstar():
    # phi = Z diag(d) with orthogonal columns (Z^T Z = N I): R = diag(d^2), phi R^-1/2 = Z: every
    # direction gets the same weight, whatever its scale before
    N, k = 400, 16
    Z = orthonormal(k, N, seed=1).T * N ** 0.5                       # (N, k)
    d = torch.logspace(-2, 2, k)
    w = metrics.whiten(Z * d, damping=1e-13)
    assert (w.T @ w / N) == pytest.approx(torch.eye(k), abs=1e-4)     # whitened second moment = I
    # a direction shared by every example dominates raw cosines; whitening removes its weight
    g = torch.Generator().manual_seed(0)
    phi = torch.randn(N, 64, generator=g) + 20 * torch.randn(64, generator=g)
    raw = metrics.unit(phi) @ metrics.unit(phi).T
    wh = metrics.unit(metrics.whiten(phi)) @ metrics.unit(metrics.whiten(phi)).T
    off = ~torch.eye(N, dtype=torch.bool)
    assert raw[off].mean() > 0.9 and abs(wh[off].mean()) < 0.05


def test_mutual_information_known_answers():
    # the dataset's MI (mi_lang_attr, mi_token_lang) comes from data_gen.mutual_information(joint counts)
    mi = data_gen.mutual_information
    assert mi(np.full((3, 4), 7)) == pytest.approx(0.0, abs=1e-12)  # independent
    assert mi(np.diag([5, 5, 5, 5])) == pytest.approx(2.0)          # identical, uniform over 4: H = 2 bits
    table = np.array([[10, 5, 1], [2, 8, 14]])                      # direct count on a toy table
    xs = np.repeat([0, 0, 0, 1, 1, 1], table.ravel())
    ys = np.repeat([0, 1, 2, 0, 1, 2], table.ravel())
    n = len(xs)
    ref = sum((c := ((xs == i) & (ys == j)).sum()) / n * math.log2(c * n / (xs == i).sum() / (ys == j).sum())
              for i in range(2) for j in range(3))
    assert mi(table) == pytest.approx(ref)


def test_selection_picks_the_oracle():
    target = np.random.default_rng(0).random(16)
    sel = metrics.select_runs({'ood_itself': target, 'noise': np.random.default_rng(1).random(16),
                               'nothing': np.full(16, np.nan)}, target, 300, 1 / 3)
    assert sel['ood_itself'] == sel['oracle'] and sel['oracle'] > sel['random']
    assert sel['nothing'] is None                     # a criterion that scores no run picks nothing


def test_selection_ranks_unscored_runs_last_in_one_candidate_set():
    """Runs 0-1 have no unification score (no parallel data) but the best ID accuracy; every rule
    picks from the same random subsets, so ID can pick them and unification picks them only when a
    subset holds nothing else (then at random, like the random pick)."""
    target = np.array([0.2, 0.3, 0.5, 0.6, 0.7, 0.8])
    unif = np.array([np.nan, np.nan, 0.1, 0.2, 0.3, 0.4])
    idacc = np.array([1.0, 0.99, 0.9, 0.9, 0.9, 0.9])
    whole = metrics.select_runs({'unification': unif, 'id_test': idacc}, target, 10, 1.0)
    assert whole['unification'] == pytest.approx(0.8) and whole['id_test'] == pytest.approx(0.2)
    pairs = metrics.select_runs({'unification': unif, 'id_test': idacc}, target, 3000, 2 / 6, seed=1)
    # subsets of 2: the unification pick is the better run unless both are unscored ({0, 1}: 1 of 15
    # subsets, a random one of the two); ID picks run 0 or 1 whenever the subset holds one
    expect_unif = (sum(max(target[i], target[j]) for i in range(6) for j in range(i + 1, 6) if (i, j) != (0, 1))
                   + (target[0] + target[1]) / 2) / 15
    assert pairs['unification'] == pytest.approx(expect_unif, abs=0.01)
    assert pairs['id_test'] < pairs['random'] < pairs['unification'] < pairs['oracle']


def test_language_probe():
    g = torch.Generator().manual_seed(0)
    lang = torch.arange(400) % 2
    x = torch.randn(400, 32, generator=g)
    train = torch.rand(400, generator=g) < 0.5
    assert metrics.lang_probe(x + 3 * lang[:, None], lang, train) == 1.0
    assert abs(metrics.lang_probe(x, lang, train) - 0.5) < 0.12


# ----------------------------------------------------------------------------- per fact (llm_eval.py)
def test_roc_auc_known_and_bruteforce():
    assert metrics.roc_auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert metrics.roc_auc([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 0.0
    assert metrics.roc_auc([0.5] * 4, [0, 1, 0, 1]) == 0.5
    assert np.isnan(metrics.roc_auc([0.1, 0.2], [1, 1]))
    rng = np.random.default_rng(0)
    s, y = rng.integers(0, 5, 60).astype(float), rng.random(60) < 0.4  # many ties
    pos, neg = s[y], s[~y]
    brute = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg))
    assert metrics.roc_auc(s, y) == pytest.approx(brute)


def test_separation_stats_bonferroni():
    stats = pytest.importorskip('scipy.stats')
    rng = np.random.default_rng(0)
    y = np.array([1] * 20 + [0] * 20, bool)
    S = rng.normal(size=(40, 3))
    S[:, 1] = np.where(y, 2.0, -2.0) + 0.1 * rng.normal(size=40)  # layer 1 separates perfectly
    res = metrics.separation_stats(S, y, 0.05)
    assert len(res) == 3 and res[1]['auc'] == 1.0 and res[1]['significant']
    for k, r in enumerate(res):
        p = stats.ttest_ind(S[y, k], S[~y, k], equal_var=False).pvalue
        assert r['p'] == pytest.approx(p) and r['p_bonferroni'] == pytest.approx(min(1.0, 3 * p))
    assert res[1]['n_correct'] == 20 and res[1]['mean_correct'] > res[1]['mean_incorrect']
    # within groups: each group separates perfectly, the pooled scores do not (group B sits higher)
    g = metrics.separation_stats([0.0, 1.0, 10.0, 11.0, 12.0], [0, 1, 0, 1, 1], 0.05, groups=list('AABBB'))[0]
    assert g['auc'] == pytest.approx(5 / 6) and g['auc_within'] == 1.0
    g = metrics.separation_stats([0.0, 1.0, 10.0, 11.0], [1, 0, 0, 1], 0.05, groups=list('AABB'))[0]
    assert g['auc_within'] == pytest.approx(0.5) and 'auc_within' not in res[0]
    # 1-D input: one test, no correction
    one = metrics.separation_stats(np.where(y, 1.0, 0.0) + 0.01 * rng.normal(size=40), y, 0.05)
    assert len(one) == 1 and one[0]['auc'] == 1.0


def test_rank_test_beside_the_t_test():
    """Mann-Whitney U: U counts the pairs a correct transfer wins (U / (n1 n0) is the AUC), its p is
    scipy's; one outlier decides the t-test but not the rank test."""
    stats = pytest.importorskip('scipy.stats')
    a, b = np.array([3.0, 4.0, 5.0, 6.0, 7.0, 8.0]), np.array([0.0, 1.0, 2.0, 3.5, 0.5, 1.5])
    u, p = metrics.mann_whitney(a, b)
    assert u == 35.0 and u / 36 == pytest.approx(metrics.roc_auc(np.r_[a, b], [1] * 6 + [0] * 6))
    assert p == pytest.approx(stats.mannwhitneyu(a, b, alternative='two-sided', method='asymptotic').pvalue)
    assert all(np.isnan(metrics.mann_whitney(np.ones(3), np.ones(4))))  # no ranks to compare
    y = np.array([1] * 20 + [0] * 20, bool)
    s = np.where(y, 1.0, 0.0) + np.arange(40) * 1e-3          # correct transfers rank above every incorrect one ...
    s[0] = -1e4                                               # ... but one, far below: the mean of the correct falls
    r = metrics.separation_stats(s, y, 0.05)[0]
    assert r['mw_significant'] and r['mw_p_bonferroni'] == r['mw_p'] < 1e-5 and not r['significant']


def fact_vectors(spec, d=16):
    """(N, L+1, d) unit vectors: spec[i][l] lists the basis directions summed for question i, layer l."""
    e = torch.eye(d)
    return torch.nn.functional.normalize(torch.stack([torch.stack([sum(e[k] for k in dirs) for dirs in row])
                                                      for row in spec]), dim=-1)


def test_unification_known_answers():
    """Direction 0 is shared by every question (the anisotropy of real activations), 1-3 are facts
    0-2, 4+ is noise of each question: x = unit(common + fact + noise). Same-fact questions have
    cosine 2/3, other facts 1/3. Two layers: the target question is of fact 0 (layer 0) or of fact 1
    (layer 1). Normalized: 1 and 0; the paper's sim(X,Y)/sim(X,X) reads 1 and 0.5."""
    same, other = [0, 1, 10], [0, 2, 10]                 # the target question, per layer
    spec = [[[0, 1, 4]] * 2, [[0, 1, 5]] * 2, [[0, 2, 6]] * 2, [[0, 2, 7]] * 2, [[0, 3, 8]] * 2,
            [[0, 3, 9]] * 2, [same, other]]
    H = fact_vectors(spec)
    fact = torch.tensor([0, 0, 1, 1, 2, 2, 0])
    lang = torch.tensor([0, 0, 0, 0, 0, 0, 1])
    U, kinds = metrics.fact_unification(H, fact, lang, torch.zeros(7, dtype=torch.long), 'self')
    assert kinds == ['normalized'] * 3 and U.shape == (3, 1, 2)
    assert U[0, 0] == pytest.approx([1.0, 0.0], abs=1e-6)
    # more paraphrases of the same kind do not change it (within excludes i = j)
    H5 = torch.cat([H[:6], fact_vectors([[[0, 1, 11]] * 2, [[0, 1, 12]] * 2]), H[6:]])
    U5, _ = metrics.fact_unification(H5, torch.tensor([0, 0, 1, 1, 2, 2, 0, 0, 0]),
                                 torch.tensor([0] * 8 + [1]), torch.zeros(9, dtype=torch.long))
    assert U5[0, 0] == pytest.approx([1.0, 0.0], abs=1e-6)
    R = metrics.fact_ratio(H, fact, lang, torch.zeros(7, dtype=torch.long))   # the method's ratio beside it
    assert R.shape == (3, 1, 2) and R[0, 0] == pytest.approx([1.0, 0.5], abs=1e-6)
    # a target closer to another fact than its own fact's questions are to others: below 0
    spec[-1] = [[0, 2, 2, 10], [0, 1, 10]]               # layer 0: mostly fact 1
    U, _ = metrics.fact_unification(fact_vectors(spec), fact, lang, torch.zeros(7, dtype=torch.long))
    assert U[0, 0, 0] < 0


def test_unification_one_source_question():
    """No paraphrases: x = unit(common + fact), other facts at cosine 1/2. The target is fact 0's
    own question (layer 0) or fact 1's (layer 1); each fallback gives its documented value."""
    spec = [[[0, 1]] * 2, [[0, 2]] * 2, [[0, 3]] * 2, [[0, 1], [0, 2]]]
    H = fact_vectors(spec)
    fact, lang, ftype = torch.tensor([0, 1, 2, 0]), torch.tensor([0, 0, 0, 1]), torch.zeros(4, dtype=torch.long)
    want = {'self': [1.0, 0.0], 'centered': [0.5, 0.0], 'cross': [1.0, 0.5]}
    for fallback, w in want.items():
        U, kinds = metrics.fact_unification(H, fact, lang, ftype, fallback)
        assert kinds == [fallback] * 3 and U[0, 0] == pytest.approx(w, abs=1e-6), fallback
    # a fact alone in its source language has no baseline: unscored, except the raw cosine
    alone = torch.tensor([1, 0, 0, 1])
    U, kinds = metrics.fact_unification(H, fact, lang, alone, 'self')
    assert kinds[0] == 'none' and np.isnan(U[0]).all() and kinds[1:] == ['self', 'self']
    U, kinds = metrics.fact_unification(H, fact, lang, alone, 'cross')
    assert kinds[0] == 'cross' and U[0, 0] == pytest.approx([1.0, 0.5], abs=1e-6)
    # a layer where every prompt ends in the same representation: nothing to normalize
    H[:, 1] = H[0, 0]
    U, _ = metrics.fact_unification(H, fact, lang, ftype, 'self')
    assert U[0, 0, 0] == pytest.approx(1.0) and np.isnan(U[0, 0, 1])


def test_unification_matches_brute_force():
    """Random representations, 1-3 source questions per fact, two source languages, two targets:
    every score equals the formula computed with explicit loops over question pairs."""
    rng = np.random.default_rng(0)
    n_src = [1, 2, 3, 2, 1, 3, 2]
    src_lang = [0, 0, 0, 1, 1, 1, 1]
    fact, lang, ftype = [], [], []
    for f, (n, s) in enumerate(zip(n_src, src_lang)):
        for l in [0] * n + [t for t in (1, 2) if rng.random() < 0.8]:
            fact.append(f), lang.append(l), ftype.append(s)
    H = torch.nn.functional.normalize(torch.tensor(rng.normal(size=(len(fact), 3, 8)) + 1.0), dim=-1).float()
    fact, lang, ftype = map(torch.tensor, (fact, lang, ftype))
    U, kinds = metrics.fact_unification(H, fact, lang, ftype, 'self')
    Hd = H.double()
    cos = lambda A, B: torch.einsum('ild,jld->lij', Hd[A], Hd[B])          # (L+1, |A|, |B|)
    for f in range(len(n_src)):
        X = [i for i in range(len(fact)) if fact[i] == f and lang[i] == 0]
        O = [i for i in range(len(fact)) if fact[i] != f and lang[i] == 0 and ftype[i] == ftype[X[0]]]
        base = cos(X, O).mean((1, 2))
        if len(X) > 1:
            xx = cos(X, X)
            within = (xx.sum((1, 2)) - xx.diagonal(dim1=1, dim2=2).sum(-1)) / (len(X) * (len(X) - 1))
        else:
            within = torch.ones(3, dtype=torch.float64)
        assert kinds[f] == ('normalized' if len(X) > 1 else 'self')
        for t in (1, 2):
            Y = [i for i in range(len(fact)) if fact[i] == f and lang[i] == t]
            if Y:
                want = (cos(X, Y).mean((1, 2)) - base) / (within - base)
                assert U[f, t - 1] == pytest.approx(want.numpy(), rel=1e-4, abs=1e-5)
