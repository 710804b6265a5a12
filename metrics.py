"""
The measures of the analysis, as pure functions of representations and labels (SPEC section 8),
shared by analyze.py (the tiny models) and llm_eval.py (a real LLM). Each is tested on inputs
whose answer is known by construction (tests/test_metrics.py).

    unification        does a fact look the same in every language? (three variants, see there)
    variance_explained the feature footprint: R^2 of a regression on a categorical feature
    lang_probe         can a linear probe read the language off the representation?
    whiten             the TrackStar correction R^-1/2 of projected gradients
    select_runs        pick a run by a criterion; the OOD accuracy of the pick
    fact_unification   the same score per fact, for a real LLM's prompts (and fact_ratio, the method's ratio)
    separation_stats   does a score separate correct from incorrect transfers? AUC, rank test, t-test
    judge_match        is an LLM's answer the gold one? (llm_eval.py and cldr_facts.py)
"""
import unicodedata

import numpy as np
import torch

HEADLINE = 'normalized'   # the unification score that summaries, selection and verdicts use (declared, never picked)
PAPER_RATIO = 'same_fact' # the paper's formula, reported beside the headline with its own correlations
VARIANTS = ('normalized', 'same_fact', 'distinct_fact')


def unit(x):
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def group_sums(x, g, n):
    """x (N, D), g (N,) ids in [0, n) -> per-group sums (n, D) and counts (n,)."""
    return x.new_zeros(n, x.shape[1]).index_add_(0, g, x), torch.bincount(g, minlength=n).to(x.dtype)


def fact_similarities(u, fact, lang, ftype, ref=0):
    """Per-fact mean cosine similarities of unit vectors u (N, D); fact, lang, ftype (N,) int ids,
    seen from language `ref`. For fact f, X = its language-ref examples, Y_l = its examples in each
    other language l (in order), X' = the language-ref examples of the other facts of f's type.
    sim = mean pairwise cosine = dot product of mean unit vectors. -> dict of tensors:
    cross (F, nl-1) = sim(X, Y_l); within (F,) = sim(X, X) over pairs i != j; base (F,) = sim(X, X');
    n_x (F,), n_y (F, nl-1), n_other (F,) example counts."""
    nf, nl, nt = int(fact.max()) + 1, int(lang.max()) + 1, int(ftype.max()) + 1
    S, C = group_sums(u, fact * nl + lang, nf * nl)
    S, C = S.view(nf, nl, -1), C.view(nf, nl)                          # (F, nl, D), (F, nl)
    M = S / C.clamp_min(1)[..., None]                                   # mean unit vector per fact x lang
    others = [l for l in range(nl) if l != ref]
    Sx, Cx = S[:, ref], C[:, ref]                                       # (F, D), (F,)
    within = ((Sx ** 2).sum(-1) - Cx) / (Cx * (Cx - 1)).clamp_min(1)
    type_of_fact = torch.zeros(nf, dtype=torch.long, device=u.device).index_put_((fact,), ftype)
    type_sums = group_sums(Sx, type_of_fact, nt)[0]                     # language-ref sums per fact type
    type_counts = C.new_zeros(nt).index_add_(0, type_of_fact, Cx)
    n_other = type_counts[type_of_fact] - Cx
    base = (M[:, ref] * (type_sums[type_of_fact] - Sx)).sum(-1) / n_other.clamp_min(1)
    cross = (M[:, ref, None] * M[:, others]).sum(-1)                    # (F, nl-1)
    return dict(cross=cross, within=within, base=base, n_x=Cx, n_y=C[:, others], n_other=n_other)


