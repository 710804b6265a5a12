"""
The verdict on each finding at each scale by the rules of docs/verdicts.md, written down before the runs:
RULES holds their numbers, the functions below their checks. A finding function takes dev/report.py's
state (every result in assets/ at each scale, the toy and LLM results) and a scale, and returns (status,
text, key): key is the one number that carries the finding. A result made on an older dataset or config,
incomplete, or from a setting the rule says cannot show the finding is never "reproduced".
"""
import functools
import itertools
import os

import metrics
from config import experiments
from data_gen import FACT_TYPES
from records import dig, pearson

# The numbers of the verdict rules (docs/verdicts.md states each rule and why; a test keeps the two
# in step). Fixed before the laptop and paper runs of data version 2; not knobs, so that no run can
# be judged by a rule tuned to it.
RULES = dict(
    regime_ood0=0.85,     # mean OOD at celeb_frac 0 at or above this: no room for parallel data to show (1, 2)
    regime_spread=0.2,    # final OOD of the runs with a unification score spans less: nothing to predict (3, 5)
    min_runs=10,          # fewest runs (for 3 and 5: runs with parallel data) a rule across runs is read on
    id_high=0.95,         # 1: a run's ID accuracy counts as near perfect from here, in `most` runs
    most=0.75,            # 1, 5: "most" runs, read as three in four (1: ID near perfect; 5: the checkpoint regime)
    ood_range=0.3,        # 1: final OOD spans at least this across runs
    id_ood_r=0.5,         # 1: |Pearson r(ID, OOD)| across runs below this
    rho=0.8,              # 2, 4: Spearman rho of mean OOD with the knob at least this
    rise=0.1,             # 2: mean OOD at the largest celeb_frac minus at celeb_frac 0 at least this
    chance_margin=0.2,    # 2: OOD at celeb_frac 0 at least chance + this (all fact types together) ...
    chance_x=3,           # ... and at least this many times chance for every fact type
    years_gap=0.05,       # 2: at celeb_frac 0 both year types above both city types by at least this
    early_frac=0.05,      # 3: "early" = the first checkpoint at or past this share of training
    early_r=0.7,          # 3: Pearson r(early unification, final OOD) at least this, r(early language footprint, OOD) at most -this
    gap=0.05,             # 2, 4: a difference in mean OOD counts from here (seeds differ by ~0.05); closer means tie in Spearman
    unif_r=0.7,           # 5: Pearson r(unification, final OOD) at least this
    sel_gap=0.03,         # 5: the unification pick within this of the 1%-OOD-test pick (runs) / last best-ID pick (checkpoints)
    sel_gain=0.5,         # 5: the unification pick gains at least this share of oracle - random
    toy_cross=0.95,       # 6: toy cross-language accuracy at lang_var 0 and with the faintest language feature
    toy_drop=0.1,         # 6: toy cross-language accuracy at the largest lang_var below same-language by this
    llm_layers=0.5,       # 6: share of layers where unification separates correct transfers (AUC > 0.5, Bonferroni p < alpha)
)


def spearman(x, y, tie=0.0):
    """Pearson's r of the ranks (ties share their mean rank). Values of y within `tie` of each other are
    tied (change C9: means closer than the seed spread are not ordered): a value's rank counts the values
    below it by more than `tie`, plus half of the others within `tie` of it; tie=0 is the usual Spearman.
    Ranks make it a ratio of small integers (4 points, one swap: exactly 0.8), so it is rounded to 9
    decimals: float error (0.79999...) must not decide a rule at its boundary."""
    pts = [(a, b) for a, b in zip(x, y) if a is not None and b is not None]
    rank = lambda v, t: [sum(u < w - t for u in v) + (sum(abs(u - w) <= t for u in v) - 1) / 2 for w in v]
    if len(pts) < 3:
        return None
    ry = rank([b for _, b in pts], tie)
    if len(set(ry)) == 1:                  # every mean tied with every other: no order at all
        return 0.0
    r = pearson(rank([a for a, _ in pts], 0.0), ry)
    return None if r is None else round(r, 9)


# ----------------------------------------------------------------------------- reading one result (a summary.json)
def num(x, fmt='.3f'):
    return '–' if x is None else format(x, fmt)


def acc(run, split, ft='all', lang='all', what=0):
    """One of a run's final [accuracy, probability, n] (what = 0, 1, 2) of a split, fact type and language."""
    return (dig(run, 'final', split, ft, lang) or [None] * 3)[what]


def n_runs(s):
    """(runs present, runs the experiment's config makes)."""
    return len(s['runs']), len(s['runs']) + len(s.get('runs_missing', []))


def machine_of(p):
    """The machine a provenance entry names: the GPU, or the CPU model and its cores."""
    return f"{p.get('cpu')} ({p.get('cores')} cores)" if p.get('device') == 'cpu' else str(p.get('device'))


