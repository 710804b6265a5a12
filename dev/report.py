"""
The README's result tables, written from assets/ (results.py puts experiments there). A generated
table sits between `<!-- report:NAME -->` and `<!-- /report:NAME -->`; nothing else of the README
is touched. Stale results (results.stale_reasons) stay visible, marked as such.

    python -m dev.report                                        # rewrite the README's tables from assets/
    python -m dev.report --check                                # exit 1 if README and assets/ disagree (tests run it)
    python -m dev.report --import=out/gpu/sweep_celeb-1of2.tgz  # archives of dev/run_queue.py -> assets/, then rewrite

It also takes results.py's knobs (--summarise=..., --force=True, ...): their work first, then the tables.
"""
import glob
import itertools
import json
import os
import re
import sys

from dev import results
from configurator import cli, config_keys
from data_gen import FACT_TYPES, VERSION
from plots import dig, pearson
from dev.results import read_json

# -----------------------------------------------------------------------------
readme = 'README.md'        # the file whose marked tables are rewritten
check = False               # only compare: exit 1 when the README's tables differ from what assets/ gives
early_fracs = [0.01, 0.05]  # finding 3: unification at the first checkpoint past these shares of training
# -----------------------------------------------------------------------------
DEFAULTS = dict(results.DEFAULTS, **config_keys(globals()))
# the experiments of reproduce.sh in the README's order: (SPEC findings, what it tests)
EXPERIMENTS = {
    'sweep_celeb': ('1, 2, 3, 5', 'ID vs OOD as parallel data grows (16 celeb_frac x 2 seeds)'),
    'balance': ('4', 'informativeness: src / balanced / imbalanced'),
    'shared_tokens': ('4', 'extractability: filler words shared by the languages (baseline of the controls)'),
    'char_low': ('4', 'extractability: lowercase character tokenizer'),
    'char_cased': ('4', 'extractability: cased character tokenizer'),
    'selection': ('5', 'run and checkpoint selection (110 runs)'),
    'templates_02': ('4', 'extractability: 2 templates'),
    'templates_10': ('4', 'extractability: 10 templates'),
    'templates_20': ('4', 'extractability: 20 templates'),
    'people_10x': ('4', 'control: 10x events'),
    'steps_10x': ('4', 'control: 10x steps'),
    'gemma2': ('1, 2', 'the main sweep with the Gemma-2 block'),
    'regularization': ('SPEC 7', 'weight decay x learning rate (the GPU defaults)'),
}


def spearman(x, y):
    """Pearson's r of the ranks (ties share their mean rank)."""
    pts = [(a, b) for a, b in zip(x, y) if a is not None and b is not None]
    rank = lambda v: [sum(u < w for u in v) + (sum(u == w for u in v) - 1) / 2 for w in v]
    return pearson(rank([a for a, _ in pts]), rank([b for _, b in pts])) if len(pts) >= 3 else None


# ----------------------------------------------------------------------------- README: shared pieces
def load_state(assets_dir, readme_path):
    """Everything the README's tables read: the summaries (with why they are stale), the toy,
    llm_eval and CPU-miniature results, and paths relative to the README."""
    base = os.path.dirname(os.path.abspath(readme_path))
    rel = lambda p: os.path.relpath(p, base).replace(os.sep, '/')

    def opt(*p):
        path = os.path.join(assets_dir, *p)
        return read_json(path) if os.path.isfile(path) else None

    S = {}
    for p in sorted(glob.glob(os.path.join(assets_dir, '*', 'summary.json'))):
        s = read_json(p)
        s['_stale'], s['_dir'] = results.stale_reasons(s), rel(os.path.dirname(p))
        S[s.get('exp')] = s
    return dict(S=S, toy=opt('toy', 'results.json'), vocab=opt('llm_eval', 'vocab_overlap.json'),
                llm=opt('llm_eval', 'results.json'), mini=opt('quick_balance', 'analysis.json'),
                mini_prov=opt('quick_balance', 'provenance.json') or {},
                assets=assets_dir, rel=rel)


def f3(x, fmt='.3f'):
    return '–' if x is None else format(x, fmt)


def table(head, rows):
    """A markdown table as lines: the header, then one line per row of cells."""
    return ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)] + ['| ' + ' | '.join(map(str, r)) + ' |' for r in rows]


def acc(run, split, ft='all', lang='all', what=0):
    """One of a run's final [accuracy, probability, n] (what = 0, 1, 2) of a split, fact type and language."""
    return (dig(run, 'final', split, ft, lang) or [None] * 3)[what]


