"""
The README's and docs/'s result tables and the verdict on each finding, written from assets/
(dev/results.py puts results there, config/experiments.py says where). A generated table sits
between `<!-- report:NAME -->` and `<!-- /report:NAME -->` in README.md or any docs/*.md (a block
may stand in several); nothing else of those files is touched.

Each finding is judged at each scale, laptop and paper, by dev/verdicts.py (the rules of
docs/verdicts.md, written down before the runs).

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
import statistics
import sys

import metrics
from config import experiments
from configurator import cli, config_keys
from data_gen import FACT_TYPES
from dev import results
from dev.results import read_json
from dev.verdicts import FINDINGS, acc, design, machine_of, n_runs, num, scale_line, scored_runs, stale_word
from records import dig

# -----------------------------------------------------------------------------
readme = 'README.md'        # the README whose marked tables are rewritten, and those of the docs/*.md beside it
check = False               # only compare: exit 1 when a table differs from what assets/ gives
# -----------------------------------------------------------------------------
DEFAULTS = dict(results.DEFAULTS, **config_keys(globals()))
SCALES = ('laptop', 'paper')  # the two status columns, in this order
STANDIN = 'llm_gemma3'        # assets/<this>/: llm_eval.py's CPU run of a small real LLM on the CLDR facts (docs/llm.md)


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
    # the CPU same-science runs: each folder read once, then combined as each table needs
    sets = {n: folder_runs(assets_dir, n) for n in (SAME_SCIENCE, REPLICATION, VARIANT, MLP_PROBE, COMPILE_PROBE)}
    return dict(results=found, bench=opt('bench', 'summary.json'), toy=opt('toy', 'results.json'),
                vocab=opt('llm_eval', 'vocab_overlap.json'), llm=opt('llm_eval', 'results.json'),
                standin=opt(STANDIN, 'results.json'), standin_prov=opt(STANDIN, 'provenance.json'),
                same_science=(paired(sets[SAME_SCIENCE][0]), sets[SAME_SCIENCE][1]),
                same_science_replication=(paired(sets[REPLICATION][0]), sets[REPLICATION][1]),
                same_science_variant=merge_runs(sets[REPLICATION], sets[VARIANT]),
                same_science_mlp=merge_runs(sets[SAME_SCIENCE], sets[REPLICATION], sets[MLP_PROBE]),
                same_science_compile=merge_runs(sets[REPLICATION], sets[COMPILE_PROBE]),
                assets=assets_dir, rel=rel, verdicts=rel(os.path.join(root or base, 'docs', 'verdicts.md')))


def table(head, rows):
    """A markdown table as lines: the header, then one line per row of cells."""
    return ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)] + ['| ' + ' | '.join(map(str, r)) + ' |' for r in rows]


def with_results(state):
    """[(name, scale, summary)] of every result, the registry's order, laptop before paper."""
    return [(n, sc, state['results'][(n, sc)]) for n in experiments.EXPERIMENTS for sc in SCALES
            if (n, sc) in state['results']]


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


SAME_SCIENCE = 'same_science'  # assets/bench/<this>/: float32 eager against the CPU pick, <float32|pick>_cf<celeb_frac>_seed<N>.jsonl
REPLICATION = 'same_science_replication'  # assets/bench/<this>/: the same, fresh seeds fixed before their runs (docs/speed.md)
VARIANT = 'same_science_attn32'  # assets/bench/<this>/: attention in float32, attn32_cf<celeb_frac>_seed<N>.jsonl (docs/speed.md)
MLP_PROBE = 'same_science_mlp32'  # assets/bench/<this>/: the MLP in float32, mlp32_cf<celeb_frac>_seed<N>.jsonl (docs/speed.md)
COMPILE_PROBE = 'same_science_f32c'  # assets/bench/<this>/: float32 with torch.compile, f32c_cf<celeb_frac>_seed<N>.jsonl
SAME_TOL = 0.02                # the rule (docs/speed.md): seed means of final ID and OOD accuracy within this of float32's