def unification(reps, fact, lang, ftype, min_z=3.0, refs=None):
    """Unification of parallel facts across languages. reps (N, D); fact, lang, ftype (N,) ids.
    Three variants, with s = fact_similarities of the unit vectors seen from each language in turn:

      normalized     sum (cross - base) / sum (within - base)          (the headline, HEADLINE)
      same_fact      mean cross / within      the paper's formula sim(X,Y) / sim(X,X)
      distinct_fact  mean cross / base        the paper's prose: a distinct-fact baseline

    Both directions. The paper writes X for language 0 and Y for language 1, but nothing makes one
    language the reference: seen from language 1, within and base are language 1's, and a language
    whose verbalizations of a fact agree less (more templates, noisier codes) scores differently
    from its side (tests/test_metrics.py shows the difference on such an example). So every
    language takes the place of X in turn (refs: the languages that do, default all), and the sums
    and means run over facts and directions: swapping the language labels leaves every score as it is.

    Why `normalized`: cosines of real representations share a large common part (activations are
    anisotropic; gradients of one fact type share the output layer), so a raw ratio of similarities
    reads ~1 for anything. Subtracting the similarity to other facts of the same type (base) keeps
    what is specific to the fact, and the score is the share of a fact's same-language specific
    similarity that survives into the other language: 1 when a fact's verbalizations are
    interchangeable across languages, 0 when the other language's are no closer to it than other
    facts of its own language are, below 0 when a fact is closer to other facts of its language than
    to itself in the other language (the checkerboard). For unit fact vectors plus a language offset
    a in an orthogonal direction it is 1 - a^2 (the paper's ratio: 1 / (1 + a^2)). It sums over
    facts before dividing (a ratio of means, not a mean of ratios), so facts with a near-zero
    denominator cannot dominate; within excludes i = j, so a fact whose verbalizations agree
    scores 1 however many there are. The denominator is the fact signal itself: where it is not
    significantly positive (its per-fact sums below min_z standard errors, e.g. representations that
    are pure noise) there is nothing to unify, and the score is None rather than a ratio of two
    noises. The paper's two variants are kept as written (ratios per fact and direction, unguarded)
    for comparison; they are unstable where their denominators approach 0.
    -> ({variant: value or None, 'signal_z': z}, None) or (None, reason)."""
    u = unit(reps.float())
    nl = int(lang.max()) + 1
    if nl < 2:
        return None, 'celebrity examples in one language only'
    nf = int(fact.max()) + 1
    num, den = u.new_zeros(nf), u.new_zeros(nf)                         # per fact, summed over directions
    scored, same, distinct = torch.zeros(nf, dtype=torch.bool, device=u.device), [], []
    for ref in range(nl) if refs is None else refs:
        s = fact_similarities(u, fact, lang, ftype, ref)
        ok = (s['n_x'] >= 2)[:, None] & (s['n_y'] >= 1) & (s['n_other'] >= 1)[:, None]    # (F, nl-1)
        num += torch.where(ok, s['cross'] - s['base'][:, None], 0).sum(1)
        den += torch.where(ok, (s['within'] - s['base'])[:, None], 0).sum(1)
        scored |= ok.any(1)
        same.append((s['cross'] / s['within'][:, None])[ok])
        distinct.append((s['cross'] / s['base'][:, None])[ok])
    if not scored.any():
        return None, 'no celebrity fact has >= 2 examples in one language, >= 1 in another and >= 1 other fact'
    num, den = num[scored], den[scored]
    se = den.std() * len(den) ** 0.5 if len(den) > 1 else torch.tensor(float('inf'))
    z = float(den.sum() / se) if se > 0 else float('inf')
    out = {'normalized': float(num.sum() / den.sum()) if z >= min_z else None,
           'same_fact': float(torch.cat(same).mean()),
           'distinct_fact': float(torch.cat(distinct).mean()),
           'signal_z': round(z, 3) if np.isfinite(z) else None}
    return out, None


def variance_explained(x, g):
    """The footprint of a categorical feature: share of the variance of x (N, D) explained by a
    linear regression on the one-hot of g (N,), i.e. 1 - within-group / total sum of squares."""
    x = x.float()
    g = torch.unique(g, return_inverse=True)[1]
    S, C = group_sums(x, g, int(g.max()) + 1)
    within = (x - (S / C[:, None])[g]).pow(2).sum()
    return float(1 - within / (x - x.mean(0)).pow(2).sum().clamp_min(1e-30))