def scale_line(s):
    """What a result is, on what it was made, and why it is no longer current, if so."""
    n, total = n_runs(s)
    devices = ', '.join(dict.fromkeys(machine_of(p) for p in s.get('provenance', [])))
    return f"`{s['exp']}` ({s['_scale']} scale), {n} of {total} runs, {devices}" + (f": **{stale_word(s)}**" if s['_stale'] else '')


def design(s):
    """The knobs of every run the experiment's config makes, present or missing: [dict]."""
    sweep = dig(s, 'config', 'sweep') or {}
    if not sweep:
        return [r.get('knobs') or {} for r in s['runs']]
    return [dict(zip(sweep, c)) for c in itertools.product(*sweep.values())]


def mean_ood(s, ft='all', split='ood_test', **knobs):
    """Mean final OOD (or `split`) accuracy of the runs with these knob values (None if none)."""
    vals = [acc(r, split, ft) for r in s['runs'] if all((r.get('knobs') or {}).get(k) == v for k, v in knobs.items())]
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def whole_seeds(s):
    """The seeds whose every run the config makes is present, when the present runs are exactly those
    (one seed of a two-seed sweep, trained apart: docs/verdicts.md C8); [] otherwise."""
    sweep = dig(s, 'config', 'sweep') or {}
    if 'seed' not in sweep:
        return []
    have = {tuple((r.get('knobs') or {}).get(k) for k in sweep) for r in s['runs']}
    want = {x: {tuple(k.values()) for k in design(s) if k['seed'] == x} for x in sweep['seed']}
    seeds = [x for x, runs in want.items() if runs <= have]
    return seeds if seeds and have == set().union(*(want[x] for x in seeds)) else []


def seeds_alone(s):
    """The whole seeds judged alone: whole_seeds where runs of the config are missing, else []."""
    return whole_seeds(s) if n_runs(s)[0] < n_runs(s)[1] else []


def seed_label(s):
    """' (seed 0 of 2)' for a result judged on whole seeds alone, else ''."""
    seeds = seeds_alone(s)
    return f" (seed {', '.join(map(str, seeds))} of {len(dig(s, 'config', 'sweep', 'seed'))})" if seeds else ''


def judged_design(s):
    """The runs a rule is read on: the config's, or those of the whole seeds judged alone (min_runs counts these)."""
    seeds = seeds_alone(s)
    return [k for k in design(s) if not seeds or k['seed'] in seeds]


def complete(s):
    """Every run is present, or every run of whole seeds (whole_seeds)."""
    n, total = n_runs(s)
    return n == total or bool(whole_seeds(s))


def scored_runs(s):
    """The runs with a final headline unification score (those with parallel data, usually)."""
    return [r for r in s['runs'] if dig(r, 'unification', metrics.HEADLINE, 'act') is not None]


# ----------------------------------------------------------------------------- the checks and verdicts
# A check is (ok, text) or (ok, text, key): ok True / False, or None where its measure is missing; key
# the finding's one number, if this check carries it. A finding's status at one scale: the evidence
# first (not run, older dataset or config, a setting that cannot show it, incomplete), then the checks.
MARK = {True: 'holds', False: 'fails', None: 'not measured'}   # a check's ok, in words


def check_text(checks):
    return '; '.join(f"{c[1]} [{MARK[c[0]]}]" for c in checks)


def key_of(checks):
    return next((c[2] for c in checks if len(c) > 2), '')


def verdict(checks):
    """reproduced (every check holds), not reproduced (none does), mixed, or partly judged (those
    measured hold, some could not be measured)."""
    oks = [c[0] for c in checks if c[0] is not None]
    if not oks:
        return 'not judged: no check could be measured'
    if all(oks):
        return ('reproduced' if len(oks) == len(checks) else
                f'partly judged: {len(oks)} of {len(checks)} checks hold, the rest not measured')
    return 'mixed' if any(oks) else 'not reproduced'


def stale_word(s):
    """Why a result is no longer current, in plain words."""
    return '; '.join('made on an older version of the dataset' if w.startswith('made on data') else
                     w.replace('config changed:', 'made before its config changed:') for w in s['_stale'])


def judge(s, regime, checks):
    """The status of one experiment's checks: not judged when made on an older dataset or config, or in
    a setting the rule says cannot show the finding; provisional when runs are missing; else the
    verdict. -> (status, text, key)."""
    if s is None:
        return 'not run', '', ''
    text = f"{scale_line(s)}: {check_text(checks)}"
    n, total = n_runs(s)
    if s['_stale']:
        return f"not judged: {stale_word(s)}; to be re-run{' on a GPU' if s['_scale'] == 'paper' else ''}", text, ''
    if regime:
        return f'not judged: the setting cannot show it ({regime})', text, ''
    if not complete(s):
        return f'provisional: {n} of {total} runs', text, key_of(checks)
    return verdict(checks) + seed_label(s), text, key_of(checks)