def with_results(st):
    """(name, summary) of the experiments with results, the README's order first, bench excluded."""
    names = [n for n in EXPERIMENTS if n in st['S']] + sorted(n for n in st['S'] if n not in EXPERIMENTS and n != 'bench')
    return [(n, st['S'][n]) for n in names]


def main_summary(st):
    return next((st['S'][n] for n in ('sweep_celeb', 'gemma2') if n in st['S'] and st['S'][n].get('runs')), None)


def scale_line(s):
    """Where and on what a result was made, and whether it is still current."""
    n, miss = len(s['runs']), len(s.get('runs_missing', []))
    devices = ', '.join(dict.fromkeys(str(p.get('device')) for p in s.get('provenance', [])))
    line = f"`{s['exp']}`, {n} of {n + miss} runs, {devices}, data v{s.get('data_version')}"
    return line + (f": **stale** ({'; '.join(s['_stale'])})" if s['_stale'] else '')


def fig_path(st, exp, name):
    s = st['S'].get(exp)
    return f"{s['_dir']}/figures/{name}" if s and name in (dig(s, 'figures', 'files') or []) else None


def missing_text(s):
    """'16 runs (seed=1)': the runs not yet run and the knob values they share."""
    miss = set(s.get('runs_missing', []))
    if not miss:
        return ''
    sw = dig(s, 'config', 'sweep') or {}
    combos = {'-'.join(f'{k}{v}' for k, v in zip(sw, c)): dict(zip(sw, c)) for c in itertools.product(*sw.values())}
    m = [combos[n] for n in miss if n in combos]
    fixed = []
    for k in sw:
        vals = {json.dumps(c[k]) for c in m}
        if m and len(vals) == 1 and len(sw[k]) > 1:
            fixed.append(f'{k}={vals.pop()}')
    return f"{len(miss)} runs" + (f" ({', '.join(fixed)})" if fixed else '')


# ----------------------------------------------------------------------------- README: result tables
def block_experiments(st):
    rows = []
    for name, (fnd, what) in EXPERIMENTS.items():
        s = st['S'].get(name)
        if s is None:
            rows.append([f'`{name}`', fnd, what, 0, '–', 'not yet run', '–'])
            continue
        n, miss = len(s['runs']), len(s.get('runs_missing', []))
        prov = s.get('provenance', [])
        made = '; '.join(dict.fromkeys(f"{p.get('device')}, {p.get('date')}" for p in prov)) + f", data v{s.get('data_version')}"
        status = f"**stale**: {'; '.join(s['_stale'])}" if s['_stale'] else 'current'
        if miss:
            status += f"; shards {', '.join(map(str, s['shards']['done']))} of {s['shards']['n']} done"
        times = f"{sum(p.get('train_s') or 0 for p in prov):.0f} + {sum(p.get('analyze_s') or 0 for p in prov):.0f}"
        rows.append([f'`{name}`', fnd, what, f'{n} of {n + miss}', made, status, times])
    return '\n'.join(table(['experiment', 'SPEC finding', 'what it tests', 'runs', 'made on', 'status',
                             'train + analysis (s)'], rows))


def runs_table(s):
    runs = sorted(s['runs'], key=lambda r: tuple((str(type(v)), v) for v in (r.get('knobs') or {}).values()))
    knobs = list(dict.fromkeys(k for r in runs for k in (r.get('knobs') or {})))
    fts = [ft for ft in FACT_TYPES if any(acc(r, 'ood_test', ft) is not None for r in runs)]
    v, layer = s['analysis_settings'].get('unif_variant', 'same_fact'), s['analysis_settings'].get('unif_layer', 'concat')
    head = knobs + ['ID', 'OOD'] + [f'OOD {ft}' for ft in fts] + [f'unification act ({v}, {layer})', 'unification grad',
                                                                  'language footprint (max)']
    rows = []
    for r in runs:
        lf = [x for x in dig(r, 'trajectory', 'lang_footprint') or [] if x is not None]
        values = [acc(r, 'id_test'), acc(r, 'ood_test'), *(acc(r, 'ood_test', ft) for ft in fts),
                  dig(r, 'unification', v, 'act'), dig(r, 'unification', v, 'grad'), max(lf) if lf else None]
        rows.append([(r.get('knobs') or {}).get(k, '') for k in knobs] + [f3(x) for x in values])
    return table(head, rows)


def block_runs(st):
    out = []
    for name, s in with_results(st):
        out += [f"#### {scale_line(s)}", '', *runs_table(s)]
        if missing_text(s):
            out += ['', f"Not yet run: {missing_text(s)}."]
        out.append('')
    return '\n'.join(out).strip() or 'No experiment has run at paper scale yet.'


