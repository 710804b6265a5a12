"""
The result tables of README.md and docs/*.md, each result folder's README.md and the verdict on each
finding (by dev/verdicts.py, the rules of docs/verdicts.md), written from assets/. A generated table sits
between `<!-- report:NAME -->` and `<!-- /report:NAME -->` (a block may stand in several files); nothing
else of those files is touched.

    python -m dev.report                                        # rewrite the tables from assets/
    python -m dev.report --check                                # exit 1 if a table and assets/ disagree (tests run it)
    python -m dev.report --import=out/gpu/sweep_celeb-1of2.tgz  # archives of dev/run_queue.py -> assets/, then rewrite

It takes results.py's knobs too (--force=True, ...): their work first, then the tables.
"""
import glob
import json
import itertools
import os
import re
import statistics
import sys

import metrics
from config import experiments
from configurator import cli, config_keys
from data_gen import FACT_TYPES
from dev import results
from dev.results import read_json
from dev.verdicts import (FINDINGS, acc, design, early_rs, emb_share, machine_of, mean_ood, n_runs, num, scale_line,
                          scored_runs, seed_label, stale_word)
from records import dig

# -----------------------------------------------------------------------------
readme = 'README.md'        # the README whose marked tables are rewritten, and those of the docs/*.md beside it
check = False               # only compare: exit 1 when a table differs from what assets/ gives
# -----------------------------------------------------------------------------
DEFAULTS = dict(results.DEFAULTS, **config_keys(globals()))
SCALES = ('laptop', 'paper')  # the two status columns, in this order
STANDIN = 'llm_gemma3'        # assets/<this>/: llm_eval.py's CPU run of a small real LLM on the CLDR facts (docs/llm.md)
# assets/bench/<these>/: the laptop sweep's end points trained twice, float32 eager and the CPU default (bf16 autocast
# + compile), as <float32|pick>_cf<celeb_frac>_seed<N>.jsonl with provenance.json; docs/speed.md pools them
SHIFT_SETS = ('same_science', 'same_science_replication')


# ----------------------------------------------------------------------------- reading assets/
def read_assets(assets_dir):
    """Everything the tables read: every experiment's result at each scale (with why it is stale), the
    bench, the toy and llm_eval results, the float32-vs-default runs."""
    def opt(*p):
        path = os.path.join(assets_dir, *p)
        return read_json(path) if os.path.isfile(path) else None

    def result(folder, scale):
        s = read_json(os.path.join(folder, 'summary.json'))
        return dict(s, _stale=results.stale_reasons(s), _path=folder, _scale=scale)

    found = {}
    for name, scale in itertools.product(experiments.EXPERIMENTS, SCALES):
        folder = experiments.assets_dir(name, scale, assets_dir)
        if os.path.isfile(os.path.join(folder, 'summary.json')):
            found[(name, scale)] = result(folder, scale)
            if os.path.isfile(os.path.join(folder, 'stale', 'summary.json')):    # results/keep_beside
                found[(name, scale)]['_beside'] = result(os.path.join(folder, 'stale'), scale)
    return dict(results=found, bench=opt('bench', 'summary.json'), toy=opt('toy', 'results.json'),
                vocab=opt('llm_eval', 'vocab_overlap.json'), llm=opt('llm_eval', 'results.json'),
                standin=opt(STANDIN, 'results.json'), standin_prov=opt(STANDIN, 'provenance.json'),
                shift=shift_runs(assets_dir), assets=assets_dir)