def lang_probe(x, lang, train_mask, l2=1.0):
    """Ridge-regression classifier (kernel form, exact) for language on standardised features:
    fit on train_mask, accuracy on the rest. x (N, D), lang (N,), train_mask (N,) bool."""
    x = x.float()
    mu, sd = x[train_mask].mean(0), x[train_mask].std(0).clamp_min(1e-6)
    xs = (x - mu) / sd
    xtr, xte = xs[train_mask], xs[~train_mask]
    y = torch.nn.functional.one_hot(lang[train_mask], int(lang.max()) + 1).float() * 2 - 1
    K = xtr @ xtr.T
    lam = l2 * K.diagonal().mean().clamp_min(1e-6)
    alpha = torch.linalg.solve(K + lam * torch.eye(len(K), device=x.device), y)
    return float(((xte @ xtr.T @ alpha).argmax(-1) == lang[~train_mask]).float().mean())


def whiten(phi, damping=1e-3):
    """TrackStar's correction: phi (N, k) projected gradients -> phi R^-1/2 with R = phi^T phi / N
    (their second-moment matrix, estimated on these N examples) + damping x its mean eigenvalue.
    A direction shared by most examples (which dominates raw cosines) is scaled down, rare
    directions up. Computed from the thin SVD phi = U S V^T: phi R^-1/2 = U S (S^2/N + lam)^-1/2 V^T,
    returned in the basis of V (inner products, norms, R^2 and probes are basis-free):
    (N, min(N, k)) float32."""
    phi = phi.double()
    U, S, _ = torch.linalg.svd(phi, full_matrices=False)
    ev = S ** 2 / len(phi)                                              # eigenvalues of R
    lam = damping * ev.sum() / phi.shape[1]
    return (U * (S / (ev + lam).sqrt())).float()


def select_runs(scores, target, n_repeats, frac, seed=0):
    """Run selection. scores {criterion: (R,) or (n_repeats, R)} (higher = better, NaN = the run
    cannot be scored by it); target (R,) the OOD accuracy. Each repeat samples a share `frac` of the
    runs (>= 2), one candidate set for every criterion; each criterion ranks the candidates by its
    score, runs it cannot score last, ties (among them the unscored) broken at random, and picks the
    first. A criterion that can score no run at all picks nothing: None, not a random run.
    -> {criterion: mean target of its pick or None, 'oracle': ..., 'random': ...}."""
    rng = np.random.default_rng(seed)
    target = np.asarray(target, float)
    R = len(target)
    m = min(R, max(2, round(frac * R)))
    scores = {k: np.asarray(s, float) for k, s in scores.items()}
    sums = {k: 0.0 for k in [*scores, 'oracle', 'random']}
    for rep in range(n_repeats):
        sub = rng.permutation(R)[:m]                                   # random order: sub[0] is a random pick
        sums['oracle'] += target[sub].max()
        sums['random'] += target[sub[0]]
        for k, s in scores.items():
            s = np.nan_to_num((s[rep] if s.ndim == 2 else s)[sub], nan=-np.inf)   # unscored: last
            sums[k] += target[sub[np.argmax(s)]]                       # first of the ties in random order
    never = [k for k, s in scores.items() if not np.isfinite(s).any()]
    return {k: None if k in never else v / n_repeats for k, v in sums.items()}