SEL_NAMES = {'id_test': 'ID accuracy', 'unification': 'unification', 'unif_x_id': 'unification x ID accuracy',
             'oracle': 'best possible (oracle)', 'random': 'a random run'}


def ckpt_means(s):
    """Mean OOD accuracy of the checkpoint each rule picks, over the runs every rule can score
    (runs without parallel data have no unification) -> ({rule: mean}, number of runs)."""
    rules = ('last_best_id', 'last_best_ood', 'unification', 'oracle', 'final')
    get = lambda r, k: dig(r, 'ckpt_selection', k, 'ood') if isinstance(dig(r, 'ckpt_selection', k), dict) \
        else dig(r, 'ckpt_selection', k)
    rules = [k for k in rules if any(get(r, k) is not None for r in s['runs'])]
    runs = [r for r in s['runs'] if all(get(r, k) is not None for k in rules)]
    if not runs:
        return {}, 0
    return {k: sum(get(r, k) for r in runs) / len(runs) for k in rules}, len(runs)


def block_selection(st):
    out = []
    for name, s in with_results(st):
        sel, corr = s.get('selection'), s.get('correlations')
        if not sel:
            continue
        st_ = s['analysis_settings']
        label = lambda k: SEL_NAMES.get(k) or (f"OOD accuracy on {k[4:-3]}% of the OOD test" if k.startswith('ood_') else k)
        layer = st_.get('unif_layer', 'concat')
        out += [f"#### {scale_line(s)}", '',
                f"Run selection: {st_.get('select_repeats')} random subsets of {st_.get('select_frac', 0):.0%} of the runs; "
                "mean final OOD accuracy of the run each rule picks.", '',
                *table(['pick the run by', 'OOD accuracy of the pick'], [(label(k), f3(val)) for k, val in sel.items()]),
                '', f"Pearson r of unification ({layer}) with final OOD accuracy across runs "
                f"(better baseline: {s.get('better_variant')}):", '',
                *table(['baseline', 'activations', 'gradients'], [(v, f3(dig(kinds, 'act', layer)), f3(dig(kinds, 'grad', layer)))
                                                                  for v, kinds in (corr or {}).items()])]
        cm, n = ckpt_means(s)
        if cm:
            out += ['', f'Checkpoint selection, mean over the {n} runs with parallel data of the OOD accuracy at the '
                    'checkpoint picked by: ' + ', '.join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in cm.items()) + '.']
        out.append('')
    return '\n'.join(out).strip() or 'No experiment with run selection has run yet.'


# the columns of bench.py's sweep row (a real sweep, then its analysis): (field, header, format)
SWEEP_COLUMNS = (('train_s', 'training (s)', '.1f'), ('step_s', 'in steps (s)', '.1f'),
                 ('outside_steps_frac', 'outside the steps', '.0%'), ('analyze_s', 'analysis (s)', '.1f'),
                 ('ckpts_per_s', 'checkpoints/s', '.2f'))


def block_bench(st):
    """Throughput by mode (each speed candidate a row of its own), the whole sweep, and where and how
    it was measured; what the bench has not measured yet says so."""
    b = st['S'].get('bench')
    if not b:
        return 'The GPU bench has not run yet.'
    modes = [m for m in ('eager', 'compile', 'graph', 'cpu') if m in b.get('modes', {})]
    label = {'eager': 'eager', 'compile': 'torch.compile', 'graph': 'torch.compile + CUDA graph', 'cpu': 'CPU'}
    row = lambda m, r: dig(b, 'modes', m, 'rows', r)
    fullest = sorted(modes, key=lambda m: -len(b['modes'][m]['rows']))     # row order of the mode with every row
    names = list(dict.fromkeys(r for m in fullest for r in b['modes'][m]['rows']))
    rows, sweeps = [], []
    for r in names:
        if r.startswith('sweep'):
            sweeps += [[r, label[m]] + [f3(row(m, r).get(k), fmt) for k, _, fmt in SWEEP_COLUMNS] for m in modes if row(m, r)]
            continue
        unit = next(row(m, r)['unit'] for m in modes if row(m, r))
        rows.append([f'{r} ({unit})'] + [f3(dig(row(m, r), 'value'), ',.0f' if unit == 'examples/s' else ',.1f') for m in modes])
    if not any(r.startswith('lockstep') and not results.LOCKSTEP_ROW.fullmatch(r) for r in names):
        todo = ['not yet measured' if m == 'compile' else '–' for m in modes]     # the candidates run compiled
        rows.append(['speed candidates at the largest E (run-steps/s)', *todo])
    out = table(['row'] + [label[m] for m in modes], rows) + ['']
    out += table(['whole sweep (training, then analysis)', 'mode'] + [h for _, h, _ in SWEEP_COLUMNS],
                 sweeps or [['not yet measured'] + ['–'] * (1 + len(SWEEP_COLUMNS))])
    for p in b.get('provenance', []):
        cmds = '; '.join(f'`{c}`' for c in (p.get('command') or []))
        out += ['', f"{p.get('device')}, torch {p.get('torch')}, commit {p.get('commit')}, {p.get('date')}: {cmds}."]
        if p.get('tests'):
            out.append(f"GPU tests: {p['tests']}.")
        if p.get('failed'):
            out.append(f"Not measured: {'; '.join(p['failed'])}.")
    return '\n'.join(out)