def load_state(assets_dir, path, root=None, read=None):
    """read_assets (or `read`, what it gave) with paths relative to the file being written (root: the
    folder of the README, whose docs/ holds verdicts.md and findings.md; default the file's own folder)."""
    base = os.path.dirname(os.path.abspath(path))
    rel = lambda p: os.path.relpath(p, base).replace(os.sep, '/')
    read, docs = read or read_assets(assets_dir), os.path.join(root or base, 'docs')
    with_dir = lambda s: dict(s, _dir=rel(s['_path']), **({'_beside': with_dir(s['_beside'])} if '_beside' in s else {}))
    return dict(read, results={k: with_dir(s) for k, s in read['results'].items()}, rel=rel,
                verdicts=rel(os.path.join(docs, 'verdicts.md')), findings=rel(os.path.join(docs, 'findings.md')))


def table(head, rows):
    """A markdown table as lines: the header, then one line per row of cells."""
    return ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)] + ['| ' + ' | '.join(map(str, r)) + ' |' for r in rows]


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


# ----------------------------------------------------------------------------- what ran, and each result's runs
def result_cell(s):
    """An experiment's result at one scale in a few words: runs (a link to their tables), steps, wall
    time, where and when; whether it is current."""
    if s is None:
        return 'not yet run'
    n, total = n_runs(s)
    prov = s.get('provenance', [])
    train_s = sum(p.get('train_wall_s') or p.get('train_s') or 0 for p in prov)
    analyze_s = sum(p.get('analyze_s') or 0 for p in prov)
    where = '; '.join(dict.fromkeys(f"{machine_of(p)}, {p.get('date')}" for p in prov))
    out = (f"[{n} of {total} runs]({s['_dir']}/README.md), {dig(s, 'config', 'max_iters'):,} steps, "
           f"{(train_s + analyze_s) / 60:.0f} min ({train_s / 60:.0f} + {analyze_s / 60:.0f}), {where}")
    if n < total:
        out += f"; shards {', '.join(map(str, s['shards']['done']))} of {s['shards']['n']} done"
    return out + (f"; **{stale_word(s)}**" if s['_stale'] else '')


def block_experiments(state):
    rows = [[f'`{name}`', e['findings'] or '–', e['what'], *(result_cell(state['results'].get((name, sc))) for sc in SCALES)]
            for name, e in experiments.EXPERIMENTS.items()]
    return '\n'.join(table(['experiment', 'finding', 'what it tests', 'laptop scale: runs, steps, wall time (training + '
                            'analysis), machine', 'paper scale'], rows))


def runs_table(s):
    runs = sorted(s['runs'], key=lambda r: tuple((str(type(v)), v) for v in (r.get('knobs') or {}).values()))
    knobs = list(dict.fromkeys(k for r in runs for k in (r.get('knobs') or {})))
    fts = [ft for ft in FACT_TYPES if any(acc(r, 'ood_test', ft) is not None for r in runs)]
    layer = s['analysis_settings'].get('unif_layer', 'concat')
    head = knobs + ['ID', 'OOD'] + [f'OOD {ft}' for ft in fts] + [
        f'unification act ({metrics.HEADLINE}, {layer})', 'unification grad: without the input embeddings / whole',
        "paper's ratio act",
        'language footprint at init', 'peak after init (iter)', 'final']
    rows = []
    for r in runs:
        fp = r.get('lang_footprint') or {}
        values = [acc(r, 'id_test'), acc(r, 'ood_test'), *(acc(r, 'ood_test', ft) for ft in fts),
                  dig(r, 'unification', metrics.HEADLINE, 'act')]
        grad = [dig(r, 'unification', metrics.HEADLINE, k) for k in ('grad_no_emb', 'grad')]
        grad = '–' if grad == [None, None] else ' / '.join(map(num, grad))
        peak = f"{num(fp.get('peak'))} ({fp.get('peak_iter')})" if fp.get('peak') is not None else '–'
        rows.append([(r.get('knobs') or {}).get(k, '') for k in knobs] + [num(x) for x in values]
                    + [grad, num(dig(r, 'unification', metrics.PAPER_RATIO, 'act')), num(fp.get('init')), peak,
                       num(fp.get('final'))])
    return table(head, rows)