# ----------------------------------------------------------------------------- per fact, and whether a score separates outcomes (llm_eval.py)
def fact_unification(H, fact, lang, ftype, fallback='self', eps=1e-6):
    """The normalized unification of `unification` (its docstring says why), per fact, target
    language and layer, from fact_similarities (llm_eval.py: a real LLM's prompts):

        (sim(X,Y) - sim(X,O)) / (sim(X,X) - sim(X,O))

    sim = mean pairwise cosine; X = the fact's source-language questions (lang 0), Y = its question
    in the target language, O = the source-language questions of the other facts of its ftype (same
    source language); sim(X,X) over pairs i != j. 1: the translation is as close to the source
    questions as they are to each other; 0: no closer than other facts of the source language;
    < 0: further. Unlike `unification` nothing is pooled over facts, so a fact whose
    paraphrases are barely closer to each other than to other facts (denominator near 0, or below
    it) gets an extreme or sign-flipped score; AUC downstream only reads ranks, the t-test does not.
    With one source question sim(X,X) is undefined; `fallback` decides (the fact's kind):
      self      sim(X,X) = 1, the self-similarity of a unit vector: (sim(X,Y) - sim(X,O)) /
                (1 - sim(X,O)). Same scale (1 = the translation's representation equals the
                question's, 0 = no closer than other facts), but shrunk towards 0 compared with
                the score paraphrases would give, since their sim(X,X) < 1
      centered  sim(X,Y) - sim(X,O): the fact-specific similarity, not normalized
      cross     sim(X,Y): the raw cosine, no baseline
    Facts with >= 2 source questions are of kind 'normalized'; a fact with no other fact in its
    source language has no baseline: kind 'none', scores NaN (except under 'cross'). A score whose
    denominator is below eps (no fact-specific similarity at all, e.g. a layer where every prompt's
    last token has the same representation) is NaN: there is nothing to normalize.
    H: unit vectors (N, L+1, d); fact, lang, ftype: (N,) ids.
    -> scores (F, nl-1, L+1) float64 numpy (column l-1 = lang id l), kinds: list of F strings."""
    cols = []
    for layer in range(H.shape[1]):
        s = fact_similarities(unit(H[:, layer].double()), fact, lang, ftype)
        multi = s['n_x'] >= 2                                            # (F,) sim(X,X) is defined
        base = s['base'][:, None]                                        # (F, 1)
        den = torch.where(multi, s['within'], torch.ones_like(s['within']))[:, None] - base
        norm = (s['cross'] - base) / den.where(den.abs() >= eps, torch.nan)   # (F, nl-1)
        alt = {'self': norm, 'centered': s['cross'] - base, 'cross': s['cross']}[fallback]
        cols.append(torch.where(multi[:, None], norm, alt))
    kinds = ['normalized' if nx >= 2 else fallback for nx in s['n_x'].tolist()]
    kinds = ['none' if k != 'cross' and no < 1 else k for k, no in zip(kinds, s['n_other'].tolist())]
    U = torch.stack(cols, -1)                                            # (F, nl-1, L+1)
    U[torch.tensor([k == 'none' for k in kinds])] = torch.nan
    return U.numpy(), kinds


def fact_ratio(H, fact, lang, ftype):
    """The method's per-fact ratio sim(X,Y) / sim(X,X) (X, Y as in `fact_unification`), shown beside the
    normalized score and deciding nothing (docs/verdicts.md, change C5); with one source question
    sim(X,X) = 1 (a unit vector's self-similarity), so the ratio is sim(X,Y). H: unit vectors (N, L+1, d).
    -> (F, nl-1, L+1) float64 numpy."""
    cols = []
    for layer in range(H.shape[1]):
        s = fact_similarities(unit(H[:, layer].double()), fact, lang, ftype)
        within = torch.where(s['n_x'] >= 2, s['within'], torch.ones_like(s['within']))[:, None]   # (F, 1)
        cols.append(s['cross'] / within.where(within.abs() >= 1e-6, torch.nan))
    return torch.stack(cols, -1).numpy()


def mann_whitney(a, b):
    """Two-sided Mann-Whitney U test of a against b (normal approximation with the tie correction,
    scipy's): (U of a, p). The rank test of the AUC, which is U / (len(a) len(b))."""
    from scipy import stats
    if min(len(a), len(b)) < 1 or np.ptp(np.concatenate([a, b])) == 0:                 # nothing to rank
        return np.nan, np.nan
    res = stats.mannwhitneyu(a, b, alternative='two-sided', method='asymptotic')
    return float(res.statistic), float(res.pvalue)


