"""
The README's and docs/'s result tables and the verdict on each finding, written from assets/
(dev/results.py puts results there, config/experiments.py says where). A generated table sits
between `<!-- report:NAME -->` and `<!-- /report:NAME -->` in README.md or any docs/*.md (a block
may stand in several); nothing else of those files is touched.

Each finding is judged at each scale, laptop and paper, by the rules of docs/verdicts.md, written
down before the runs; RULES below holds their numbers. A result that is stale, incomplete (runs
missing) or from a regime the rule says cannot show the finding is never "reproduced".

    python -m dev.report                                        # rewrite the tables from assets/
    python -m dev.report --check                                # exit 1 if a table and assets/ disagree (tests run it)
    python -m dev.report --import=out/gpu/sweep_celeb-1of2.tgz  # archives of dev/run_queue.py -> assets/, then rewrite

It also takes results.py's knobs (--summarise=..., --resummarise=..., --force=True, ...): their
work first, then the tables.
"""
import glob
import itertools
import json
import os
import re
import sys

import metrics
from config import experiments
from configurator import cli, config_keys
from data_gen import FACT_TYPES
from dev import results
from dev.results import read_json
from plots import dig, pearson

# -----------------------------------------------------------------------------
readme = 'README.md'        # the README whose marked tables are rewritten, and those of the docs/*.md beside it
check = False               # only compare: exit 1 when a table differs from what assets/ gives
# -----------------------------------------------------------------------------
DEFAULTS = dict(results.DEFAULTS, **config_keys(globals()))
SCALES = ('laptop', 'paper')  # the two status columns, in this order
STANDIN = 'llm_gemma3'        # assets/<this>/: llm_eval.py's CPU run of a small real LLM on the CLDR facts (docs/llm.md)
# The numbers of the verdict rules (docs/verdicts.md states each rule and why; a test keeps the two
# in step). Fixed before the laptop and paper runs of data version 2; not knobs, so that no run can
# be judged by a rule tuned to it.
RULES = dict(
    regime_ood0=0.85,     # mean OOD at celeb_frac 0 at or above this: no room for parallel data to show (1, 2)
    regime_spread=0.2,    # final OOD of the runs with a unification score spans less: nothing to predict (3, 5)
    min_runs=10,          # fewest runs (for 3 and 5: runs with parallel data) a rule across runs is read on
    id_high=0.95,         # 1: a run's ID accuracy counts as near perfect from here ...
    id_share=0.9,         # ... in at least this share of the runs
    ood_range=0.3,        # 1: final OOD spans at least this across runs
    id_ood_r=0.5,         # 1: |Pearson r(ID, OOD)| across runs below this
    rho=0.8,              # 2, 4: Spearman rho of mean OOD with the knob at least this
    rise=0.1,             # 2: mean OOD at the largest celeb_frac minus at celeb_frac 0 at least this
    chance_margin=0.2,    # 2: OOD at celeb_frac 0 at least chance + this (all fact types together) ...
    chance_x=3,           # ... and at least this many times chance for every fact type
    years_gap=0.05,       # 2: at celeb_frac 0 both year types above both city types by at least this
    early_frac=0.05,      # 3: "early" = the first checkpoint at or past this share of training
    early_r=0.7,          # 3: Pearson r(early unification, final OOD) at least this
    early_spread=0.3,     # 3: early unification spans at least this across runs (some unify, some separate)
    gap=0.05,             # 4: a difference in mean OOD at celeb_frac 0 counts from here (seeds differ by ~0.05)
    unif_r=0.7,           # 5: Pearson r(unification, final OOD) at least this
    sel_gap=0.03,         # 5: the unification pick within this of the 1%-OOD-test pick (runs) / last best-ID pick (checkpoints)
    sel_gain=0.5,         # 5: the unification pick gains at least this share of oracle - random
    toy_cross=0.95,       # 6: toy cross-language accuracy at lang_var 0 and with the faintest language feature
    toy_drop=0.1,         # 6: toy cross-language accuracy at the largest lang_var below same-language by this
    llm_layers=0.5,       # 6: share of layers where unification separates correct transfers (AUC > 0.5, Bonferroni p < alpha)
)


def spearman(x, y):
    """Pearson's r of the ranks (ties share their mean rank)."""
    pts = [(a, b) for a, b in zip(x, y) if a is not None and b is not None]
    rank = lambda v: [sum(u < w for u in v) + (sum(u == w for u in v) - 1) / 2 for w in v]
    return pearson(rank([a for a, _ in pts]), rank([b for _, b in pts])) if len(pts) >= 3 else None


# ----------------------------------------------------------------------------- reading assets/
def load_state(assets_dir, readme_path, root=None):
    """Everything the tables read: every experiment's result at each scale (with why it is stale),
    the bench, the toy and llm_eval results, and paths relative to the file being written (root: the
    folder of the README, whose docs/ holds verdicts.md; default the file's own folder)."""
    base = os.path.dirname(os.path.abspath(readme_path))
    rel = lambda p: os.path.relpath(p, base).replace(os.sep, '/')

    def opt(*p):
        path = os.path.join(assets_dir, *p)
        return read_json(path) if os.path.isfile(path) else None

    found = {}
    for name, scale in itertools.product(experiments.EXPERIMENTS, SCALES):
        folder = experiments.assets_dir(name, scale, assets_dir)
        if os.path.isfile(os.path.join(folder, 'summary.json')):
            s = read_json(os.path.join(folder, 'summary.json'))
            s.update(_stale=results.stale_reasons(s), _dir=rel(folder), _scale=scale)
            found[(name, scale)] = s
    return dict(results=found, bench=opt('bench', 'summary.json'), toy=opt('toy', 'results.json'),
                vocab=opt('llm_eval', 'vocab_overlap.json'), llm=opt('llm_eval', 'results.json'),
                standin=opt(STANDIN, 'results.json'), standin_prov=opt(STANDIN, 'provenance.json'),
                assets=assets_dir, rel=rel, verdicts=rel(os.path.join(root or base, 'docs', 'verdicts.md')))