SEL_NAMES = {'id_test': 'ID accuracy', 'unification': f'unification ({metrics.HEADLINE}, the headline)',
             'unif_x_id': 'unification x ID accuracy', 'unification_paper': "the paper's ratio (same_fact)",
             'oracle': 'best possible (oracle)', 'random': 'a random run'}
CKPT_NAMES = {'unification_plus': 'unification x ID (Unification+): the rule', 'unification': f'unification ({metrics.HEADLINE})',
              'unification_paper': "the paper's ratio", 'unification_any': 'unification, every checkpoint (the rule before C3)'}


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
           *table(['variant', 'activations', 'gradients', 'gradients without the input embeddings'],
                  [(f"{v}{' (headline)' if v == metrics.HEADLINE else ''}", num(dig(kinds, 'act', layer)),
                    num(dig(kinds, 'grad', layer)), num(dig(kinds, 'grad', 'no_emb'))) for v, kinds in
                   (s.get('correlations') or {}).items()])]
    rows = [(CKPT_NAMES.get(k, k), d['n_runs'], num(d['ood']), num(d['last_best_id']), num(d['last_best_ood']),
             num(d['oracle']), num(d['final']), f"{d['earlier']:.0%}")
            for k, d in (s.get('ckpt_selection_summary') or {}).items() if isinstance(d, dict) and 'n_runs' in d]
    if rows:
        out += ['', 'Checkpoint selection: per run, from the checkpoints after ID accuracy reaches '
                f"{settings.get('ckpt_min_id')} x the run's best; mean OOD accuracy of the pick over the runs the rule can "
                "score, beside the method's reference (the last checkpoint with the best ID accuracy):", '',
                *table(['pick the checkpoint by', 'runs', 'OOD of the pick', 'last best ID', 'last best OOD', 'oracle',
                        'final', 'earlier than last best OOD'], rows)]
    return out


def result_readme(s):
    """The whole README.md of one result folder: what it is, every run's final numbers, and its selection."""
    figures = dig(s, 'figures', 'files') or []
    out = [f"# `{s['exp']}` at {s['_scale']} scale", '',
           f"Generated by `python -m dev.report` from this folder's summary.json; do not edit. {scale_line(s)}.", '',
           'Final accuracy (ID = held-out template, OOD = the other language, last evaluation on up to 2,000 sampled '
           'test examples per split); unification and language footprint at the final checkpoint (`analyze.py`):', '',
           *runs_table(s)]
    if missing_text(s):
        out += ['', f"Not yet run: {missing_text(s)}."]
    if s.get('selection'):
        out += ['', '## Unification and selection', '', *selection_lines(s)]
    if figures:
        out += ['', 'Figures: ' + ', '.join(f"[{f}](figures/{f})" for f in figures) + '.']
    return '\n'.join(out) + '\n'


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
    modes, label = [m for m in results.MODES if m in bench.get('modes', {})], results.MODES
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


# ----------------------------------------------------------------------------- the CPU default against float32
def shift_runs(assets_dir):
    """{celeb_frac: [(float32 (id, ood), default (id, ood))]}: every seed trained both ways, over SHIFT_SETS."""
    out = {}
    for name in SHIFT_SETS:
        runs = {}
        for path in sorted(glob.glob(os.path.join(assets_dir, 'bench', name, '*.jsonl'))):
            m = re.fullmatch(r'(float32|pick)_cf([\d.]+)_seed(\d+)\.jsonl', os.path.basename(path))
            if m:
                fin = results.final_metrics(path)[1]                  # (ID, OOD) accuracy of the last evaluation
                runs.setdefault((float(m[2]), int(m[3])), {})[m[1]] = tuple((dig(fin, sp, 'all', 'all') or [None])[0]
                                                                            for sp in ('id_test', 'ood_test'))
        for (cf, _), r in sorted(runs.items()):
            if len(r) == 2:
                out.setdefault(cf, []).append((r['float32'], r['pick']))
    return out