def roc_auc(scores, labels):
    """Probability that a random positive outscores a random negative (ties count half)."""
    s, y = np.asarray(scores, float), np.asarray(labels, bool)
    n1, n0 = y.sum(), (~y).sum()
    if n1 == 0 or n0 == 0:
        return float('nan')
    _, inv, cnt = np.unique(s, return_inverse=True, return_counts=True)
    order = np.argsort(s, kind='stable')
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    ranks = (np.bincount(inv, ranks) / cnt)[inv]                 # average rank within ties
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def separation_stats(S, labels, alpha_, groups=None):
    """Per column of S (P, K): AUC for predicting labels, a Mann-Whitney U test (the rank test the
    verdict reads: mw_*) and a Welch t-test beside it, correct vs incorrect, each Bonferroni-corrected
    over the K columns. Each column uses its finite entries only (NaN = a
    transfer without a score at that layer); n_correct and n_incorrect count them. groups (P,):
    also auc_within, the mean of the AUCs within each group (weighted by its size; groups with
    one outcome only are left out), e.g. per target language, whose difficulty the pooled AUC mixes in."""
    from scipy import stats
    S, labels = np.asarray(S, float), np.asarray(labels, bool)
    S = S[:, None] if S.ndim == 1 else S                         # (P, K)
    res = []
    for k in range(S.shape[1]):
        ok = np.isfinite(S[:, k])
        s, y = S[ok, k], labels[ok]
        a, b = s[y], s[~y]
        flat = len(s) and np.ptp(s) <= 1e-9 * max(1.0, np.abs(s).max())   # e.g. the ratio where every prompt is alike
        t, p = stats.ttest_ind(a, b, equal_var=False) if min(len(a), len(b)) > 1 and not flat else (np.nan, np.nan)
        u, pu = mann_whitney(a, b) if not flat else (np.nan, np.nan)
        pb, pub = (min(1.0, q * S.shape[1]) if np.isfinite(q) else float('nan') for q in (p, pu))
        res.append(dict(auc=roc_auc(s, y), t=float(t), p=float(p), p_bonferroni=pb, significant=bool(pb < alpha_),
                        mw_u=u, mw_p=pu, mw_p_bonferroni=pub, mw_significant=bool(pub < alpha_),
                        n_correct=int(y.sum()), n_incorrect=int((~y).sum()),
                        mean_correct=float(a.mean()) if len(a) else None,
                        mean_incorrect=float(b.mean()) if len(b) else None))
        if groups is not None:
            g = np.asarray(groups)[ok]
            w = [(roc_auc(s[g == v], y[g == v]), (g == v).sum()) for v in np.unique(g)]
            w = [(auc, n) for auc, n in w if np.isfinite(auc)]
            res[-1]['auc_within'] = float(np.average([a for a, _ in w], weights=[n for _, n in w])) if w else None
    return res


# ----------------------------------------------------------------------------- answers (llm_eval.py, cldr_facts.py)
SUBSTRING_LANGS = {'ja', 'zh', 'th', 'ko', 'he'}  # answers matched as substrings: no spaces, or particles attached


def normalize(s):
    """NFKC, casefold, punctuation and symbols -> spaces, collapsed whitespace."""
    s = unicodedata.normalize('NFKC', str(s)).casefold()
    s = ''.join(' ' if unicodedata.category(c)[0] in 'PSZC' else c for c in s)
    return ' '.join(s.split())


def judge_match(question, gold, pred, lang):
    """Correct when the normalised gold answer occurs in the normalised prediction, on word
    boundaries (plain substring for languages written without spaces, and for Korean and Hebrew,
    whose particles and prefixes attach to the word: 일본은, ביפן)."""
    g, p = normalize(gold), normalize(pred)
    if not g:
        return False
    return g in p if lang in SUBSTRING_LANGS else f' {g} ' in f' {p} '