def ceiling_regime(s):
    """Why findings 1 and 2 cannot show in this result (None if they can or it cannot be told yet)."""
    if len(judged_design(s)) < RULES['min_runs']:
        return f"{len(judged_design(s))} runs < {RULES['min_runs']}"
    o = mean_ood(s, celeb_frac=0.0)
    if o is not None and o >= RULES['regime_ood0']:
        return f"OOD at celeb_frac 0 is {o:.2f} >= {RULES['regime_ood0']}: no room for parallel data to show"
    return None


def spread_regime(s):
    """Why findings 3 and 5 cannot show: too few runs with parallel data, or their OOD hardly varies."""
    n = sum(k.get('celeb_frac', dig(s, 'config', 'celeb_frac') or 0.0) > 0 for k in judged_design(s))
    if n < RULES['min_runs']:
        return f"{n} runs with parallel data < {RULES['min_runs']}"
    oods = [acc(r, 'ood_test') for r in scored_runs(s) if acc(r, 'ood_test') is not None]
    if complete(s) and len(oods) >= 3 and max(oods) - min(oods) < RULES['regime_spread']:   # a part may span less than all
        return (f"OOD of the runs with parallel data spans {max(oods) - min(oods):.2f} < {RULES['regime_spread']}: "
                "nothing to predict")
    return None


def checks1(s):
    pairs = [(acc(r, 'id_test'), acc(r, 'ood_test')) for r in s['runs']]
    ids, oods = [i for i, o in pairs if None not in (i, o)], [o for i, o in pairs if None not in (i, o)]
    if len(ids) < 3:
        return [(None, f'{len(ids)} runs')] * 3
    share = sum(i >= RULES['id_high'] for i in ids) / len(ids)
    r = pearson(ids, oods)                                             # None: ID constant, so it predicts nothing
    sel = s.get('selection') or {}
    return [(share >= RULES['most'], f"ID >= {RULES['id_high']} in {share:.0%} of runs (rule >= {RULES['most']:.0%}; "
             f"ID {min(ids):.2f}-{max(ids):.2f})"),
            (max(oods) - min(oods) >= RULES['ood_range'], f"OOD {min(oods):.2f}-{max(oods):.2f}, range "
             f"{max(oods) - min(oods):.2f} (rule >= {RULES['ood_range']})",
             f"OOD {min(oods):.2f}-{max(oods):.2f} across runs, ID >= {RULES['id_high']} in {share:.0%} of them"),
            (r is None or abs(r) < RULES['id_ood_r'], f"r(ID, OOD) = {num(r, '+.2f')} "
             f"(rule: -{RULES['id_ood_r']} < r < {RULES['id_ood_r']}"
             + (f"; picking runs by ID gives OOD {sel['id_test']:.3f}, a random pick {sel['random']:.3f})"
                if sel.get('id_test') is not None else ')'))]


def chance(cfg, ft):
    """1 / number of values of a fact type, from the experiment's knobs."""
    n = dict(birth_year=cfg.get('n_birth_years', 20), death_year=cfg.get('n_birth_years', 20) + cfg.get('n_lifespans', 11) - 1,
             birth_city=cfg.get('n_cities', 100), death_city=cfg.get('n_cities', 100))[ft]
    return 1 / n


def checks2(s):
    cfs = sorted({(r.get('knobs') or {}).get('celeb_frac') for r in s['runs']} - {None})
    means = [mean_ood(s, celeb_frac=c) for c in cfs]
    rho = spearman(cfs, means, tie=RULES['gap'])
    rise = means[-1] - means[0] if len(cfs) >= 2 else None
    out = [(None if rho is None else rho >= RULES['rho'] and rise >= RULES['rise'],
            'mean OOD by celeb_frac ' + ', '.join(f"{c}: {m:.2f}" for c, m in zip(cfs, means))
            + f"; Spearman {num(rho, '.2f')} (rule >= {RULES['rho']}, means within {RULES['gap']} tied), rise {num(rise, '+.2f')} (rule >= {RULES['rise']})",
            f"mean OOD {means[0]:.2f} without parallel data, {means[-1]:.2f} with the most" if means else '')]
    if not cfs or cfs[0] != 0:
        return out + [(None, 'no run at celeb_frac 0')] * 2
    by_ft = {ft: mean_ood(s, ft, celeb_frac=0.0) for ft in ['all', *FACT_TYPES]}
    if None in by_ft.values():
        return out + [(None, 'OOD by fact type missing at celeb_frac 0')] * 2
    ch = {ft: chance(s['config'], ft) for ft in FACT_TYPES}
    overall = sum(ch.values()) / len(ch)
    above = by_ft['all'] >= overall + RULES['chance_margin'] and all(by_ft[ft] >= RULES['chance_x'] * ch[ft] for ft in FACT_TYPES)
    gap = min(by_ft['birth_year'], by_ft['death_year']) - max(by_ft['birth_city'], by_ft['death_city'])
    return out + [(above, f"at celeb_frac 0 OOD {by_ft['all']:.2f} (rule >= chance {overall:.2f} + {RULES['chance_margin']}), "
                   'by fact type ' + ', '.join(f"{ft} {by_ft[ft]:.2f}" for ft in FACT_TYPES) + ' (rule >= '
                   f"{RULES['chance_x']} x chance: " + ', '.join(f"{RULES['chance_x'] * ch[ft]:.2f}" for ft in FACT_TYPES) + ')'),
                  (gap >= RULES['years_gap'], f"years above cities by {gap:+.2f} (rule >= {RULES['years_gap']})")]