def block_bf16_shift(state):
    """One paragraph: the default's mean OOD gap to float32 eager at each celeb_frac (± its standard error),
    float32's own seed-to-seed sd, the largest ID gap between seed means, and whether the OOD order agrees."""
    runs = state['shift']
    if not runs:
        return 'The float32 comparison has not run yet.'
    mean = lambda xs: statistics.fmean(xs)
    sd = lambda xs: statistics.stdev(xs) if len(xs) > 1 else 0.0
    gaps = {cf: [d[1] - f[1] for f, d in pairs] for cf, pairs in runs.items()}
    text = {cf: f"{mean(g):+.3f} ± {sd(g) / len(g) ** 0.5:.3f} over {len(g)} seeds" for cf, g in gaps.items()}
    zero, rest = min(runs), sorted(runs)[1:]
    f32_sd = sd([f[1] for f, _ in runs[zero]])
    id_gap = max(abs(mean([d[0] for _, d in p]) - mean([f[0] for f, _ in p])) for p in runs.values())
    order = lambda k: sorted(runs, key=lambda cf: mean([p[k][1] for p in runs[cf]]))
    return (f"Mean final OOD accuracy, CPU default minus float32 eager (± standard error): at celeb_frac {zero:g} "
            f"{text[zero]}, {'under' if abs(mean(gaps[zero])) < f32_sd / 2 else 'over'} half of float32's own "
            f"seed-to-seed sd ({f32_sd:.3f}); " + ''.join(f"at celeb_frac {cf:g} {text[cf]}; " for cf in rest)
            + f"ID seed means within {id_gap:.3f}; the OOD order of celeb_frac "
            f"{'the same' if order(0) == order(1) else 'not the same'}. The laptop main sweep's end points, 3,000 steps, "
            f"1,000 sampled test examples; runs and commands in " + ', '.join(f'`assets/bench/{n}/`' for n in SHIFT_SETS) + '.')


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


# ----------------------------------------------------------------------------- findings
def block_findings(state):
    """One short line per finding: the status at each scale and the number that carries it."""
    rows = []
    for n, claim, judge_at, _ in FINDINGS:
        cells = []
        for sc in SCALES:
            status, _, key = judge_at(state, sc)
            cells.append(f"**{status}**" + (f": {key}" if key else ''))
        rows.append([f"[{n}]({state['findings']}#finding-{n})", claim, *cells])
    return '\n'.join(table(['#', 'finding', 'laptop scale (2 CPU cores)', 'paper scale (a GPU)'], rows))


def block_evidence(state):
    """Per finding: its status and every measured number at each scale, the rule's link and its figures."""
    out = []
    for n, claim, judge_at, figs in FINDINGS:
        out += [f'<a id="finding-{n}"></a>', '', f'### {n}. {claim}', '']
        for sc in SCALES:
            status, text, _ = judge_at(state, sc)
            out += [f"**{sc.capitalize()} scale: {status}.**" + ('' if text else ' Nothing to show yet.')]
            out += [f"- {t}" for t in text.split('<br>') if t] + ['']
        out += [f"Rule: [verdicts.md#finding-{n}]({state['verdicts']}#finding-{n}). Figures: {figs} (below).", '']
    return '\n'.join(out).strip()