def block_toy(st):
    t = st['toy']
    if not t:
        return 'The toy model has not run yet.'
    out = table(['lang_var (target)', 'measured', 'same-language accuracy', 'cross-language accuracy (± std over seeds)'],
                [(r['lang_var'], f3(r.get('lang_var_measured'), '.4f'), f3(r.get('same_acc')),
                  f"{f3(r.get('cross_acc'))} ± {f3(r.get('cross_acc_std'))}") for r in t.get('table', [])])
    top = max((r['lang_var'] for r in t.get('scale_table', [])), default=None)
    scale = [r for r in t.get('scale_table', []) if r['lang_var'] == top]
    if scale:
        out += ['', f"Cross-language accuracy at lang_var {top} as the language feature gets fainter: "
                + ', '.join(f"lang_scale {r['lang_scale']}: {r['cross_acc']:.3f}" for r in scale)
                + f". `python toy.py`, {len((t.get('table') or [{}])[0].get('seeds', []))} seeds, 2-core CPU "
                "(`assets/toy/results.json`)."]
    return '\n'.join(out)


# ----------------------------------------------------------------------------- README: findings and figures
# when a finding counts as reproduced (our thresholds; the paper gives no numbers for most)
CRIT = dict(id_near_perfect=0.9,  # every run's final ID accuracy at least this
            ood_spread=0.3,       # final OOD accuracy spans at least this across runs
            margin=0.02,          # "no better than a random pick" allows this much
            rho=0.7,              # Spearman of OOD accuracy with celeb_frac at least this
            chance_x=2.0,         # OOD at celeb_frac 0 at least this many times chance for every fact type
            early_r=0.5,          # Pearson r of early unification with final OOD at least this
            unif_r=0.7,           # Pearson r of unification with final OOD at least this
            sel_gap=0.03)         # the unification pick within this of the small-OOD-test pick


def finding1(st):
    m = main_summary(st)
    if m is None:
        return 'not yet run', 'the main sweep has not run at paper scale', '', ''
    ids, oods, sel = [acc(r, 'id_test') for r in m['runs']], [acc(r, 'ood_test') for r in m['runs']], m.get('selection') or {}
    near, varies = min(ids) >= CRIT['id_near_perfect'], max(oods) - min(oods) >= CRIT['ood_spread']
    id_blind = sel.get('id_test') is not None and sel['id_test'] <= sel.get('random', 0) + CRIT['margin']
    status = 'reproduced' if near and varies and id_blind else 'partly reproduced' if near or varies else 'not reproduced'
    text = (f"ID {min(ids):.2f}-{max(ids):.2f} in every run (the paper: close to 1), OOD {min(oods):.2f}-{max(oods):.2f}; "
            f"r(ID, OOD) across runs {f3(pearson(ids, oods), '+.2f')}")
    if sel.get('id_test') is not None:
        text += f"; picking runs by ID gives OOD {sel['id_test']:.3f}, a random pick {sel.get('random', 0):.3f}"
    return status, text, scale_line(m), 'Fig. 1, 2'


def chance(cfg, ft):
    """1 / number of values of a fact type, from the experiment's knobs."""
    n = dict(birth_year=cfg.get('n_birth_years', 20), death_year=cfg.get('n_birth_years', 20) + cfg.get('n_lifespans', 11) - 1,
             birth_city=cfg.get('n_cities', 100), death_city=cfg.get('n_cities', 100))[ft]
    return 1 / n