def with_gemma(regime, checks, state, scale):
    """Findings 1 and 2: judged on sweep_celeb; the Gemma-2 block's sweep judged beside it, and
    named in the status where its verdict differs."""
    s, g = (state['results'].get((n, scale)) for n in ('sweep_celeb', 'gemma2'))
    status, text, key = judge(s, s and regime(s), s and checks(s))
    if g is not None:
        g_status, g_text, _ = judge(g, regime(g), checks(g))
        text += ('<br>' if text else '') + g_text
        status += f"; Gemma-2 block: {g_status}" if g_status != status else ''
    return status, text, key


finding1 = functools.partial(with_gemma, ceiling_regime, checks1)    # (state, scale) -> (status, text, key)
finding2 = functools.partial(with_gemma, ceiling_regime, checks2)


def early_point(run, key, frac):
    """(iter, score) at the first checkpoint at or past frac of training, if it has a score."""
    traj = run.get('trajectory') or {}
    its = traj.get('iter', [])
    i = next((i for i, it in enumerate(its) if it >= frac * run['iter']), None)
    return (its[i], (traj.get(key) or [None] * len(its))[i]) if i is not None else (None, None)


def early_rs(s):
    """({key: (Pearson r(its score at the early checkpoint, final OOD), runs)} for unification, the paper's
    ratio and the language footprint, [the early checkpoints' iters])."""
    frac, out = RULES['early_frac'], {}
    for key in ('unification', 'unification_paper', 'lang_footprint'):
        pts = [(early_point(r, key, frac)[1], acc(r, 'ood_test')) for r in s['runs']]
        pts = [(u, o) for u, o in pts if u is not None and o is not None]
        out[key] = (pearson(*zip(*pts)) if len(pts) >= 3 else None, len(pts))
    return out, sorted({early_point(r, 'unification', frac)[0] for r in s['runs']} - {None})


def checks3(s):
    """r(unification, final OOD) at the early checkpoint over the runs with a score, and r(language
    footprint there, final OOD) over every run: separation early predicts poor OOD (change C2)."""
    frac, r_min = RULES['early_frac'], RULES['early_r']
    rs, its = early_rs(s)
    (r, n), (r_paper, _), (r_fp, n_fp) = rs['unification'], rs['unification_paper'], rs['lang_footprint']
    return [(None if r is None else r >= r_min, f"at iter {'/'.join(map(str, its)) or '–'} ({frac:.0%} of training) "
             f"r(unification, final OOD) = {num(r, '.2f')} over {n} runs (rule >= {r_min}; the "
             f"paper's ratio: {num(r_paper, '.2f')})"),
            (None if r_fp is None else r_fp <= -r_min, f"r(language footprint there, final OOD) = {num(r_fp, '.2f')} "
             f"over {n_fp} runs (rule <= -{r_min})",
             f"r(early unification, final OOD) = {num(r, '.2f')}, r(early language footprint, final OOD) = {num(r_fp, '.2f')}")]


def finding3(state, scale):
    s = state['results'].get(('sweep_celeb', scale))
    return judge(s, s and spread_regime(s), s and checks3(s))


def emb_share(s):
    """The input embeddings' share of an example's squared gradient norm, as it is and after Adam's division,
    per language, averaged over the runs that measured it (analyze.grad_share); where the runs vary lang_ratio,
    for each lang_ratio apart (the division inflates the rarer language's rows: its share grows with the ratio)
    -> text, or '' if none did."""
    runs = [r for r in s['runs'] if dig(r, 'grad_share', 'adam', 'emb')]
    if not runs:
        return ''
    mean = lambda rs, how: ' / '.join(f"{sum(r['grad_share'][how]['emb'][l] for r in rs) / len(rs):.2f}"
                                      for l in range(len(rs[0]['grad_share'][how]['emb'])))
    ratios = {dig(r, 'knobs', 'lang_ratio') for r in runs}
    if len(ratios) < 2 or None in ratios:
        return (f"; the input embeddings' share of an example's squared gradient (language 0 / 1, mean over {len(runs)} "
                f"runs): {mean(runs, 'raw')} as it is, {mean(runs, 'adam')} after Adam's division")
    groups = [(v, [r for r in runs if dig(r, 'knobs', 'lang_ratio') == v]) for v in sorted(ratios)]
    return ("; the input embeddings' share of an example's squared gradient (language 0 / 1, as it is -> after Adam's "
            "division, mean over the runs of each lang_ratio): "
            + ', '.join(f"lang_ratio {v:g}: {mean(rs, 'raw')} -> {mean(rs, 'adam')}" for v, rs in groups))