def num(x, fmt='.3f'):
    return '–' if x is None else format(x, fmt)


def table(head, rows):
    """A markdown table as lines: the header, then one line per row of cells."""
    return ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)] + ['| ' + ' | '.join(map(str, r)) + ' |' for r in rows]


def acc(run, split, ft='all', lang='all', what=0):
    """One of a run's final [accuracy, probability, n] (what = 0, 1, 2) of a split, fact type and language."""
    return (dig(run, 'final', split, ft, lang) or [None] * 3)[what]


def with_results(state):
    """[(name, scale, summary)] of every result, the registry's order, laptop before paper."""
    return [(n, sc, state['results'][(n, sc)]) for n in experiments.EXPERIMENTS for sc in SCALES
            if (n, sc) in state['results']]


def findings_of(name):
    """The findings an experiment tests, from the registry: {'1', '2', ...}."""
    return {f.strip() for f in str(experiments.EXPERIMENTS[name]['findings']).split(',') if f.strip()}


def n_runs(s):
    """(runs present, runs the experiment's config makes)."""
    return len(s['runs']), len(s['runs']) + len(s.get('runs_missing', []))


def machine_of(p):
    """The machine a provenance entry names: the GPU, or the CPU model and its cores."""
    return f"{p.get('cpu')} ({p.get('cores')} cores)" if p.get('device') == 'cpu' else str(p.get('device'))


def scale_line(s):
    """What a result is, where and on what it was made, and whether it is still current."""
    n, total = n_runs(s)
    devices = ', '.join(dict.fromkeys(machine_of(p) for p in s.get('provenance', [])))
    line = f"`{s['exp']}` ({s['_scale']} scale), {n} of {total} runs, {devices}, data v{s.get('data_version')}"
    return line + (f": **stale** ({'; '.join(s['_stale'])})" if s['_stale'] else '')


def design(s):
    """The knobs of every run the experiment's config makes, present or missing: [dict]."""
    sweep = dig(s, 'config', 'sweep') or {}
    if not sweep:
        return [r.get('knobs') or {} for r in s['runs']]
    return [dict(zip(sweep, c)) for c in itertools.product(*sweep.values())]


def missing_text(s):
    """'16 runs (seed=1)': the runs not yet run and the knob values they share."""
    miss = set(s.get('runs_missing', []))
    if not miss:
        return ''
    combos = {'-'.join(f'{k}{v}' for k, v in c.items()): c for c in design(s)}
    m = [combos[n] for n in miss if n in combos]
    fixed = [f"{k}={json.dumps(m[0][k])}" for k in (dig(s, 'config', 'sweep') or {})
             if m and len({json.dumps(c[k]) for c in m}) == 1 and len(s['config']['sweep'][k]) > 1]
    return f"{len(miss)} runs" + (f" ({', '.join(fixed)})" if fixed else '')


def celeb_frac(s, knobs):
    return knobs.get('celeb_frac', dig(s, 'config', 'celeb_frac') or 0.0)


def mean_ood(s, ft='all', **knobs):
    """Mean final OOD accuracy of the runs with these knob values (None if none)."""
    vals = [acc(r, 'ood_test', ft) for r in s['runs'] if all((r.get('knobs') or {}).get(k) == v for k, v in knobs.items())]
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def scored_runs(s):
    """The runs with a final headline unification score (those with parallel data, usually)."""
    return [r for r in s['runs'] if dig(r, 'unification', metrics.HEADLINE, 'act') is not None]


# ----------------------------------------------------------------------------- README: result tables
def result_cell(s):
    """An experiment's result at one scale in a few words: runs, where and when, time, status."""
    if s is None:
        return 'not yet run'
    n, total = n_runs(s)
    prov = s.get('provenance', [])
    made = '; '.join(dict.fromkeys(f"{p.get('device')}, {p.get('date')}" for p in prov))
    seconds = f"{sum(p.get('train_s') or 0 for p in prov):.0f} + {sum(p.get('analyze_s') or 0 for p in prov):.0f} s"
    status = f"**stale**: {'; '.join(s['_stale'])}" if s['_stale'] else 'current'
    if n < total:
        status += f"; shards {', '.join(map(str, s['shards']['done']))} of {s['shards']['n']} done"
    return f"{n} of {total} runs; {made}; data v{s.get('data_version')}; train + analysis {seconds}; {status}"


def block_experiments(state):
    rows = [[f'`{name}`', e['findings'] or '–', e['what'], *(result_cell(state['results'].get((name, sc))) for sc in SCALES)]
            for name, e in experiments.EXPERIMENTS.items()]
    return '\n'.join(table(['experiment', 'finding', 'what it tests', 'laptop scale', 'paper scale'], rows))


def block_laptop(state):
    """The laptop twins: what each ran, on what, how long it took, and whether it is current."""
    rows = []
    for name, e in experiments.EXPERIMENTS.items():
        s = state['results'].get((name, 'laptop'))
        if s is None:
            rows.append([f'`{name}`', e['findings'] or '–', '–', '–', 'not yet run', '–'])
            continue
        n, total = n_runs(s)
        prov = s.get('provenance', [])
        train_s = sum(p.get('train_wall_s') or p.get('train_s') or 0 for p in prov)
        analyze_s = sum(p.get('analyze_s') or 0 for p in prov)
        where = '; '.join(dict.fromkeys(f"{machine_of(p)}, {p.get('date')}" for p in prov))
        rows.append([f'`{name}`', e['findings'] or '–', f"{n} of {total}", f"{dig(s, 'config', 'max_iters'):,}",
                     f"{(train_s + analyze_s) / 60:.0f} min ({train_s / 60:.0f} + {analyze_s / 60:.0f})",
                     f"{where}; " + ('current' if not s['_stale'] else f"**stale** ({stale_word(s)})")])
    return '\n'.join(table(['experiment', 'finding', 'runs', 'steps', 'wall time (training + analysis)', 'made on'], rows))


