"""
The measures of the analysis, as pure functions of representations and labels (SPEC section 8),
shared by analyze.py (the tiny models) and llm_eval.py (a real LLM). Each is tested on inputs
whose answer is known by construction (tests/test_metrics.py).

    unification        does a fact look the same in every language? (three variants, see there)
    variance_explained the feature footprint: R^2 of a regression on a categorical feature
    lang_probe         can a linear probe read the language off the representation?
    whiten             the TrackStar correction R^-1/2 of projected gradients
    select_runs        pick a run by a criterion; the OOD accuracy of the pick
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