def headline_r(s, v=metrics.HEADLINE):
    """Pearson r(unification v of the activations at the analysis' layer, final OOD) over s's runs, or None."""
    return dig(s, 'correlations', v, 'act', s['analysis_settings'].get('unif_layer', 'concat'))


def checks5(s):
    r, n = headline_r(s), len(scored_runs(s))
    grad = dict(dig(s, 'correlations', metrics.HEADLINE, 'grad') or {})   # change C4: shown without the input embeddings
    no_emb = grad.pop('no_emb', None)
    c1 = (None if r is None else r >= RULES['unif_r'], f"r(unification, final OOD) = {num(r, '.2f')} activations over {n} "
          f"runs (rule >= {RULES['unif_r']}; the paper's ratio: {num(headline_r(s, metrics.PAPER_RATIO), '.2f')}); gradients without the "
          f"input embeddings {num(no_emb, '.2f')}{' (needs a re-analysis of the checkpoints)' if no_emb is None else ''}, by "
          "group (concat: the whole gradient) " + (', '.join(f"{k} {num(v, '.2f')}" for k, v in sorted(grad.items())) or '–')
          + emb_share(s))
    sel = s.get('selection') or {}
    u, small, rand, best = (sel.get(k) for k in ('unification', 'ood_1pct', 'random', 'oracle'))
    ok = None if None in (u, small, rand, best) else \
        u >= small - RULES['sel_gap'] and u - rand >= RULES['sel_gain'] * (best - rand)
    c2 = (ok, f"run picks: unification {num(u)}, OOD on 1% of the test {num(small)}, ID {num(sel.get('id_test'))}, random "
          f"{num(rand)}, oracle {num(best)}, the paper's ratio {num(sel.get('unification_paper'))} (rule: within "
          f"{RULES['sel_gap']} of the 1% pick and >= {RULES['sel_gain']:.0%} of oracle - random)")
    return [c1, c2, ckpt_check(s, r)]


def ckpt_key(r, ck):
    """Finding 5's one number: the correlation r, and the checkpoint picks ck where there are some."""
    return f"r(unification, final OOD) = {num(r, '.2f')}" + (
        f"; checkpoints it picks reach OOD {ck['ood']:.2f}, those picked by ID {ck['last_best_id']:.2f}" if ck else '')


def ckpt_check(s, r):
    """Finding 5's checkpoint check on s, with the key (r: the correlation read beside it) -> (ok, text, key)."""
    ck = dig(s, 'ckpt_selection_summary', 'unification_plus')
    beside = {k: dig(s, 'ckpt_selection_summary', k, 'ood') for k in ('unification', 'unification_paper', 'unification_any')}
    c3 = (None if ck is None else ck['ood'] >= ck['last_best_id'] - RULES['sel_gap'],
          f"checkpoint picks over {ck['n_runs']} runs, after ID reaches {s['analysis_settings'].get('ckpt_min_id')} x its "
          f"best: unification x ID {ck['ood']:.3f}, last best ID {ck['last_best_id']:.3f}, oracle {ck['oracle']:.3f} (rule: "
          f"within {RULES['sel_gap']} of last best ID); beside it unification {num(beside['unification'])}, the paper's ratio "
          f"{num(beside['unification_paper'])}, unification over every checkpoint {num(beside['unification_any'])}" if ck else
          "checkpoint picks: no unification x ID pick")
    return c3 + (ckpt_key(r, ck),)


def ckpt_regime(s):
    """Change C3's gate: the last best-ID checkpoint within sel_gap of the run's best OOD in `most` of the runs
    the primary rule picks in -> the text of the gate where it holds, else None."""
    per_run = [r['ckpt_selection'] for r in s['runs'] if dig(r, 'ckpt_selection', 'unification_plus')]
    at_oracle = sum(d['last_best_id']['ood'] >= d['oracle'] - RULES['sel_gap'] for d in per_run)
    if per_run and at_oracle >= RULES['most'] * len(per_run):
        return (f"not judged: regime: last best ID within {RULES['sel_gap']} of the best checkpoint's OOD in {at_oracle} "
                f"of {len(per_run)} runs")
    return None


def judge5(s, long=False):
    """Finding 5's status by judge(). The checkpoint check is read on s, or on `long` when given (change C10:
    `selection_long` for `selection`; None: not run), `selection`'s own reading shown beside it; it waits while
    `long` is not run, stale or incomplete, and is withheld where ckpt_regime's gate holds (change C3)."""
    checks, wait, own = checks5(s), None, ckpt_regime(s)
    if long is False:
        regime, (ok, text, key) = own, checks[2]
    else:
        n, total = n_runs(long) if long else (0, 0)
        wait = ('not run' if long is None else stale_word(long) if long['_stale']
                else f"{n} of {total} runs" if n < total else None)
        if wait:
            regime, ok, text, key = None, None, f"checkpoint picks on `selection_long`: waits ({wait})", ckpt_key(headline_r(s), None)
        else:
            regime, (ok, text, key) = ckpt_regime(long), ckpt_check(long, headline_r(s))
            text = f"`selection_long`: {text}"
    checks[2] = (None if regime else ok, text + (f" ({regime})" if regime else '') + (
        '' if long is False else f"; beside it `selection`'s {checks[2][1]}" + (f" ({own})" if own else '')), key)
    status, text, key = judge(s, spread_regime(s), checks)
    if not status.startswith(('not judged', 'provisional')):
        if wait:
            status = f"provisional: checkpoint picks wait for `selection_long` ({wait}; the other checks: {verdict(checks[:2])})"
        elif regime:
            status = f"{verdict(checks[:2])} (checkpoint picks not judged: regime){seed_label(s)}"
    return status, text, key