# ----------------------------------------------------------------------------- the two scales side by side
def scale_column(s):
    """One result's cells for block_scales, a row per measure both scales have ('–' where not measured)."""
    cfg, layer = s['config'], s['analysis_settings'].get('unif_layer', 'concat')
    ids = [acc(r, 'id_test') for r in s['runs'] if acc(r, 'id_test') is not None]
    cfs = sorted({(r.get('knobs') or {}).get('celeb_frac') for r in s['runs']} - {None})
    corr = lambda kind, at=layer, v=metrics.HEADLINE: num(dig(s, 'correlations', v, kind, at), '.2f')
    early, _ = early_rs(s)
    sel = s.get('selection') or {}
    ck = {k: d for k, d in (s.get('ckpt_selection_summary') or {}).items() if d}
    pick = 'unification_plus' if 'unification_plus' in ck else next(iter(ck), None)
    return [f"{cfg['n_layer']} layers x {cfg['n_embd']}, {cfg['n_people']:,} people, batch {cfg['batch_size']}, "
            f"{cfg['max_iters']:,} steps",
            f"{n_runs(s)[0]} of {n_runs(s)[1]}{seed_label(s)}, "
            + ', '.join(dict.fromkeys(machine_of(p) for p in s.get('provenance', [])))
            + (f", **{stale_word(s)}**" if s['_stale'] else ''),
            f"{statistics.fmean(ids):.2f} ({min(ids):.2f}-{max(ids):.2f})" if ids else '–',
            ', '.join(f"{c:g}: {num(mean_ood(s, celeb_frac=c), '.2f')}" for c in cfs) or '–',
            ', '.join(f"{ft} {num(mean_ood(s, ft, celeb_frac=0.0), '.2f')}" for ft in ['all', *FACT_TYPES])
            if 0.0 in cfs else '–',
            f"{corr('act')} (the paper's ratio {corr('act', v=metrics.PAPER_RATIO)})",
            f"{corr('grad')}; without the input embeddings {corr('grad', 'no_emb')}{emb_share(s)}",
            f"{num(early['unification'][0], '.2f')}; footprint {num(early['lang_footprint'][0], '.2f')}",
            ' / '.join(num(sel.get(k)) for k in ('unification', 'ood_1pct', 'id_test', 'random', 'oracle')),
            f"{CKPT_NAMES[pick].split(':')[0]}: " + ' / '.join(num(ck[pick][k]) for k in ('ood', 'last_best_id', 'oracle'))
            + f" ({ck[pick]['n_runs']} runs)" if pick else '–']


SCALE_ROWS = ('model, data, training', 'runs, machine', 'final ID: mean (range)', 'mean final OOD by celeb_frac',
              'mean final OOD at celeb_frac 0, by fact type', f'r(unification, final OOD), activations ({metrics.HEADLINE})',
              'r(unification, final OOD), gradients', 'early r: unification; language footprint (finding 3)',
              'run picks: unification / 1% OOD test / ID / random / oracle',
              'checkpoint picks: the rule / last best ID / oracle')


def block_scales(state):
    """The main sweep (sweep_celeb) at laptop and paper scale, a column each (and the stale result kept
    beside a partial current one), for the measures both have."""
    cols = [(f'{sc} scale', s) for sc in SCALES for s in [state['results'].get(('sweep_celeb', sc))] if s]
    cols += [(f'{head}: the result kept beside it', s['_beside']) for head, s in cols if '_beside' in s]
    if not cols:
        return '`sweep_celeb` has not run yet.'
    cells = [scale_column(s) for _, s in cols]
    return '\n'.join(table(['`sweep_celeb`', *(head for head, _ in cols)],
                           [[name, *(c[i] for c in cells)] for i, name in enumerate(SCALE_ROWS)]))


# ----------------------------------------------------------------------------- figures
def shown(state, name):
    """The result of an experiment the figures show: current before stale, paper before laptop."""
    found = [state['results'].get((name, sc)) for sc in ('paper', 'laptop')]
    return next((s for s in found if s and not s['_stale']), None) or next((s for s in found if s), None)


def fig_path(s, name):
    return f"{s['_dir']}/figures/{name}" if s and name in (dig(s, 'figures', 'files') or []) else None


def where(s):
    """' (`exp`, scale[, why it is stale])' for a figure's caption, '' when the experiment has not run."""
    return f" (`{s['exp']}`, {s['_scale']} scale{', ' + stale_word(s) if s['_stale'] else ''})" if s else ''