def runs_table(s):
    runs = sorted(s['runs'], key=lambda r: tuple((str(type(v)), v) for v in (r.get('knobs') or {}).values()))
    knobs = list(dict.fromkeys(k for r in runs for k in (r.get('knobs') or {})))
    fts = [ft for ft in FACT_TYPES if any(acc(r, 'ood_test', ft) is not None for r in runs)]
    layer = s['analysis_settings'].get('unif_layer', 'concat')
    head = knobs + ['ID', 'OOD'] + [f'OOD {ft}' for ft in fts] + [
        f'unification act ({metrics.HEADLINE}, {layer})', 'unification grad', "paper's ratio act",
        'language footprint at init', 'peak after init (iter)', 'final']
    rows = []
    for r in runs:
        fp = r.get('lang_footprint') or {}
        values = [acc(r, 'id_test'), acc(r, 'ood_test'), *(acc(r, 'ood_test', ft) for ft in fts),
                  dig(r, 'unification', metrics.HEADLINE, 'act'), dig(r, 'unification', metrics.HEADLINE, 'grad'),
                  dig(r, 'unification', metrics.PAPER_RATIO, 'act'), fp.get('init')]
        peak = f"{num(fp.get('peak'))} ({fp.get('peak_iter')})" if fp.get('peak') is not None else '–'
        rows.append([(r.get('knobs') or {}).get(k, '') for k in knobs] + [num(x) for x in values] + [peak, num(fp.get('final'))])
    return table(head, rows)


def block_runs(state):
    out = []
    for _, _, s in with_results(state):
        out += [f"#### {scale_line(s)}", '', *runs_table(s)]
        if missing_text(s):
            out += ['', f"Not yet run: {missing_text(s)}."]
        out.append('')
    return '\n'.join(out).strip() or 'No experiment has run yet.'


SEL_NAMES = {'id_test': 'ID accuracy', 'unification': f'unification ({metrics.HEADLINE}, the headline)',
             'unif_x_id': 'unification x ID accuracy', 'unification_paper': "the paper's ratio (same_fact)",
             'oracle': 'best possible (oracle)', 'random': 'a random run'}
CKPT_NAMES = {'unification': f'unification ({metrics.HEADLINE}): the method', 'unification_paper': "the paper's ratio",
              'unification_filtered': 'unification, ID filter + ties to the later (variant)'}


def selection_lines(s):
    """Run selection (all runs, and only those with a score), the correlations of every variant, and
    checkpoint selection by each rule against its references."""
    settings, sel, scored = s['analysis_settings'], s['selection'], s.get('selection_scored') or {}
    label = lambda k: SEL_NAMES.get(k) or (f"OOD accuracy on {k[4:-3]}% of the OOD test" if k.startswith('ood_') else k)
    layer = settings.get('unif_layer', 'concat')
    out = [f"Run selection: {settings.get('select_repeats')} random subsets of {settings.get('select_frac', 0):.0%} of the "
           "runs, one candidate set for every rule; runs a rule cannot score rank last. Mean final OOD accuracy of the pick:",
           '', *table(['pick the run by', 'all runs', f'only the {len(scored_runs(s))} runs with a unification score'],
                      [(label(k), num(v), num(scored.get(k))) for k, v in sel.items()]),
           '', f"Pearson r of unification ({layer}) with final OOD accuracy across runs; `{metrics.HEADLINE}` is the "
           "headline, declared before the runs, the others are reported beside it:", '',
           *table(['variant', 'activations', 'gradients'],
                  [(f"{v}{' (headline)' if v == metrics.HEADLINE else ''}", num(dig(kinds, 'act', layer)),
                    num(dig(kinds, 'grad', layer))) for v, kinds in (s.get('correlations') or {}).items()])]
    rows = [(CKPT_NAMES.get(k, k), d['n_runs'], num(d['ood']), num(d['last_best_id']), num(d['last_best_ood']),
             num(d['oracle']), num(d['final']), f"{d['earlier']:.0%}")
            for k, d in (s.get('ckpt_selection_summary') or {}).items() if isinstance(d, dict) and 'n_runs' in d]
    if rows:
        out += ['', 'Checkpoint selection: per run, from the checkpoints after initialisation; mean OOD accuracy of the '
                "pick over the runs the rule can score, beside the method's reference (the last checkpoint with the best "
                'ID accuracy):', '', *table(['pick the checkpoint by', 'runs', 'OOD of the pick', 'last best ID',
                                             'last best OOD', 'oracle', 'final', 'earlier than last best OOD'], rows)]
    return out


def block_selection(state):
    out = []
    for _, _, s in with_results(state):
        if s.get('selection'):
            out += [f"#### {scale_line(s)}", '', *selection_lines(s), '']
    return '\n'.join(out).strip() or 'No experiment with run selection has run yet.'


# the columns of bench.py's sweep row (a real sweep, then its analysis): (field, header, format)
SWEEP_COLUMNS = (('train_s', 'training (s)', '.1f'), ('step_s', 'in steps (s)', '.1f'),
                 ('outside_steps_frac', 'outside the steps', '.0%'), ('analyze_s', 'analysis (s)', '.1f'),
                 ('ckpts_per_s', 'checkpoints/s', '.2f'))