def finding5(state, scale):
    """Judged on `selection`, the experiment designed for it, its checkpoint picks on `selection_long` (change
    C10); until `selection` has results, sweep_celeb's reading is provisional at laptop scale and judged, so
    named, at paper scale (docs/verdicts.md C8)."""
    s = state['results'].get(('selection', scale)) or state['results'].get(('sweep_celeb', scale))
    if s is None:
        return judge(None, None, None)
    status, text, key = judge5(s, state['results'].get(('selection_long', scale)) if s['exp'] == 'selection' else False)
    if s['exp'] != 'selection' and not status.startswith(('not judged', 'provisional')):
        status = (f"{status}, on `sweep_celeb`" if scale == 'paper' else
                  f"provisional: `selection` not run (`sweep_celeb`: {status})")
    return status, text, key


# finding 4: each check compares mean OOD at celeb_frac 0 (the claim: better OOD without parallel data)
# across experiments; the templates, events and steps checks compare with shared_tokens at
# shared_token_frac 1 (no token tells the language, as in those experiments)
def checks4(state, scale):
    """[(names it needs, the OOD that leaves it room (its regime), ok, text)] for finding 4."""
    def get(name, **knobs):                                            # mean OOD at celeb_frac 0, None if not run
        s = state['results'].get((name, scale))
        return mean_ood(s, celeb_frac=0.0, **knobs) if s else None
    gap, out = RULES['gap'], []
    v = {k: get('balance', variant=k) for k in ('balanced', 'src', 'imbalanced')}
    steps = None if None in v.values() else min(v['balanced'] - v['src'], v['src'] - v['imbalanced'])
    out.append((['balance'], v['src'], None if steps is None else steps >= gap,
                'informativeness: OOD balanced {}, src {}, imbalanced {} (rule: each step >= {})'.format(
                    *(num(v[k], '.2f') for k in ('balanced', 'src', 'imbalanced')), gap)))
    low, cased, word = get('char_low'), get('char_cased'), get('word')
    out.append((['char_low', 'char_cased'], cased, None if None in (low, cased) else low - cased >= gap,
                f"extractability: OOD char_low {num(low, '.2f')} vs char_cased {num(cased, '.2f')} (rule: >= +{gap}; "
                f"beside them the word tokenizer as long: {num(word, '.2f')})"))
    def sharing(name):                                                 # [(shared_token_frac, mean OOD)]
        fracs = {(r.get('knobs') or {}).get('shared_token_frac') for r in
                 (state['results'].get((name, scale)) or {}).get('runs', [])} - {None}
        return [(f, get(name, shared_token_frac=f)) for f in sorted(fracs)]
    role = trend(['shared_tokens_role'], 'shared filler words that keep their role', sharing('shared_tokens_role'))
    placed = ', '.join(f"{f}: {num(o, '.2f')}" for f, o in sharing('shared_tokens'))
    if placed and (state['results'].get(('shared_tokens', scale)) or {}).get('_stale'):
        placed += f", {stale_word(state['results'][('shared_tokens', scale)])}"
    out.append(role[:3] + (role[3] + f" (beside it, in random slots: {placed or 'not run'})",))
    base = get('shared_tokens', shared_token_frac=1.0)
    out.append(trend(['templates_02', 'shared_tokens', 'templates_10', 'templates_20'], 'templates',
                     [(2, get('templates_02')), (5, base), (10, get('templates_10')), (20, get('templates_20'))]))
    for name in ('people_10x', 'steps_10x'):
        o = get(name)
        out.append(([name, 'shared_tokens'], base, None if None in (o, base) else o <= base + gap,
                    f"control: OOD {name} {num(o, '.2f')} vs {num(base, '.2f')} (rule: <= +{gap})"))
    return out


def trend(names, what, pts):
    """A check that mean OOD rises with a knob: Spearman >= rho and a rise >= gap; its regime is the
    OOD at the knob's first value."""
    pts = [(k, o) for k, o in pts if o is not None]
    rho = spearman(*zip(*pts), tie=RULES['gap']) if len(pts) >= 3 else None
    ok = None if rho is None else rho >= RULES['rho'] and pts[-1][1] - pts[0][1] >= RULES['gap']
    return (names, pts[0][1] if pts else None, ok, f"{what}: mean OOD " + ', '.join(f"{k}: {o:.2f}" for k, o in pts)
            + f" (rule: Spearman {num(rho, '.2f')} >= {RULES['rho']}, means within {RULES['gap']} tied; rise >= {RULES['gap']})")