def finding2(st):
    m = main_summary(st)
    if m is None:
        return 'not yet run', 'the main sweep has not run at paper scale', '', ''
    runs = [r for r in m['runs'] if (r.get('knobs') or {}).get('celeb_frac') is not None]
    cf, oods = [r['knobs']['celeb_frac'] for r in runs], [acc(r, 'ood_test') for r in runs]
    rho = spearman(cf, oods)
    mean_at = lambda c, ft='all': sum(acc(r, 'ood_test', ft) or 0 for r in runs if r['knobs']['celeb_frac'] == c) / cf.count(c)
    lo, hi = min(cf), max(cf)
    peak = max(sorted(set(cf)), key=mean_at)
    text = (f"OOD rises with celeb_frac (Spearman {f3(rho, '.2f')}): {mean_at(lo):.2f} at {lo}, "
            f"{mean_at(peak):.2f} at {peak} (highest), {mean_at(hi):.2f} at {hi}")
    ok_rho, ok_chance, ok_order = rho is not None and rho >= CRIT['rho'], None, None
    if lo == 0:
        by_ft = {ft: mean_at(0, ft) for ft in FACT_TYPES}
        ok_chance = all(by_ft[ft] >= CRIT['chance_x'] * chance(m['config'], ft) for ft in FACT_TYPES)
        ok_order = min(by_ft['birth_year'], by_ft['death_year']) > max(by_ft['birth_city'], by_ft['death_city'])
        text += ("; with no parallel data, OOD by fact type " + ', '.join(f"{ft} {by_ft[ft]:.2f}" for ft in FACT_TYPES)
                 + " (chance " + ', '.join(f"{chance(m['config'], ft):.2f}" for ft in FACT_TYPES) + ')')
    checks = [c for c in (ok_rho, ok_chance, ok_order) if c is not None]
    status = ('reproduced' if all(checks) and len(checks) == 3 else 'partly reproduced' if any(checks) else 'not reproduced')
    return status, text, scale_line(m), 'Fig. 1, 2'


def early_point(run, frac):
    """(iter, unification) at the first checkpoint past frac of training that has a unification score."""
    t = run.get('trajectory') or {}
    for it, u in zip(t.get('iter', []), t.get('unification', [])):
        if it >= frac * run['iter'] and u is not None:
            return it, u
    return None, None


def finding3(st):
    m = main_summary(st)
    if m is None:
        return 'not yet run', 'the main sweep has not run at paper scale', '', ''
    parts, rs = [], []
    for frac in early_fracs:
        pts = [(early_point(r, frac), acc(r, 'ood_test'), r['name']) for r in m['runs']]
        pts = [(it, u, o, n) for (it, u), o, n in pts if u is not None and o is not None]
        if len(pts) < 3:
            continue
        r = pearson([p[1] for p in pts], [p[2] for p in pts])
        low, high = min(pts, key=lambda p: p[2]), max(pts, key=lambda p: p[2])
        its = sorted({p[0] for p in pts})
        rs.append(r)
        parts.append(f"at iter {'/'.join(map(str, its))} ({its[0] / m['runs'][0]['iter']:.1%} of training) r = {f3(r, '.2f')}, "
                     f"lowest-OOD run `{low[3]}` {low[1]:.2f} vs highest `{high[3]}` {high[1]:.2f}")
    if not rs:
        return 'not yet run', 'fewer than 3 runs with parallel data', scale_line(m), 'Fig. 3'
    text = (f"unification (activations, {m['analysis_settings'].get('unif_layer', 'concat')}) early in training already "
            f"tracks final OOD over {len(pts)} runs with parallel data: " + '; '.join(parts)
            + ". Separation by language (checkerboards) is to be read off the similarity matrices")
    status = 'partly reproduced' if all(r is not None and r >= CRIT['early_r'] for r in rs) else 'not reproduced'
    return status, text, scale_line(m), 'Fig. 3'