def block_bench(state):
    """Throughput by mode (each speed candidate a row of its own), the whole sweep, and where and how
    it was measured; what the bench has not measured yet says so."""
    bench = state['bench']
    if not bench:
        return 'The GPU bench has not run yet.'
    modes = [m for m in ('eager', 'compile', 'graph', 'cpu') if m in bench.get('modes', {})]
    label = {'eager': 'eager', 'compile': 'torch.compile', 'graph': 'torch.compile + CUDA graph', 'cpu': 'CPU'}
    row = lambda m, r: dig(bench, 'modes', m, 'rows', r)
    fullest = sorted(modes, key=lambda m: -len(bench['modes'][m]['rows']))     # row order of the mode with every row
    names = list(dict.fromkeys(r for m in fullest for r in bench['modes'][m]['rows']))
    rows, sweeps = [], []
    for r in names:
        if r.startswith('sweep'):
            sweeps += [[r, label[m]] + [num(row(m, r).get(k), fmt) for k, _, fmt in SWEEP_COLUMNS] for m in modes if row(m, r)]
            continue
        unit = next(row(m, r)['unit'] for m in modes if row(m, r))
        rows.append([f'{r} ({unit})'] + [num(dig(row(m, r), 'value'), ',.0f' if unit == 'examples/s' else ',.1f') for m in modes])
    if not any(r.startswith('lockstep') and not results.LOCKSTEP_ROW.fullmatch(r) for r in names):
        todo = ['not yet measured' if m == 'compile' else '–' for m in modes]     # the candidates run compiled
        rows.append(['speed candidates at the largest E (run-steps/s)', *todo])
    out = table(['row'] + [label[m] for m in modes], rows) + ['']
    out += table(['whole sweep (training, then analysis)', 'mode'] + [h for _, h, _ in SWEEP_COLUMNS],
                 sweeps or [['not yet measured'] + ['–'] * (1 + len(SWEEP_COLUMNS))])
    for p in bench.get('provenance', []):
        cmds = '; '.join(f'`{c}`' for c in (p.get('command') or []))
        out += ['', f"{p.get('device')}, torch {p.get('torch')}, commit {p.get('commit')}, {p.get('date')}: {cmds}."]
        if p.get('tests'):
            out.append(f"GPU tests: {p['tests']}.")
        if p.get('failed'):
            out.append(f"Not measured: {'; '.join(p['failed'])}.")
    return '\n'.join(out)


def block_toy(state):
    toy = state['toy']
    if not toy:
        return 'The toy model has not run yet.'
    out = table(['lang_var (target)', 'measured', 'same-language accuracy', 'cross-language accuracy (± std over seeds)'],
                [(r['lang_var'], num(r.get('lang_var_measured'), '.4f'), num(r.get('same_acc')),
                  f"{num(r.get('cross_acc'))} ± {num(r.get('cross_acc_std'))}") for r in toy.get('table', [])])
    top = max((r['lang_var'] for r in toy.get('scale_table', [])), default=None)
    fainter = [r for r in toy.get('scale_table', []) if r['lang_var'] == top]
    if fainter:
        out += ['', f"Cross-language accuracy at lang_var {top} as the language feature gets fainter: "
                + ', '.join(f"lang_scale {r['lang_scale']}: {r['cross_acc']:.3f}" for r in fainter)
                + f". `python toy.py`, {len((toy.get('table') or [{}])[0].get('seeds', []))} seeds, 2-core CPU "
                "(`assets/toy/results.json`)."]
    return '\n'.join(out)


# ----------------------------------------------------------------------------- verdicts (docs/verdicts.md)
# A check is (ok, text): ok True / False, or None where its measure is missing. A finding's status
# at one scale: the evidence first (not run, stale, the regime, incomplete), then the checks.
def mark(ok):
    return {True: 'holds', False: 'fails', None: 'not measured'}[ok]


def check_text(checks):
    return '; '.join(f"{text} [{mark(ok)}]" for ok, text in checks)


def verdict(checks):
    """reproduced (every check holds), not reproduced (none does), mixed, or partly judged (those
    measured hold, some could not be measured)."""
    oks = [ok for ok, _ in checks if ok is not None]
    if not oks:
        return 'not judged: no check could be measured'
    if all(oks):
        return ('reproduced' if len(oks) == len(checks) else
                f'partly judged: {len(oks)} of {len(checks)} checks hold, the rest not measured')
    return 'mixed' if any(oks) else 'not reproduced'


def stale_word(s):
    return f"data v{s.get('data_version')}" if any(w.startswith('made on data') for w in s['_stale']) else '; '.join(s['_stale'])


def judge(s, regime, checks):
    """The status of one experiment's checks: not judged when stale or in a regime the rule excludes,
    provisional when runs are missing, else the verdict. -> (status, text)."""
    if s is None:
        return 'not run', ''
    text = f"{scale_line(s)}: {check_text(checks)}"
    n, total = n_runs(s)
    if s['_stale']:
        return f'not judged: stale ({stale_word(s)})', text
    if regime:
        return f'not judged: regime ({regime})', text
    if n < total:
        return f'provisional: {n} of {total} runs', text
    return verdict(checks), text


def ceiling_regime(s):
    """Why findings 1 and 2 cannot show in this result (None if they can or it cannot be told yet)."""
    if len(design(s)) < RULES['min_runs']:
        return f"{len(design(s))} runs < {RULES['min_runs']}"
    o = mean_ood(s, celeb_frac=0.0)
    if o is not None and o >= RULES['regime_ood0']:
        return f"OOD at celeb_frac 0 is {o:.2f} >= {RULES['regime_ood0']}: no room for parallel data to show"
    return None