WHY4 = {'not run': 'not run', 'stale': 'made on an older version of the dataset', 'provisional': 'runs missing',
        'cannot': 'the setting cannot show it'}   # why a check of finding 4 is not judged, in words


def finding4(state, scale):
    """Each check gated by its experiments (not run, older dataset or config, incomplete, a setting that
    cannot show it); the status from the checks that could be judged, provisional while others wait for runs."""
    checks, whys = [], []
    for names, room, ok, text in checks4(state, scale):
        found = [state['results'].get((n, scale)) for n in names]
        no_recall = [f"{n} ID {i:.2f}" for n, s in zip(names, found) if s is not None
                     for i in [mean_ood(s, split='id_test', celeb_frac=0.0)] if i is not None and i < RULES['id_high']]
        why = ('not run' if None in found else 'stale' if any(s['_stale'] for s in found)
               else 'cannot' if (room is not None and room >= RULES['regime_ood0']) or no_recall
               else 'provisional' if any(n_runs(s)[0] < n_runs(s)[1] for s in found) else None)
        detail = WHY4.get(why, '') + (f": {', '.join(no_recall)} at celeb_frac 0 < {RULES['id_high']}"
                                      if why == 'cannot' and no_recall else '')
        checks.append((ok if why is None else None, text + (f" ({detail})" if why else '')))
        whys.append(why)
    ran = [n for n, e in experiments.EXPERIMENTS.items()                # the experiments the registry lists for finding 4
           if '4' in str(e['findings']).replace(' ', '').split(',') and (n, scale) in state['results']]
    text = '; '.join(f"{t} [{MARK[ok] if w is None else 'not judged'}]" for (ok, t), w in zip(checks, whys))
    if not ran:
        return 'not run', '', ''
    text = f"{', '.join(f'`{n}`' for n in ran)}: {text}"
    judged = [c for c, w in zip(checks, whys) if w is None]
    if not judged:
        first = next(w for w in ('stale', 'provisional', 'cannot', 'not run') if w in whys)
        words = {'provisional': 'provisional: no check complete', 'not run': 'not run'}.get(first, f'not judged: {WHY4[first]}')
        return words + f" ({whys.count(first)} of {len(whys)} checks)", text, ''
    fails = [t.split(':')[0] for ok, t in judged if ok is False]
    key = f"{sum(ok for ok, _ in judged)} of {len(judged)} judged checks hold" + (f" (not: {', '.join(fails)})" if fails else '')
    if any(w not in (None, 'cannot') for w in whys):
        return f"provisional: {len(judged)} of {len(checks)} checks judged", text, key
    cannot = f" ({whys.count('cannot')} of {len(whys)} checks: {WHY4['cannot']})" if 'cannot' in whys else ''
    return verdict(judged) + cannot, text, key


def toy_checks(toy):
    tab = sorted(toy['table'], key=lambda r: r['lang_var'])
    top = max((r['lang_var'] for r in toy.get('scale_table', [])), default=None)
    faint = min((r for r in toy.get('scale_table', []) if r['lang_var'] == top), key=lambda r: r['lang_scale'], default=None)
    return [(tab[0]['cross_acc'] >= RULES['toy_cross'], f"toy: cross-language accuracy {tab[0]['cross_acc']:.3f} at lang_var "
             f"{tab[0]['lang_var']} (rule >= {RULES['toy_cross']})"),
            (tab[-1]['cross_acc'] <= tab[-1]['same_acc'] - RULES['toy_drop'], f"{tab[-1]['cross_acc']:.3f} at lang_var "
             f"{tab[-1]['lang_var']} vs same-language {tab[-1]['same_acc']:.3f} (rule: >= {RULES['toy_drop']} below)",
             f"toy: cross-language accuracy {tab[0]['cross_acc']:.2f} without a language feature, {tab[-1]['cross_acc']:.2f} "
             "with one"),
            (None if faint is None else faint['cross_acc'] >= RULES['toy_cross'],
             f"with the faintest language feature (lang_scale {faint['lang_scale']}) {faint['cross_acc']:.3f} "
             f"(rule >= {RULES['toy_cross']})" if faint else 'no lang_scale table')]