def mean_ood(s, **knobs):
    vals = [acc(r, 'ood_test') for r in s['runs'] if all((r.get('knobs') or {}).get(k) == v for k, v in knobs.items())]
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def finding4_paper(st):
    """The paper-scale checks of finding 4 that have run: [(holds, text)]. The templates, events and
    steps experiments compare with shared_tokens at shared_token_frac = 1 (no token tells the language)."""
    S, out = st['S'], []
    if 'balance' in S:
        v = {k: mean_ood(S['balance'], variant=k) for k in ('src', 'balanced', 'imbalanced')}
        if None not in v.values():
            out.append((v['balanced'] > v['src'] > v['imbalanced'], 'mean OOD balanced {balanced:.2f}, src {src:.2f}, '
                        'imbalanced {imbalanced:.2f}'.format(**v)))
    if 'char_low' in S and 'char_cased' in S:
        a, b = mean_ood(S['char_low']), mean_ood(S['char_cased'])
        out.append((a > b, f"mean OOD char_low {a:.2f} vs char_cased {b:.2f}"))
    base = S.get('shared_tokens')
    if base:
        fr = sorted({(r.get('knobs') or {}).get('shared_token_frac') for r in base['runs']} - {None})
        by = [(f, mean_ood(base, shared_token_frac=f)) for f in fr]
        if len(by) >= 2:
            out.append((spearman(*zip(*by)) >= CRIT['rho'], 'mean OOD by shared_token_frac '
                        + ', '.join(f"{f}: {o:.2f}" for f, o in by)))
    b5 = mean_ood(base, shared_token_frac=1.0) if base else None
    tm = [(int(n[-2:]), mean_ood(S[n])) for n in ('templates_02', 'templates_10', 'templates_20') if n in S]
    tm = sorted(tm + ([(5, b5)] if b5 is not None else []))
    if len(tm) >= 2:
        out.append((spearman(*zip(*tm)) >= CRIT['rho'], 'mean OOD by templates ' + ', '.join(f"{k}: {v:.2f}" for k, v in tm)))
    for n in ('people_10x', 'steps_10x'):
        if n in S and b5 is not None:
            a = mean_ood(S[n])
            out.append((a <= b5 + 0.05, f"{n} mean OOD {a:.2f} vs {b5:.2f} in shared_tokens at shared_token_frac 1"))
    return out


def finding4(st):
    paper = finding4_paper(st)
    names = [n for n, (f, _) in EXPERIMENTS.items() if f == '4' and n not in st['S']]
    text = '; '.join(t for _, t in paper)
    if names:
        text += ('; ' if text else '') + 'not yet run at paper scale: ' + ', '.join(f'`{n}`' for n in names)
    mini, mini_ok = st['mini'], None
    if mini:
        fin = {r['knobs'].get('variant'): r for r in mini['records'] if r.get('final')}
        if {'src', 'balanced', 'imbalanced'} <= set(fin):
            o = {k: dig(fin[k], 'acc', 'ood_test', 'all') for k in fin}
            mi = {k: dig(fin[k], 'mi_lang_attr', 'mean') for k in fin}
            mini_ok = o['balanced'] > o['src'] > o['imbalanced']
            v = st['mini_prov'].get('data_version')
            made = f"data v{v}" + (f", **stale**: now v{VERSION}" if v != VERSION else '') if v else 'data version unknown'
            text += (f". CPU miniature ({made}; 200 people, 4 layers, no parallel data, one run each): OOD balanced {o['balanced']:.3f} "
                     f"(MI {mi['balanced']:.3f} bits), src {o['src']:.3f} ({mi['src']:.3f}), imbalanced {o['imbalanced']:.3f} "
                     f"({mi['imbalanced']:.3f}), ID >= {min(dig(r, 'acc', 'id_test', 'all') for r in fin.values()):.3f} "
                     "in all three")
    holds = [h for h, _ in paper]
    status = ('reproduced' if paper and all(holds) and not names else 'partly reproduced' if any(holds) or mini_ok
              else 'not reproduced' if paper else 'not yet run')
    ran = [n for n, (f, _) in EXPERIMENTS.items() if f == '4' and n in st['S']]
    scale = ('paper scale: ' + ', '.join(scale_line(st['S'][n]) for n in ran)) if paper else ''
    scale += ('; ' if scale and mini else '') + ('CPU miniature only (`config/quick_balance.py`)' if mini and not paper else
                                                 'CPU miniature (`config/quick_balance.py`)' if mini else '')
    return status, text, scale, 'Fig. 6'