def figure_list(state):
    """(number, caption, [paths]) of the figures the findings cite, where they exist."""
    main = shown(state, 'sweep_celeb')
    sel = shown(state, 'selection') if fig_path(shown(state, 'selection'), 'selection.png') else main
    bal, long, assets = shown(state, 'balance'), shown(state, 'selection_long'), state['assets']
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
            (5, f'run and checkpoint selection{where(sel)}' + (f'; checkpoint selection where OOD peaks and then falls'
                                                               f'{where(long)}' if fig_path(long, 'selection.png') else ''),
             [fig_path(sel, 'selection.png'), fig_path(long, 'selection.png')]),
            (6, f'informativeness: OOD by variant; MI vs language footprint{where(bal)}',
             [fig_path(bal, 'acc_vs_knobs.png'), fig_path(bal, 'mi_vs_footprint.png')]),
            (7, 'the toy model (cross-language accuracy vs language variance and scale); '
             'vocabulary overlap of 12 languages; the stand-in LLM: ROC AUC of unification for correct transfer per layer '
             f'(`{STANDIN}`, gemma-3-270m on the CLDR facts)', extra)]


def block_figures(state):
    out = []
    for n, caption, paths in figure_list(state):
        paths = [p for p in paths if p]
        out += [f'**Fig. {n}**: {caption}' + ('' if paths else ': not yet run.'), '']
        out += [f'![Fig. {n}]({p})' for p in paths] + ([''] if paths else [])
    return '\n'.join(out).strip()


# the marked blocks of README.md and docs/*.md, and what writes each
RENDER = dict(findings=block_findings, evidence=block_evidence, figures=block_figures, experiments=block_experiments,
              bench=block_bench, toy=block_toy, bf16_shift=block_bf16_shift, scales=block_scales)
MARK = re.compile(r'(<!-- report:([\w-]+) -->\n)(.*?)(<!-- /report:\2 -->)', re.S)


def rewrite(text, blocks):
    """text with the content between each pair of markers replaced -> (new text, names that changed, names seen)."""
    seen, changed = set(), []

    def sub(m):
        if m.group(2) not in blocks:
            return m.group(0)
        seen.add(m.group(2))
        new = blocks[m.group(2)].rstrip('\n') + '\n'
        if m.group(3) != new:
            changed.append(m.group(2))
        return m.group(1) + new + m.group(4)
    return MARK.sub(sub, text), changed, seen


# ----------------------------------------------------------------------------- main
def main(cfg):
    """results.py's work (--summarise, --import, --resummarise) if asked, then the tables of the README,
    of the docs/*.md beside it and each result folder's README.md: rewritten, or with --check compared.
    Every block must stand in at least one of the marked files. -> exit code."""
    if cfg['summarise'] or cfg['imports'] or cfg['resummarise']:
        results.main(cfg)
    if not os.path.isfile(cfg['readme']):
        raise ValueError(f"report error: no {cfg['readme']}")
    root = os.path.dirname(os.path.abspath(cfg['readme']))
    paths, read = [cfg['readme'], *sorted(glob.glob(os.path.join(root, 'docs', '*.md')))], read_assets(cfg['assets'])
    seen, changed, new_texts = set(), [], {}
    for path in paths:
        with open(path) as f:
            text = f.read()
        state = load_state(cfg['assets'], path, root, read)           # paths relative to this file
        new, names, found = rewrite(text, {name: render(state) for name, render in RENDER.items()})
        seen |= found
        changed += [f"{os.path.relpath(path)}: {n}" for n in names]
        if new != text:
            new_texts[path] = new
    for s in read['results'].values():                                # each result folder's README.md, whole
        path, text = os.path.join(s['_path'], 'README.md'), result_readme(s)
        if not os.path.isfile(path) or open(path).read() != text:
            changed.append(os.path.relpath(path))
            new_texts[path] = text
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