def spread_regime(s):
    """Why findings 3 and 5 cannot show: too few runs with parallel data, or their OOD hardly varies."""
    n = sum(celeb_frac(s, k) > 0 for k in design(s))
    if n < RULES['min_runs']:
        return f"{n} runs with parallel data < {RULES['min_runs']}"
    oods = [acc(r, 'ood_test') for r in scored_runs(s) if acc(r, 'ood_test') is not None]
    complete = n_runs(s)[0] == n_runs(s)[1]                            # a part of the runs may span less than all
    if complete and len(oods) >= 3 and max(oods) - min(oods) < RULES['regime_spread']:
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
    return [(share >= RULES['id_share'], f"ID >= {RULES['id_high']} in {share:.0%} of runs (rule >= {RULES['id_share']:.0%}; "
             f"ID {min(ids):.2f}-{max(ids):.2f})"),
            (max(oods) - min(oods) >= RULES['ood_range'], f"OOD {min(oods):.2f}-{max(oods):.2f}, range "
             f"{max(oods) - min(oods):.2f} (rule >= {RULES['ood_range']})"),
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
    rho = spearman(cfs, means)
    rise = means[-1] - means[0] if len(cfs) >= 2 else None
    out = [(None if rho is None else rho >= RULES['rho'] and rise >= RULES['rise'],
            'mean OOD by celeb_frac ' + ', '.join(f"{c}: {m:.2f}" for c, m in zip(cfs, means))
            + f"; Spearman {num(rho, '.2f')} (rule >= {RULES['rho']}), rise {num(rise, '+.2f')} (rule >= {RULES['rise']})")]
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


def with_gemma(state, scale, regime, checks):
    """Findings 1 and 2: judged on sweep_celeb; the Gemma-2 block's sweep judged beside it, and
    named in the status where its verdict differs."""
    s, g = (state['results'].get((n, scale)) for n in ('sweep_celeb', 'gemma2'))
    status, text = judge(s, s and regime(s), s and checks(s))
    if g is not None:
        g_status, g_text = judge(g, regime(g), checks(g))
        text += ('<br>' if text else '') + g_text
        status += f"; gemma2: {g_status}" if g_status != status else ''
    return status, text


def finding1(state, scale):
    return with_gemma(state, scale, ceiling_regime, checks1)


def finding2(state, scale):
    return with_gemma(state, scale, ceiling_regime, checks2)


def early_point(run, key, frac):
    """(iter, score) at the first checkpoint at or past frac of training, if it has a score."""
    traj = run.get('trajectory') or {}
    its = traj.get('iter', [])
    i = next((i for i, it in enumerate(its) if it >= frac * run['iter']), None)
    return (its[i], (traj.get(key) or [None] * len(its))[i]) if i is not None else (None, None)


def checks3(s):
    frac = RULES['early_frac']
    pts = {key: [(early_point(r, key, frac)[1], acc(r, 'ood_test')) for r in s['runs']]
           for key in ('unification', 'unification_paper')}
    pts = {k: [(u, o) for u, o in v if u is not None and o is not None] for k, v in pts.items()}
    head, paper = pts['unification'], pts['unification_paper']
    r_paper = pearson(*zip(*paper)) if len(paper) >= 3 else None
    its = sorted({early_point(r, 'unification', frac)[0] for r in s['runs']} - {None})
    if len(head) < 3:
        return [(None, f"{len(head)} runs with an early {metrics.HEADLINE} score at {frac:.0%} of training (the paper's "
                 f"ratio there: r = {num(r_paper, '.2f')} over {len(paper)} runs)"), (None, 'early spread: –')]
    r = pearson(*zip(*head))
    us = [u for u, _ in head]
    return [(r is not None and r >= RULES['early_r'], f"at iter {'/'.join(map(str, its))} ({frac:.0%} of training) "
             f"r(unification, final OOD) = {num(r, '.2f')} over {len(head)} runs (rule >= {RULES['early_r']}; the paper's "
             f"ratio: {num(r_paper, '.2f')})"),
            (max(us) - min(us) >= RULES['early_spread'], f"early unification {min(us):.2f} to {max(us):.2f} "
             f"(rule: spans >= {RULES['early_spread']})")]


def finding3(state, scale):
    s = state['results'].get(('sweep_celeb', scale))
    return judge(s, s and spread_regime(s), s and checks3(s))


def checks5(s):
    layer = s['analysis_settings'].get('unif_layer', 'concat')
    corr = lambda v, kind='act': dig(s, 'correlations', v, kind, layer)
    r, n = corr(metrics.HEADLINE), len(scored_runs(s))
    c1 = (None if r is None else r >= RULES['unif_r'], f"r(unification, final OOD) = {num(r, '.2f')} activations / "
          f"{num(corr(metrics.HEADLINE, 'grad'), '.2f')} gradients over {n} runs (rule >= {RULES['unif_r']}; the paper's "
          f"ratio: {num(corr(metrics.PAPER_RATIO), '.2f')} / {num(corr(metrics.PAPER_RATIO, 'grad'), '.2f')})")
    sel = s.get('selection') or {}
    u, small, rand, best = (sel.get(k) for k in ('unification', 'ood_1pct', 'random', 'oracle'))
    ok = None if None in (u, small, rand, best) else \
        u >= small - RULES['sel_gap'] and u - rand >= RULES['sel_gain'] * (best - rand)
    c2 = (ok, f"run picks: unification {num(u)}, OOD on 1% of the test {num(small)}, ID {num(sel.get('id_test'))}, random "
          f"{num(rand)}, oracle {num(best)}, the paper's ratio {num(sel.get('unification_paper'))} (rule: within "
          f"{RULES['sel_gap']} of the 1% pick and >= {RULES['sel_gain']:.0%} of oracle - random)")
    ck = dig(s, 'ckpt_selection_summary', 'unification')
    ck_paper, ck_var = (dig(s, 'ckpt_selection_summary', k, 'ood') for k in ('unification_paper', 'unification_filtered'))
    c3 = (None if ck is None else ck['ood'] >= ck['last_best_id'] - RULES['sel_gap'],
          f"checkpoint picks over {ck['n_runs']} runs: unification {ck['ood']:.3f}, last best ID {ck['last_best_id']:.3f}, "
          f"oracle {ck['oracle']:.3f} (rule: within {RULES['sel_gap']} of last best ID); beside it the paper's ratio "
          f"{num(ck_paper)}, the ID-filter variant {num(ck_var)}" if ck else
          f"checkpoint picks: no {metrics.HEADLINE} score (the paper's ratio {num(ck_paper)})")
    return [c1, c2, c3]


def finding5(state, scale):
    """Judged on `selection`, the experiment designed for it; until that has results at a scale,
    sweep_celeb's reading is at most provisional."""
    s = state['results'].get(('selection', scale))
    if s is not None:
        return judge(s, spread_regime(s), checks5(s))
    s = state['results'].get(('sweep_celeb', scale))
    status, text = judge(s, s and spread_regime(s), s and checks5(s))
    if s is not None and not status.startswith(('not judged', 'provisional')):
        status = f"provisional: `selection` not run (`sweep_celeb`: {status})"
    return status, text


# finding 4: each check compares mean OOD at celeb_frac 0 (the claim: better OOD without parallel data)
# across experiments; the templates, events and steps checks compare with shared_tokens at
# shared_token_frac 1 (no token tells the language, as in those experiments)
def ood0(state, scale, name, **knobs):
    s = state['results'].get((name, scale))
    return mean_ood(s, celeb_frac=0.0, **knobs) if s else None


def checks4(state, scale):
    """[(names it needs, the OOD that leaves it room (its regime), ok, text)] for finding 4."""
    get = lambda name, **k: ood0(state, scale, name, **k)
    gap, out = RULES['gap'], []
    v = {k: get('balance', variant=k) for k in ('balanced', 'src', 'imbalanced')}
    steps = None if None in v.values() else min(v['balanced'] - v['src'], v['src'] - v['imbalanced'])
    out.append((['balance'], v['src'], None if steps is None else steps >= gap,
                'informativeness: OOD balanced {}, src {}, imbalanced {} (rule: each step >= {})'.format(
                    *(num(v[k], '.2f') for k in ('balanced', 'src', 'imbalanced')), gap)))
    low, cased = get('char_low'), get('char_cased')
    out.append((['char_low', 'char_cased'], cased, None if None in (low, cased) else low - cased >= gap,
                f"extractability: OOD char_low {num(low, '.2f')} vs char_cased {num(cased, '.2f')} (rule: >= +{gap})"))
    fracs = sorted({(r.get('knobs') or {}).get('shared_token_frac') for r in
                    (state['results'].get(('shared_tokens', scale)) or {}).get('runs', [])} - {None})
    out.append(trend(['shared_tokens'], 'shared filler words', [(f, get('shared_tokens', shared_token_frac=f)) for f in fracs]))
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
    rho = spearman(*zip(*pts)) if len(pts) >= 3 else None
    ok = None if rho is None else rho >= RULES['rho'] and pts[-1][1] - pts[0][1] >= RULES['gap']
    return (names, pts[0][1] if pts else None, ok, f"{what}: mean OOD " + ', '.join(f"{k}: {o:.2f}" for k, o in pts)
            + f" (rule: Spearman {num(rho, '.2f')} >= {RULES['rho']}, rise >= {RULES['gap']})")


def finding4(state, scale):
    """Each check gated by its experiments (not run, stale, incomplete, regime); the status from the
    checks that could be judged, provisional while others wait for runs."""
    checks, whys = [], []
    for names, room, ok, text in checks4(state, scale):
        found = [state['results'].get((n, scale)) for n in names]
        why = ('not run' if None in found else 'stale' if any(s['_stale'] for s in found)
               else 'regime' if room is not None and room >= RULES['regime_ood0']
               else 'provisional' if any(n_runs(s)[0] < n_runs(s)[1] for s in found) else None)
        checks.append((ok if why is None else None, text + (f" ({why})" if why else '')))
        whys.append(why)
    ran = [n for n in experiments.EXPERIMENTS if '4' in findings_of(n) and (n, scale) in state['results']]
    text = '; '.join(f"{t} [{mark(ok) if w is None else 'not judged'}]" for (ok, t), w in zip(checks, whys))
    if not ran:
        return 'not run', ''
    text = f"{', '.join(f'`{n}`' for n in ran)}: {text}"
    judged = [c for c, w in zip(checks, whys) if w is None]
    waiting = [w for w in whys if w not in (None, 'regime')]
    if not judged:
        order = [w for w in ('stale', 'provisional', 'regime', 'not run') if w in whys]
        words = {'stale': 'not judged: stale', 'provisional': 'provisional: no check complete',
                 'regime': 'not judged: regime', 'not run': 'not run'}
        return words[order[0]] + f" ({whys.count(order[0])} of {len(whys)} checks)", text
    if waiting:
        return f"provisional: {len(judged)} of {len(checks)} checks judged", text
    status = verdict(judged)
    return status + (f" ({whys.count('regime')} of {len(whys)} checks not judged: regime)" if 'regime' in whys else ''), text


def toy_checks(toy):
    tab = sorted(toy['table'], key=lambda r: r['lang_var'])
    top = max((r['lang_var'] for r in toy.get('scale_table', [])), default=None)
    faint = min((r for r in toy.get('scale_table', []) if r['lang_var'] == top), key=lambda r: r['lang_scale'], default=None)
    return [(tab[0]['cross_acc'] >= RULES['toy_cross'], f"toy: cross-language accuracy {tab[0]['cross_acc']:.3f} at lang_var "
             f"{tab[0]['lang_var']} (rule >= {RULES['toy_cross']})"),
            (tab[-1]['cross_acc'] <= tab[-1]['same_acc'] - RULES['toy_drop'], f"{tab[-1]['cross_acc']:.3f} at lang_var "
             f"{tab[-1]['lang_var']} vs same-language {tab[-1]['same_acc']:.3f} (rule: >= {RULES['toy_drop']} below)"),
            (None if faint is None else faint['cross_acc'] >= RULES['toy_cross'],
             f"with the faintest language feature (lang_scale {faint['lang_scale']}) {faint['cross_acc']:.3f} "
             f"(rule >= {RULES['toy_cross']})" if faint else 'no lang_scale table')]


def llm_checks(llm):
    layers = llm.get('per_layer') or []
    hits = [i for i, l in enumerate(layers) if l.get('significant') and (l.get('auc') or 0) > 0.5]   # index 0 = embeddings
    share = len(hits) / max(1, len(layers))
    ve = dig(llm, 'overlap', 'variance_explained_sources') or {}
    r2o, r2c = ve.get('r2_overlap'), ve.get('r2_celebrity')
    return [(share >= RULES['llm_layers'], f"{len(hits)} of {len(layers)} layers ({share:.0%}"
             + (f"; layers {hits[0]}-{hits[-1]}" if hits and hits[-1] - hits[0] == len(hits) - 1 else '')
             + f"): unification separates correct transfers (AUC > 0.5, Bonferroni p < alpha; rule >= {RULES['llm_layers']:.0%})"),
            (None if None in (r2o, r2c) else r2o > r2c, f"over source languages, R^2 of vocabulary overlap {num(r2o)} vs "
             f"celebrity ratio {num(r2c)} (rule: overlap explains more)")]


def standin_text(state):
    """(status, text) of the CPU stand-in LLM under the LLM checks, or None where it has not run."""
    llm, prov = state['standin'], state['standin_prov'] or {}
    if not llm:
        return None
    checks, model = llm_checks(llm), dig(prov, 'model', 'package') or os.path.basename(str(llm.get('model')))
    return (verdict(checks), f"stand-in LLM, not the paper's model or data ({model}, 4-bit, on {llm.get('n_items')} "
            f"CLDR facts x 12 languages, 2-core CPU): " + check_text(checks))


def finding6(state, scale):
    """The toy model is judged in the laptop column (it runs on a CPU in seconds), Gemma-2-2B on
    ECLeKTic in the paper column (it needs a GPU). The CPU stand-in LLM (assets/llm_gemma3) is shown in
    the laptop column under the LLM checks, its status beside the toy's, never in the paper column."""
    if scale == 'laptop':
        toy, extra = state['toy'], standin_text(state)
        if not toy or not toy.get('table'):
            return ('not run', '') if extra is None else (f"toy not run; stand-in LLM: {extra[0]}", extra[1])
        checks = toy_checks(toy)
        seeds = len(toy['table'][0].get('seeds', []))
        text = f"toy (linear model, {seeds} seeds, 2-core CPU): " + check_text(checks)
        if extra is None:
            return verdict(checks), text
        return f"{verdict(checks)} (toy); stand-in LLM: {extra[0]}", text + '<br>' + extra[1]
    llm, vocab = state['llm'], state['vocab']
    if llm:
        checks = llm_checks(llm)
        return verdict(checks), f"{llm.get('model')} on ECLeKTic: " + check_text(checks)
    pairs = {'-'.join(sorted(k.split('-'))): v for k, v in (vocab or {}).get('jaccard', {}).items()}
    top3 = sorted(pairs.items(), key=lambda kv: -kv[1])[:3]
    return 'not run', ('only the vocabulary-overlap matrix (' + ', '.join(f"{k} {v:.3f}" for k, v in top3) + ')') if top3 else ''


FINDINGS = (('1', 'ID recall near perfect, OOD varies widely; ID does not predict OOD', finding1, 'Fig. 1, 2'),
            ('2', 'more parallel data raises OOD; without any, OOD is far above chance, best for few-valued fact types',
             finding2, 'Fig. 1, 2'),
            ('3', 'early on a model unifies or separates the languages; separation predicts poor OOD', finding3, 'Fig. 3'),
            ('4', 'informative and extractable language features drive separation; 10x events or steps do not help',
             finding4, 'Fig. 6'),
            ('5', 'unification on training data tracks OOD and selects runs and checkpoints like a small OOD test',
             finding5, 'Fig. 4, 5'),
            ('6', 'a linear toy model shows the effect; in an LLM unification predicts transfer', finding6, 'Fig. 7'))


def block_findings(state):
    rows = []
    for n, claim, judge_at, figs in FINDINGS:
        (s_lap, t_lap), (s_pap, t_pap) = (judge_at(state, sc) for sc in SCALES)
        text = '<br>'.join(f"**{sc}**: {t}" for sc, t in (('laptop', t_lap), ('paper', t_pap)) if t) or '–'
        link = f"[{n}]({state.get('verdicts', 'docs/verdicts.md')}#finding-{n})"
        rows.append([link, claim, f'**{s_lap}**', f'**{s_pap}**', text, figs])
    return '\n'.join(table(['#', 'finding', 'laptop scale', 'paper scale', 'what the results show (rule in brackets)',
                            'figures'], rows))


# ----------------------------------------------------------------------------- README: figures
def shown(state, name):
    """The result of an experiment the figures show: current before stale, paper before laptop."""
    found = [state['results'].get((name, sc)) for sc in ('paper', 'laptop')]
    return next((s for s in found if s and not s['_stale']), None) or next((s for s in found if s), None)


def fig_path(s, name):
    return f"{s['_dir']}/figures/{name}" if s and name in (dig(s, 'figures', 'files') or []) else None


def where(s):
    """' (`exp`, scale, stale)' for a figure's caption, '' when the experiment has not run."""
    return f" (`{s['exp']}`, {s['_scale']} scale{', **stale**' if s['_stale'] else ''})" if s else ''


def figure_list(state):
    """(number, caption, [paths]) of the figures the findings cite, where they exist."""
    main = shown(state, 'sweep_celeb')
    sel = shown(state, 'selection') if fig_path(shown(state, 'selection'), 'selection.png') else main
    bal, assets = shown(state, 'balance'), state['assets']
    sim = dig(main, 'figures', 'sim') or {}
    sims = [f"{main['_dir']}/figures/{sim[t]['act']}" for t in ('low', 'high') if dig(sim, t, 'act')]
    low_high = ' vs '.join(f"`{sim[t]['run']}` (OOD {sim[t]['ood']:.2f})" for t in ('low', 'high') if t in sim)
    extra = [state['rel'](os.path.join(assets, *p)) for p in (('toy', 'cross_acc_vs_scale.png'), ('llm_eval', 'vocab_overlap.png'),
                                                               (STANDIN, 'unification_auc.png'))
             if os.path.isfile(os.path.join(assets, *p))]
    return [(1, f'final ID (dashed) and OOD (solid) accuracy vs celeb_frac{where(main)}', [fig_path(main, 'acc_vs_knobs.png')]),
            (2, f'accuracy over training by fact type{where(main)}', [fig_path(main, 'acc_curves.png')]),
            (3, f'cosine similarity of training examples over checkpoints and layers, lowest- vs highest-OOD run{where(main)}: '
             + low_high, sims),
            (4, f'unification vs final OOD accuracy across runs{where(main)}', [fig_path(main, 'unif_vs_ood.png')]),
            (5, f'run and checkpoint selection{where(sel)}', [fig_path(sel, 'selection.png')]),
            (6, f'informativeness: OOD by variant; MI vs language footprint{where(bal)}',
             [fig_path(bal, 'acc_vs_knobs.png'), fig_path(bal, 'mi_vs_footprint.png')]),
            (7, 'the toy model (cross-language accuracy vs language variance and scale); '
             'vocabulary overlap of 12 languages; the stand-in LLM: ROC AUC of unification for correct transfer per layer '
             f'(`{STANDIN}`, gemma-3-270m on the CLDR facts)', extra),
            (8, 'training throughput (bench)', [f"{state['rel'](os.path.join(assets, 'bench'))}/figures/bench.png"]
             if 'bench.png' in (dig(state['bench'], 'figures', 'files') or []) else [])]


def block_figures(state):
    out = []
    for n, caption, paths in figure_list(state):
        paths = [p for p in paths if p]
        out += [f'**Fig. {n}**: {caption}' + ('' if paths else ': not yet run.'), '']
        out += [f'![Fig. {n}]({p})' for p in paths] + ([''] if paths else [])
    return '\n'.join(out).strip()


# the marked blocks of the README and what writes each
RENDER = dict(findings=block_findings, figures=block_figures, experiments=block_experiments, laptop=block_laptop, runs=block_runs,
              selection=block_selection, bench=block_bench, toy=block_toy)
MARK = re.compile(r'(<!-- report:([\w-]+) -->\n)(.*?)(<!-- /report:\2 -->)', re.S)


def rewrite(text, blocks, path='README.md', every=True):
    """text with the content between each pair of markers replaced -> (new text, names that changed,
    names seen); every: each block must have its markers in this text."""
    seen, changed = set(), []

    def sub(m):
        if m.group(2) not in blocks:
            return m.group(0)
        seen.add(m.group(2))
        new = blocks[m.group(2)].rstrip('\n') + '\n'
        if m.group(3) != new:
            changed.append(m.group(2))
        return m.group(1) + new + m.group(4)
    out = MARK.sub(sub, text)
    missing = [b for b in blocks if b not in seen]
    if missing and every:
        raise ValueError(f"report error: {path} lacks the markers <!-- report:{missing[0]} --> and <!-- /report:{missing[0]} -->")
    return out, changed, seen


# ----------------------------------------------------------------------------- main
def main(cfg):
    """results.py's work (--summarise, --import, --resummarise) if asked, then the tables of the README
    and of the docs/*.md beside it: rewritten, or with --check compared. Every block must stand in at
    least one of them. -> exit code."""
    if cfg['summarise'] or cfg['imports'] or cfg['resummarise']:
        results.main(cfg)
    if not os.path.isfile(cfg['readme']):
        raise ValueError(f"report error: no {cfg['readme']}")
    paths = [cfg['readme'], *sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(cfg['readme'])), 'docs', '*.md')))]
    seen, changed, new_texts = set(), [], {}
    for path in paths:
        with open(path) as f:
            text = f.read()
        if not MARK.search(text):
            continue
        state = load_state(cfg['assets'], path, os.path.dirname(os.path.abspath(cfg['readme'])))   # paths relative to this file
        new, names, found = rewrite(text, {name: render(state) for name, render in RENDER.items()}, path, every=False)
        seen |= found
        changed += [f"{os.path.relpath(path)}: {n}" for n in names]
        if new != text:
            new_texts[path] = new
    missing = [b for b in RENDER if b not in seen]
    if missing:
        raise ValueError(f"report error: no <!-- report:{missing[0]} --> markers in {cfg['readme']} or docs/*.md")
    if cfg['check']:
        if changed:
            print(f"report error: {', '.join(changed)} differ from {cfg['assets']}/ (run python -m dev.report)", file=sys.stderr)
            return 1
        print(f"report: the tables match {cfg['assets']}/")
        return 0
    for path, new in new_texts.items():
        with open(path, 'w') as f:
            f.write(new)
    print('report: ' + (f"rewrote {', '.join(changed)}" if changed else 'tables up to date'))
    return 0


if __name__ == '__main__':
    argv = ['--check=True' if a == '--check' else a for a in sys.argv[1:]]
    sys.exit(cli(lambda: main(results.parse_args(argv, DEFAULTS, [__file__, results.__file__]))))