def finding5(st):
    s = st['S'].get('selection') if st['S'].get('selection', {}).get('runs') else main_summary(st)
    if s is None or not s.get('correlations'):
        return 'not yet run', 'no experiment with run selection has run', '', ''
    st_ = s['analysis_settings']
    v, layer = st_.get('unif_variant', 'same_fact'), st_.get('unif_layer', 'concat')
    ra, rg = dig(s, 'correlations', v, 'act', layer), dig(s, 'correlations', v, 'grad', layer)
    sel = s.get('selection') or {}
    k1 = next((k for k in sel if k.startswith('ood_')), None)
    text = f"r(unification, final OOD) = {f3(ra, '.2f')} activations / {f3(rg, '.2f')} gradients ({v}, {layer})"
    if sel:
        text += (f"; picking from random thirds of the runs: unification {f3(sel.get('unification'))}, OOD on "
                 f"{k1[4:-3] if k1 else '?'}% of the OOD test {f3(sel.get(k1))}, ID {f3(sel.get('id_test'))}, "
                 f"oracle {f3(sel.get('oracle'))}, random {f3(sel.get('random'))}")
    cm, n = ckpt_means(s)
    ok_ckpt = None
    if 'unification' in cm and 'last_best_id' in cm:
        ok_ckpt = cm['unification'] >= cm['last_best_id'] - CRIT['sel_gap']
        text += (f"; checkpoints (mean over {n} runs): the max-unification one has OOD {cm['unification']:.3f}, the last "
                 f"best-ID one {cm['last_best_id']:.3f}, the best {f3(cm.get('oracle'))}")
    ok_r = ra is not None and ra >= CRIT['unif_r']
    ok_sel = bool(sel.get('unification') is not None and k1 and sel['unification'] >= sel[k1] - CRIT['sel_gap']
                  and sel['unification'] > (sel.get('id_test') or 0) + CRIT['margin'])
    checks = [c for c in (ok_r, ok_sel, ok_ckpt) if c is not None]
    status = 'reproduced' if all(checks) and len(checks) == 3 else 'partly reproduced' if any(checks) else 'not reproduced'
    if s['exp'] != 'selection':
        text += '; `selection` (110 runs over celeb_frac x lang_ratio) not yet run'
    return status, text, scale_line(s), 'Fig. 4, 5'


def finding6(st):
    t, vocab, llm = st['toy'], st['vocab'], st['llm']
    parts, toy_ok = [], False
    if t and t.get('table'):
        tab = sorted(t['table'], key=lambda r: r['lang_var'])
        top = max((r['lang_var'] for r in t.get('scale_table', [])), default=None)
        faint = min((r for r in t.get('scale_table', []) if r['lang_var'] == top), key=lambda r: r['lang_scale'], default=None)
        toy_ok = (tab[0]['cross_acc'] >= 0.95 and tab[-1]['cross_acc'] <= tab[-1]['same_acc'] - 0.1
                  and faint is not None and faint['cross_acc'] >= 0.95)
        parts.append(f"toy (linear model, {len(tab[0].get('seeds', []))} seeds): cross-language accuracy "
                     + ', '.join(f"{r['cross_acc']:.3f}" for r in tab)
                     + ' at lang_var ' + ', '.join(str(r['lang_var']) for r in tab)
                     + f" (same-language {min(r['same_acc'] for r in tab):.3f}+); a faint language feature "
                     + (f"(lang_scale {faint['lang_scale']}) gives {faint['cross_acc']:.3f}" if faint else ''))
    if llm:
        parts.append('Gemma-2-2B on ECLeKTic: results in `assets/llm_eval/results.json`')
    else:
        pairs = {'-'.join(sorted(k.split('-'))): v for k, v in (vocab or {}).get('jaccard', {}).items()}
        top3 = sorted(pairs.items(), key=lambda kv: -kv[1])[:3]
        parts.append('Gemma-2-2B on ECLeKTic: not yet run; only the vocabulary-overlap matrix ('
                     + ', '.join(f"{k} {v:.3f}" for k, v in top3) + ')')
    status = 'partly reproduced' if toy_ok else 'not reproduced' if t else 'not yet run'
    return status, '; '.join(parts), 'toy: 2-core CPU; LLM: not run', 'Fig. 7'


FINDINGS = (('1', 'ID recall near perfect, OOD varies widely; ID does not predict OOD', finding1),
            ('2', 'more parallel data raises OOD; without any, OOD is far above chance, best for few-valued fact types',
             finding2),
            ('3', 'early on a model unifies or separates the languages; separation predicts poor OOD', finding3),
            ('4', 'informative and extractable language features drive separation; 10x events or steps do not help', finding4),
            ('5', 'unification on training data tracks OOD and selects runs and checkpoints like a small OOD test', finding5),
            ('6', 'a linear toy model shows the effect; in an LLM unification predicts transfer', finding6))


def block_findings(st):
    rows = []
    for n, claim, fn in FINDINGS:
        status, text, scale, figs = fn(st)
        rows.append([n, claim, f'**{status}**', text, scale or '–', figs or '–'])
    return '\n'.join(table(['#', 'finding (SPEC)', 'status', 'what the measured results show', 'scale', 'figures'], rows))