def folder_runs(assets_dir, name):
    """{celeb_frac: {seed: {setting: (id, ood)}}} of every <setting>_cf<celeb_frac>_seed<N>.jsonl in
    assets/bench/<name>/, and its provenance entries."""
    folder = os.path.join(assets_dir, 'bench', name)
    runs = {}
    for path in sorted(glob.glob(os.path.join(folder, '*.jsonl'))):
        m = re.fullmatch(r'([a-z0-9]+)_cf([\d.]+)_seed(\d+)\.jsonl', os.path.basename(path))
        if m:
            run = dict(final=results.final_metrics(path)[1])
            runs.setdefault(float(m[2]), {}).setdefault(int(m[3]), {})[m[1]] = (acc(run, 'id_test'), acc(run, 'ood_test'))
    prov = os.path.join(folder, 'provenance.json')
    return runs, (read_json(prov) if os.path.isfile(prov) else [])


def merge_runs(*sets):
    """Several (runs, provenance) sets as one: a seed's settings from every set, provenance concatenated."""
    runs = {}
    for r, _ in sets:
        for cf, seeds in r.items():
            for seed, settings in seeds.items():
                runs.setdefault(cf, {}).setdefault(seed, {}).update(settings)
    return ({cf: dict(sorted(s.items())) for cf, s in sorted(runs.items())}, [p for _, prov in sets for p in prov])


def setting_runs(assets_dir, *names):
    """folder_runs of several folders of assets/bench/, merged."""
    return merge_runs(*(folder_runs(assets_dir, n) for n in names))


def paired(runs, ref='float32', new='pick'):
    """The seeds run both ways, as {celeb_frac: {seed: {'float32': ref's (id, ood), 'pick': new's}}}:
    the tables below name the two sides float32 and pick unless told otherwise."""
    both = {cf: {seed: {'float32': r[ref], 'pick': r[new]} for seed, r in sorted(seeds.items()) if ref in r and new in r}
            for cf, seeds in sorted(runs.items())}
    return {cf: s for cf, s in both.items() if s}


def same_science(assets_dir, name=SAME_SCIENCE):
    """{celeb_frac: {seed: {'float32': (id, ood), 'pick': (id, ood)}}} of the seeds run both ways, and the
    provenance entries, from assets/bench/<name>/."""
    runs, prov = folder_runs(assets_dir, name)
    return paired(runs), prov


def sd(xs):
    """Sample standard deviation (0 for one value)."""
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


def same_science_table(runs, prov, folder, rule='Seed means', names=('float32', 'pick')):
    """Seed means of the pick against float32 at each celeb_frac, how far apart they lie, and the rule
    (rule: how the rule's line begins; names: what the two sides are called)."""
    a, b = names
    rows, means = [], {}
    for cf, seeds in runs.items():
        col = lambda mode, k: [r[mode][k] for r in seeds.values()]
        means[cf] = {mode: [statistics.fmean(col(mode, k)) for k in (0, 1)] for mode in ('float32', 'pick')}
        diffs = [p - f for p, f in zip(col('pick', 1), col('float32', 1))]        # OOD, run by run
        apart = [abs(x) for x in diffs]
        rows.append([f'celeb_frac {cf:g}, {len(seeds)} seeds',
                     ' / '.join(num(means[cf][m][0]) for m in ('float32', 'pick')),
                     ' / '.join(num(means[cf][m][1]) for m in ('float32', 'pick')),
                     f"{statistics.fmean(diffs):+.3f} ± {sd(diffs) / len(diffs) ** 0.5:.3f}",
                     f"{sd(col('float32', 1)):.3f}", f'{min(apart):.3f}-{max(apart):.3f}'])
    out = table(['runs', f'ID {a} / {b}', f'OOD {a} / {b}', f'OOD {b} − {a} (± s.e.)',
                 f"{a}'s seed sd", 'single runs apart'], rows)
    gaps = [abs(m['pick'][k] - m['float32'][k]) for m in means.values() for k in (0, 1)]
    order = lambda mode: sorted(means, key=lambda cf: means[cf][mode][1])
    same_order = ('not judged (one celeb_frac)' if len(means) < 2 else 'yes' if order('float32') == order('pick') else 'no')
    out += ['', f"{rule} within {SAME_TOL}: {'yes' if max(gaps) <= SAME_TOL else 'no'} (largest gap {max(gaps):.3f}); "
            f"OOD order of celeb_frac the same: {same_order}."]
    if prov:
        out += ['', f"{', '.join(dict.fromkeys(p.get('machine') for p in prov))}, torch "
                f"{', '.join(dict.fromkeys(p.get('torch') for p in prov))}, commits "
                f"{', '.join(dict.fromkeys(p.get('commit') for p in prov))} ({folder})."]
    return out