def llm_checks(llm):
    """The layers where unification separates correct transfers by the rank test (change C5: AUC > 0.5,
    Bonferroni-corrected Mann-Whitney p < alpha; the t-test's count beside it), and the overlap check.
    A result from before the rank test has the first check unmeasured: it is to be re-run."""
    layers = llm.get('per_layer') or []
    count = lambda sig: [i for i, l in enumerate(layers) if l.get(sig) and (l.get('auc') or 0) > 0.5]   # 0 = embeddings
    hits, t_hits, ranked = count('mw_significant'), count('significant'), any('mw_p' in l for l in layers)
    share, ve = len(hits) / max(1, len(layers)), dig(llm, 'overlap', 'variance_explained_sources') or {}
    r2o, r2c = ve.get('r2_overlap'), ve.get('r2_celebrity')
    run = f"; layers {hits[0]}-{hits[-1]}" if hits and hits[-1] - hits[0] == len(hits) - 1 else ''
    return [(share >= RULES['llm_layers'] if ranked else None, (f"{len(hits)} of {len(layers)} layers ({share:.0%}{run})"
             if ranked else 'rank test: to be re-run') + ": unification separates correct transfers (AUC > 0.5, Bonferroni-"
             f"corrected Mann-Whitney p < alpha; rule >= {RULES['llm_layers']:.0%}; the t-test: {len(t_hits)} of {len(layers)})",
             *[f"unification separates correct transfers in {len(hits)} of {len(layers)} layers"] * ranked),
            (None if None in (r2o, r2c) else r2o > r2c, f"over source languages, R^2 of vocabulary overlap {num(r2o)} vs "
             f"celebrity ratio {num(r2c)} (rule: overlap explains more)")]


def standin_text(state):
    """(status, text, key) of the CPU stand-in LLM under the LLM checks, or None where it has not run."""
    llm, prov = state['standin'], state['standin_prov'] or {}
    if not llm:
        return None
    checks, model = llm_checks(llm), dig(prov, 'model', 'package') or os.path.basename(str(llm.get('model')))
    status = verdict(checks) if checks[0][0] is not None else 'not judged: made before the rank test; to be re-run'
    return (status, f"stand-in LLM, not the paper's model or data ({model}, 4-bit, on {llm.get('n_items')} "
            f"CLDR facts x 12 languages, 2-core CPU): " + check_text(checks), key_of(checks))


def finding6(state, scale):
    """The toy model is judged in the laptop column (it runs on a CPU in seconds), Gemma-2-2B on
    ECLeKTic in the paper column (it needs a GPU). The CPU stand-in LLM (assets/llm_gemma3) is shown in
    the laptop column under the LLM checks, its status beside the toy's, never in the paper column."""
    if scale == 'laptop':
        toy, extra = state['toy'], standin_text(state)
        if not toy or not toy.get('table'):
            return ('not run', '', '') if extra is None else (f"toy not run; stand-in LLM: {extra[0]}", extra[1], extra[2])
        checks = toy_checks(toy)
        seeds = len(toy['table'][0].get('seeds', []))
        text = f"toy (linear model, {seeds} seeds, 2-core CPU): " + check_text(checks)
        if extra is None:
            return verdict(checks), text, key_of(checks)
        return (f"{verdict(checks)} (toy); stand-in LLM: {extra[0]}", text + '<br>' + extra[1],
                f"{key_of(checks)}" + (f"; stand-in LLM: {extra[2]}" if extra[2] else ''))
    llm, vocab = state['llm'], state['vocab']
    if llm:
        checks = llm_checks(llm)
        return verdict(checks), f"{llm.get('model')} on ECLeKTic: " + check_text(checks), key_of(checks)
    pairs = {'-'.join(sorted(k.split('-'))): v for k, v in (vocab or {}).get('jaccard', {}).items()}
    top3 = sorted(pairs.items(), key=lambda kv: -kv[1])[:3]
    return 'not run', ('only the vocabulary-overlap matrix (' + ', '.join(f"{k} {v:.3f}" for k, v in top3) + ')') if top3 else '', ''


def with_beside(finding):
    """A finding at a scale, with the text of the stale results kept beside partial current ones
    (assets/<exp>/stale/, e.g. an older-data GPU sweep beside one seed trained anew on a CPU) added."""
    def judged(state, scale):
        status, text, key = finding(state, scale)
        old = {k: s['_beside'] for k, s in state['results'].items() if k[1] == scale and s.get('_beside')}
        if old:
            _, old_text, _ = finding(dict(state, results={**state['results'], **old}), scale)
            lines = text.split('<br>')
            text = '<br>'.join(lines + [f"beside it: {t}" for t in old_text.split('<br>') if t and t not in lines])
        return status, text, key
    return functools.wraps(finding)(judged)


finding1, finding2, finding3, finding5 = map(with_beside, (finding1, finding2, finding3, finding5))
FINDINGS = (('1', 'ID recall near perfect, OOD varies widely; ID does not predict OOD', finding1, 'Fig. 1, 2'),
            ('2', 'more parallel data raises OOD; without any, OOD is far above chance, best for few-valued fact types',
             finding2, 'Fig. 1, 2'),
            ('3', 'early on a model unifies or separates the languages; separation predicts poor OOD', finding3, 'Fig. 3'),
            ('4', 'informative and extractable language features drive separation; 10x events or steps do not help',
             finding4, 'Fig. 6'),
            ('5', 'unification on training data tracks OOD and selects runs and checkpoints like a small OOD test',
             finding5, 'Fig. 4, 5'),
            ('6', 'a linear toy model shows the effect; in an LLM unification predicts transfer', finding6, 'Fig. 7'))