def figure_list(st):
    """(number, caption, [paths]) of the figures the findings cite, where they exist."""
    m = main_summary(st)
    me = m['exp'] if m else None
    sim = dig(m, 'figures', 'sim') or {} if m else {}
    sims = [f"{m['_dir']}/figures/{sim[t]['act']}" for t in ('low', 'high') if dig(sim, t, 'act')]
    sel = 'selection' if fig_path(st, 'selection', 'selection.png') else me
    bal = fig_path(st, 'balance', 'acc_vs_knobs.png')
    mini = [st['rel'](os.path.join(st['assets'], 'quick_balance', f)) for f in ('acc_vs_knobs.png', 'mi_vs_footprint.png')
            if os.path.isfile(os.path.join(st['assets'], 'quick_balance', f))]
    toy = [st['rel'](os.path.join(st['assets'], *p)) for p in (('toy', 'cross_acc_vs_scale.png'),
                                                                ('llm_eval', 'vocab_overlap.png'))
           if os.path.isfile(os.path.join(st['assets'], *p))]
    low_high = ' vs '.join(f"`{sim[t]['run']}` (OOD {sim[t]['ood']:.2f})" for t in ('low', 'high') if t in sim)
    return [(1, f'final ID (dashed) and OOD (solid) accuracy vs celeb_frac (`{me}`)', [fig_path(st, me, 'acc_vs_knobs.png')]),
            (2, f'accuracy over training by fact type (`{me}`)', [fig_path(st, me, 'acc_curves.png')]),
            (3, 'cosine similarity of training examples over checkpoints and layers, lowest- vs highest-OOD run: '
             + low_high, sims),
            (4, f'unification vs final OOD accuracy across runs (`{me}`)', [fig_path(st, me, 'unif_vs_ood.png')]),
            (5, f'run and checkpoint selection (`{sel}`)', [fig_path(st, sel, 'selection.png')]),
            (6, 'informativeness: '
             + ('`balance`' if bal else 'the CPU miniature `quick_balance` (OOD by variant; MI vs footprint)'),
             [bal] if bal else mini),
            (7, 'the toy model (cross-language accuracy vs language variance and scale); '
             'vocabulary overlap of 12 languages', toy),
            (8, 'training throughput (bench)', [fig_path(st, 'bench', 'bench.png')])]


def block_figures(st):
    out = []
    for n, caption, paths in figure_list(st):
        paths = [p for p in paths if p]
        out += [f'**Fig. {n}**: {caption}' + ('' if paths else ': not yet run.'), '']
        out += [f'![Fig. {n}]({p})' for p in paths] + ([''] if paths else [])
    return '\n'.join(out).strip()


# the marked blocks of the README and what writes each
RENDER = dict(findings=block_findings, figures=block_figures, experiments=block_experiments, runs=block_runs,
              selection=block_selection, bench=block_bench, toy=block_toy)
MARK = re.compile(r'(<!-- report:([\w-]+) -->\n)(.*?)(<!-- /report:\2 -->)', re.S)


def rewrite(text, blocks, path='README.md'):
    """text with the content between each pair of markers replaced -> (new text, names that changed)."""
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
    if missing:
        raise ValueError(f"report error: {path} lacks the markers <!-- report:{missing[0]} --> and <!-- /report:{missing[0]} -->")
    return out, changed


# ----------------------------------------------------------------------------- main
def main(cfg):
    """results.py's work (--summarise, --import) if asked, then the README's tables: rewritten, or
    with --check compared. -> exit code."""
    if cfg['summarise'] or cfg['imports']:
        results.main(cfg)
    global early_fracs
    early_fracs = cfg['early_fracs']
    if not os.path.isfile(cfg['readme']):
        raise ValueError(f"report error: no {cfg['readme']}")
    with open(cfg['readme']) as f:
        text = f.read()
    st = load_state(cfg['assets'], cfg['readme'])
    new, changed = rewrite(text, {name: fn(st) for name, fn in RENDER.items()}, cfg['readme'])
    if cfg['check']:
        if changed:
            print(f"report error: the README's {', '.join(changed)} table(s) differ from {cfg['assets']}/ "
                  "(run python -m dev.report)", file=sys.stderr)
            return 1
        print(f"report: {cfg['readme']} matches {cfg['assets']}/")
        return 0
    if changed:
        with open(cfg['readme'], 'w') as f:
            f.write(new)
    print(f"report: {cfg['readme']}: " + (f"rewrote {', '.join(changed)}" if changed else 'tables up to date'))
    return 0


if __name__ == '__main__':
    argv = ['--check=True' if a == '--check' else a for a in sys.argv[1:]]
    sys.exit(cli(lambda: main(results.parse_args(argv, DEFAULTS, [__file__, results.__file__]))))