def block_same_science(state):
    """The exploratory set: the pick against float32 at each celeb_frac, and the rule."""
    runs, prov = state['same_science']
    if not runs:
        return 'The same-science comparison has not run yet.'
    return '\n'.join(same_science_table(runs, prov, f'`assets/bench/{SAME_SCIENCE}/`'))


def block_same_science_replication(state):
    """The replication (fresh seeds fixed before their runs): the verdict, then both sets pooled as the
    best estimate of the gap, which does not decide."""
    runs, prov = state['same_science_replication']
    if not runs:
        return 'The replication has not run yet.'
    out = ['Replication (the verdict):', ''] + same_science_table(runs, prov, f'`assets/bench/{REPLICATION}/`')
    both, _ = merge_runs(state['same_science'], state['same_science_replication'])
    out += ['', 'Both sets pooled (an estimate of the gap; it does not decide):', '']
    return '\n'.join(out + same_science_table(both, [], '', rule='Pooled seed means'))


def variant_tables(runs, prov, setting, word, folder, rule='Seed means'):
    """A bfloat16 variant's runs against float32's of the same seeds (whose line is `rule`), then against
    the pick's (which never decides) -> lines."""
    out = [f'The {word} against float32:', '']
    out += same_science_table(paired(runs, 'float32', setting), prov, folder, rule=rule, names=('float32', word))
    out += ['', f'The {word} against the pick on the same seeds:', '']
    return out + same_science_table(paired(runs, 'pick', setting), [], '', rule='Means', names=('pick', word))


def block_same_science_variant(state):
    """The variant (attention in float32) against the replication's float32 runs: the rule's verdict."""
    runs, prov = state['same_science_variant']
    if not paired(runs, 'float32', 'attn32'):
        return 'The variant has not run yet.'
    return '\n'.join(variant_tables(runs, prov, 'attn32', 'variant', f'`assets/bench/{VARIANT}/`'))


def probe_gaps(state_runs, setting, folder):
    """A probe's tables against float32 and the pick, and its mean OOD gap at celeb_frac 0 to each ->
    (lines, gap to the pick, gap to float32), or None before it has run."""
    runs, prov = state_runs
    f32, pick = paired(runs, 'float32', setting).get(0.0), paired(runs, 'pick', setting).get(0.0)
    if not f32 or not pick:
        return None
    out = variant_tables(runs, prov, setting, 'probe', f'`assets/bench/{folder}/`', rule='Seed means (not a verdict)')
    mean_gap = lambda pairs: statistics.fmean(r['pick'][1] - r['float32'][1] for r in pairs.values())
    return out, mean_gap(pick), mean_gap(f32)


def block_same_science_mlp(state):
    """The MLP probe against float32 and the pick, and its reading fixed before the runs (docs/speed.md):
    the MLP carries the shift if the probe's mean OOD lies at least 0.01 below the pick's and within 0.02
    of float32's."""
    probe = probe_gaps(state['same_science_mlp'], 'mlp32', MLP_PROBE)
    if probe is None:
        return 'The probe has not run yet.'
    out, below, near = probe
    carries = below <= -0.01 and abs(near) <= SAME_TOL
    return '\n'.join(out + ['', f"The MLP's bfloat16 carries the shift (the probe at least 0.01 below the pick and "
                                 f"within {SAME_TOL} of float32, OOD at celeb_frac 0): {'yes' if carries else 'no'} "
                                 f"({below:+.3f} against the pick, {near:+.3f} against float32)."])


def block_same_science_compile(state):
    """The torch.compile probe against float32 eager and the pick, and its reading fixed before the runs
    (docs/speed.md): compile carries the shift if the probe lies within 0.01 of the pick and at least 0.01
    above float32 eager; bfloat16 does if within 0.01 of float32 eager and at least 0.01 below the pick."""
    probe = probe_gaps(state['same_science_compile'], 'f32c', COMPILE_PROBE)
    if probe is None:
        return 'The probe has not run yet.'
    out, to_pick, to_f32 = probe
    reading = ('torch.compile carries the shift' if abs(to_pick) <= 0.01 and to_f32 >= 0.01 else
               'bfloat16 carries the shift' if abs(to_f32) <= 0.01 and to_pick <= -0.01 else
               'not told apart by these seeds')
    return '\n'.join(out + ['', f"Reading (fixed before the runs): {reading} ({to_pick:+.3f} against the pick, "
                                 f"{to_f32:+.3f} against float32 eager, OOD at celeb_frac 0)."])


def variant_runs_block(state, key, setting, word):
    """Each seed's final ID and OOD: float32 / pick / <setting>, and the commands of <setting>'s runs."""
    runs, prov = state[key]
    three = ('float32', 'pick', setting)
    rows = [[f'celeb_frac {cf:g}, seed {seed}', ' / '.join(num(r[m][0]) for m in three),
             ' / '.join(num(r[m][1]) for m in three), f"{r[setting][1] - r['float32'][1]:+.3f}"]
            for cf, seeds in sorted(runs.items()) for seed, r in sorted(seeds.items()) if all(m in r for m in three)]
    if not rows:
        return f'The {word} has not run yet.'
    out = table(['run', f'ID float32 / pick / {word}', f'OOD float32 / pick / {word}', f'OOD {word} − float32'], rows)
    for p in prov:
        if p.get('what', '').startswith(word):
            out += ['', f"{p['what']}: {p.get('machine')}, torch {p.get('torch')}, commit {p.get('commit')}, data {p.get('data')}, "
                    f"{p.get('date')}, training {num(p.get('train_s'), ',.0f')} s:", '']
            out += [f'    {c}' for c in p.get('commands', [])]
    return '\n'.join(out)


def block_same_science_runs(state, key='same_science'):
    """Each run's final ID and OOD accuracy, float32 / pick, and the commands that made them."""
    runs, prov = state[key]
    rows = [[f'celeb_frac {cf:g}, seed {seed}', f"{num(r['float32'][0])} / {num(r['pick'][0])}",
             f"{num(r['float32'][1])} / {num(r['pick'][1])}", f"{r['pick'][1] - r['float32'][1]:+.3f}"]
            for cf, seeds in runs.items() for seed, r in seeds.items()]
    if not rows:
        return 'The same-science comparison has not run yet.'
    out = table(['run', 'ID float32 / pick', 'OOD float32 / pick', 'OOD pick − float32'], rows)
    for p in prov:
        out += ['', f"{p.get('what')}: {p.get('machine')}, torch {p.get('torch')}, commit {p.get('commit')}, data {p.get('data')}, {p.get('date')}, "
                f"training {' / '.join(num(dig(p, 'train_s', m), ',.0f') for m in ('float32', 'pick'))} s (float32 / pick)"
                + (f" ({p['note']})" if p.get('note') else '') + ':', '']
        out += [f'    {c}' for c in p.get('commands', [])]
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
              selection=block_selection, bench=block_bench, toy=block_toy,
              same_science=block_same_science, same_science_runs=block_same_science_runs,
              same_science_replication=block_same_science_replication,
              same_science_replication_runs=lambda state: block_same_science_runs(state, 'same_science_replication'),
              same_science_variant=block_same_science_variant,
              same_science_variant_runs=lambda state: variant_runs_block(state, 'same_science_variant', 'attn32', 'variant'),
              same_science_mlp=block_same_science_mlp,
              same_science_mlp_runs=lambda state: variant_runs_block(state, 'same_science_mlp', 'mlp32', 'probe'),
              same_science_compile=block_same_science_compile,
              same_science_compile_runs=lambda state: variant_runs_block(state, 'same_science_compile', 'f32c', 'probe'))
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
