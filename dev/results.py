"""
Experiment outputs -> assets/ (where config/experiments.py says: assets/<exp>/, assets/laptop/<exp>/ at
laptop scale): summary.json (provenance, every run's knobs and final numbers, correlations, selection;
<= max_summary_kb), analysis.json.gz (analyze.py's records, rounded: what merging shards and summarising
again need) and figures/. assets/bench/ holds bench.py's JSONs, tests_gpu.txt and their summary.

    python -m dev.results --import=out/gpu/sweep_celeb-1of2.tgz     # archives of dev/run_queue.py -> assets/
    python -m dev.results --summarise=out/sweep_celeb --exp=sweep_celeb --shard=0/2 --provenance=prov.json
    python -m dev.results --resummarise=assets/sweep_celeb   # analyze.summarise and this file's rules, again
    python -m dev.results --resummarise=assets/laptop/steps_10x --regrow=3   # seeds added: its run is shard 0 of 3

Results are *stale* when made on another data version (data_gen.VERSION) or from a config whose values
changed since (a knob added later does not count); they stay visible, marked, and never merge with current
ones. Shards merge by concatenating their analysis records and summarising again (analyze.summarise).
"""
import glob
import gzip
import hashlib
import json
import math
import os
import re
import shutil
import sys
import tarfile
import tempfile

import analyze
import checkpoints
import data_gen
import metrics
import plots
import train
from config import experiments
from configurator import cli, config_keys, configure
from machine import select_shard
from records import dig, read_records

# -----------------------------------------------------------------------------
assets = 'assets'           # one folder per experiment
imports = ''                # archives (.tgz of dev/run_queue.py) to unpack into assets/, comma-separated (or --import=...)
summarise = ''              # an analyzed experiment directory (analysis.json, <run>/config.json + log.jsonl, figures/) -> assets/
exp = ''                    # --summarise: the experiment (config/experiments.py), or 'bench' for a folder of bench JSONs
scale = 'paper'             # --summarise: the scale it ran at, paper (config/<exp>.py) or laptop (config/laptop/<exp>.py)
resummarise = ''            # a result folder in assets/ (with analysis.json.gz) to summarise again under the current rules
regrow = 0                  # --resummarise: its config file's sweep grew (e.g. more seeds): its runs become the done shards of this many
shard = ''                  # --summarise: 'i/n' when the directory holds one shard of the experiment
provenance = ''             # --summarise: a JSON file with device, torch, commit, date, command, train_s, analyze_s, data_version
force = False               # import even when it would replace current results by stale ones
max_summary_kb = 300        # a summary.json may not be larger
# -----------------------------------------------------------------------------
DEFAULTS = config_keys(globals())
CHOICES = {'scale': experiments.SCALES}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # the repo
# knobs that change where or how fast a run goes, never its results: left out of the config version
# knobs of where and how a run was made, not of what it learns (train.py's FREE_ON_RESUME: overwrite, reuse_dir,
# threads, ...): results differing only in these are the same results
MACHINE_KEYS = {'device', 'dtype', 'out_dir', 'shard', 'data_dir', 'live_unif_facts'} | train.FREE_ON_RESUME
# analysis settings of how it ran, not of what it measures, beside MACHINE_KEYS (its dtype among them): the
# per-example-gradient implementation the machine picks ('auto'), and the settings analyze.py has dropped since
ANALYSIS_HOW = {'grad_impl', 'retired'}
FIGURE_NAMES = ('acc_vs_knobs', 'acc_curves', 'unif_vs_ood', 'selection', 'footprint_early', 'mi_vs_footprint',
                'extract_vs_footprint', 'name_confusion', 'acc_by_n_templates')
MODES = {'eager': 'eager', 'compile': 'torch.compile', 'graph': 'torch.compile + CUDA graph', 'cpu': 'CPU'}  # bench modes, shown in this order
LOCKSTEP_ROW = re.compile(r'lockstep E=\d+')  # bench.py's rows of the training step (not its speed candidates)
SWEEP_FIELDS = ('iters', 'train_wall_s', 'train_s', 'step_s', 'first_step_s', 'eval_s', 'ckpt_s', 'outside_steps_frac',
                'analyze_s', 'n_ckpts', 'ckpts_per_s')   # what the bench summary keeps of bench.py's sweep row


# ----------------------------------------------------------------------------- files
def round_floats(x, digits=5):
    """Floats to `digits` significant digits, recursively (summaries stay small and diffable)."""
    if isinstance(x, float):
        return x if not math.isfinite(x) or x == 0 else float(f'{x:.{digits}g}')
    if isinstance(x, dict):
        return {k: round_floats(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [round_floats(v, digits) for v in x]
    return x


def read_json(path):
    opener = gzip.open if path.endswith('.gz') else open
    try:
        with opener(path, 'rt') as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"results error: cannot read {path}: {e}") from None


def write_json_gz(obj, path):
    data = json.dumps(round_floats(obj), separators=(',', ':')).encode()
    with open(path, 'wb') as f, gzip.GzipFile(fileobj=f, mode='wb', compresslevel=9, mtime=0) as z:   # same bytes each time
        z.write(data)


def dumps(summary):
    """summary.json text: one top-level key per line, lists of dicts one item per line."""
    lines = []
    for k, v in summary.items():
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            body = ',\n'.join('  ' + json.dumps(x, separators=(',', ':')) for x in v)
            lines.append(f' {json.dumps(k)}: [\n{body}\n ]')
        else:
            lines.append(f' {json.dumps(k)}: {json.dumps(v, separators=(",", ":"))}')
    return '{\n' + ',\n'.join(lines) + '\n}\n'


def write_summary(s, out_dir):
    text = dumps(s)
    if len(text) > max_summary_kb * 1000:
        raise ValueError(f"results error: summary.json of {s['exp']} would be {len(text) // 1000} KB > {max_summary_kb} KB")
    with open(os.path.join(out_dir, 'summary.json'), 'w') as f:
        f.write(text)


# ----------------------------------------------------------------------------- versions and staleness
def exp_config(name, args=(), scale='paper'):
    """The resolved config of an experiment at a scale (+ args) without the machine-only knobs."""
    path = experiments.config_path(name, scale)
    if not os.path.isfile(path):
        raise ValueError(f"results error: no {os.path.relpath(path, ROOT)}")
    cfg = configure(train.DEFAULTS, [path, *args])
    return json.loads(json.dumps({k: v for k, v in cfg.items() if k not in MACHINE_KEYS}, default=str))


def config_hash(cfg):
    return hashlib.sha1(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:12]


def changed_keys(old, cur):
    return sorted(k for k in cur if k in old and old[k] != cur[k])


def stale_reasons(s):
    """Why a summary's results no longer match the current data and config ([] = current)."""
    if s.get('exp') == 'bench':
        return []
    why = []
    if s.get('data_version') != data_gen.VERSION:
        why.append(f"made on data v{s.get('data_version')}, now v{data_gen.VERSION}")
    try:
        cur = exp_config(s['exp'], s.get('config_args', []), s.get('scale', 'paper'))
    except ValueError as e:
        return why + [str(e).replace('results error: ', '')]
    if config_hash(cur) != s.get('config_version'):
        changed = changed_keys(s.get('config', {}), cur)
        if changed:
            why.append('config changed: ' + ', '.join(changed))
    return why


def code_version(files=('model.py', 'train.py', 'bench.py', 'tests/test_gpu.py')):
    """Hash of the files that decide training speed and the GPU tests: a new one re-measures the bench."""
    h = hashlib.sha1()
    for f in files:
        p = os.path.join(ROOT, f)
        h.update(f.encode() + (open(p, 'rb').read() if os.path.isfile(p) else b''))
    return h.hexdigest()[:12]


def workload(cfg, n_runs):
    """What one lockstep group of n_runs costs, in the units of the queue's estimates."""
    its = checkpoints.ckpt_iters(cfg['max_iters'], cfg['n_ckpts'], linear=cfg.get('n_ckpts_linear', 0))
    evals = set(range(0, cfg['max_iters'] + 1, cfg['eval_interval'])) | set(its) | {cfg['max_iters']}
    return dict(E=n_runs, run_steps=n_runs * cfg['max_iters'], n_evals=len(evals), n_ckpts=n_runs * len(its))


# ----------------------------------------------------------------------------- the summary of an experiment
def final_metrics(log_path):
    """The last evaluation in a run's log.jsonl -> (iter, {split: {fact_type: {lang: [acc, prob, n]}}})."""
    evals = [r for r in read_records(log_path) if r.get('split') in data_gen.SPLITS]
    if not evals:
        raise ValueError(f"results error: no evaluation in {log_path}")
    last = max(r['iter'] for r in evals)
    out = {}
    for r in evals:
        if r['iter'] == last:
            out.setdefault(r['split'], {}).setdefault(r['fact_type'], {})[r['lang']] = [r['acc'], r.get('prob'), r.get('n')]
    return last, out


def run_entry(name, recs, settings, logged):
    """What summary.json keeps of one run: the logged final accuracies and probabilities, and from the
    analysis records the final MI, name confusion, unification of every variant (concat layer; the gradient's
    also without the input embeddings), the
    language footprint's course (init, peak after it, final) and a trajectory over checkpoints."""
    fin = next((r for r in recs if r.get('final')), recs[-1] if recs else {})
    rep, layer = settings.get('unif_rep', 'act'), settings.get('unif_layer', 'concat')
    unif = {v: {kind: dig(fin, 'unification', v, kind, layer) for kind in kinds}
            for v, kinds in (fin.get('unification') or {}).items() if isinstance(kinds, dict)}
    for v, kinds in unif.items():                      # change C4: the gradient without the input embeddings beside it
        no_emb = dig(fin, 'unification', v, 'grad', 'no_emb')
        if no_emb is not None:
            kinds['grad_no_emb'] = no_emb
    traj = dict(iter=[r['iter'] for r in recs],
                unification=[dig(r, 'unification', metrics.HEADLINE, rep, layer) for r in recs],
                unification_paper=[dig(r, 'unification', metrics.PAPER_RATIO, rep, layer) for r in recs],
                lang_footprint=[dig(r, 'footprint', 'lang', rep, layer) for r in recs],
                ood=[dig(r, 'acc', 'ood_test', 'all') for r in recs])
    final = {k: v for k, v in logged['final'].items() if k != 'train'}
    final['train'] = {'all': {'all': dig(logged, 'final', 'train', 'all', 'all')}}
    return dict(name=name, knobs=logged.get('knobs') or fin.get('knobs'), iter=logged['iter'], final=round_floats(final, 4),
                mi_lang_attr=fin.get('mi_lang_attr'), mi_token_lang=fin.get('mi_token_lang'),
                unification=round_floats(unif, 4) or None, name_confusion=fin.get('name_confusion'),
                lang_footprint=round_floats(analyze.footprint_course(traj['iter'], traj['lang_footprint']), 4) if recs else None,
                acc_by_n_train_templates=fin.get('acc_by_n_train_templates'), grad_share=fin.get('grad_share'),
                trajectory=round_floats(traj, 4))


def summary_from(analysis, logged, base):
    """summary.json from an analysis (records + analyze.summarise's fields) and the runs' logged
    finals {run: {'iter', 'final', 'knobs'}}; base: exp, versions, shards, provenance."""
    settings = analysis.get('settings', {})
    by_run = {}
    for r in analysis.get('records', []):
        by_run.setdefault(r['run'], []).append(r)
    runs = []
    for name in sorted(logged):
        e = run_entry(name, sorted(by_run.get(name, []), key=lambda r: r['iter']), settings, logged[name])
        e['ckpt_selection'] = dig(analysis, 'ckpt_selection', name)
        runs.append({k: v for k, v in e.items() if v is not None})
    skip = {'records', 'runs', 'settings', 'exp_dir', 'notes', 'varying_knobs', 'ckpt_selection', 'selection_table'}
    extra = {k: v for k, v in analysis.items() if k not in skip and len(json.dumps(v, default=str)) < 20_000}
    present = {r['name'] for r in runs}
    s = dict(base, analysis_settings={k: v for k, v in settings.items() if k not in ('exp_dir', 'device')},
             runs_missing=[n for n in base.get('runs_expected', []) if n not in present], **extra,
             notes=list(analysis.get('notes', []))[:40], runs=runs)
    s.pop('runs_expected', None)
    return round_floats(s)


def logged_finals(exp_dir, analysis):
    """{run: {'iter', 'final', 'knobs'}} from every <run>/log.jsonl of an experiment directory."""
    knobs = {r['run']: r.get('knobs') for r in analysis.get('records', []) if r.get('final')}
    out = {}
    for cfg_path in sorted(glob.glob(os.path.join(exp_dir, '*', 'config.json'))):
        d = os.path.dirname(cfg_path)
        it, fin = final_metrics(os.path.join(d, 'log.jsonl'))
        out[os.path.basename(d)] = dict(iter=it, final=fin, knobs=knobs.get(os.path.basename(d)))
    if not out:
        raise ValueError(f"results error: no runs in {exp_dir} (expected <run>/config.json and log.jsonl)")
    return out


def experiment_base(exp_dir, name, shard_str, prov, args, scale='paper'):
    """The versioned header of an experiment summary: config (each knob as the runs' config.json had it,
    the swept ones from the experiment's config file), data version, shards, expected runs."""
    m = re.fullmatch(r'(\d+)/(\d+)', shard_str or '0/1')
    if not m or int(m[1]) >= int(m[2]):
        raise ValueError(f"results error: shard={shard_str!r} is not 'i/n' with 0 <= i < n")
    i, n = int(m[1]), int(m[2])
    run_cfgs = sorted(glob.glob(os.path.join(exp_dir, '*', 'config.json')))
    run_cfg = json.loads(json.dumps(read_json(run_cfgs[0]), default=str))
    cur = exp_config(name, args, scale)
    swept = set(cur.get('sweep') or {}) | {'sweep'}
    cfg = {k: cur[k] if k in swept else run_cfg[k] for k in cur if k in run_cfg or k == 'sweep'}
    meta = os.path.join(run_cfg['dataset_path'], 'meta.json') if run_cfg.get('dataset_path') else ''
    data_version = read_json(meta).get('version', prov.get('data_version')) if os.path.isfile(meta) else prov.get('data_version')
    if data_version is None:
        raise ValueError("results error: unknown data version (no dataset meta.json, no data_version in the provenance)")
    full = configure(train.DEFAULTS, [experiments.config_path(name, scale), *args])
    prov = {**workload(cfg, len(run_cfgs)), **prov, 'shard': f'{i}/{n}', 'data_version': data_version}
    return dict(exp=name, scale=scale, format=1, data_version=data_version, config_version=config_hash(cfg), config=cfg,
                config_args=list(args), shards=dict(n=n, done=[i]), provenance=[prov],
                runs_expected=[r for r, _ in train.expand_sweep(full)])


# ----------------------------------------------------------------------------- figures
def pick_figures(fig_dir, runs, out_dir):
    """Copy the cross-run figures and the similarity figures of the lowest- and highest-OOD runs
    that have them into out_dir/figures -> {'files': [...], 'sim': {'low'/'high': {run, ood, act, grad}}}."""
    os.makedirs(os.path.join(out_dir, 'figures'), exist_ok=True)
    files = []

    def copy(name):                                                    # plots.save keeps each within plots.MAX_BYTES
        if os.path.isfile(os.path.join(fig_dir, name)):
            shutil.copyfile(os.path.join(fig_dir, name), os.path.join(out_dir, 'figures', name))
            files.append(name)
            return True
    for name in FIGURE_NAMES:
        copy(f'{name}.png')
    ood = {r['name']: (dig(r, 'final', 'ood_test', 'all', 'all') or [None])[0] for r in runs}
    have = sorted((o, n) for n, o in ood.items() if o is not None and os.path.isfile(os.path.join(fig_dir, f'sim_act_{n}.png')))
    sim = {}
    for tag, (o, n) in (('low', have[0]), ('high', have[-1])) if have else ():
        sim[tag] = dict(run=n, ood=o)
        for kind in ('act', 'grad'):
            if copy(f'sim_{kind}_{n}.png'):
                sim[tag][kind] = f'sim_{kind}_{n}.png'
    return dict(files=sorted(set(files)), sim=sim)


def bench_figure(modes, path):
    """Run-steps/s of the plain loop and the lockstep rows, one bar per mode."""
    plt = plots.pyplot()
    order = [m for m in MODES if m in modes]
    rows = [r for r in dict.fromkeys(r for m in order for r in modes[m]['rows'])
            if r == 'plain loop' or LOCKSTEP_ROW.fullmatch(r)]
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    for j, m in enumerate(order):
        ax.bar([i + 0.27 * j for i in range(len(rows))], [dig(modes[m], 'rows', r, 'value') or 0 for r in rows], 0.27,
               label=MODES[m])
    ax.set_xticks([i + 0.27 * (len(order) - 1) / 2 for i in range(len(rows))], rows, fontsize=8)
    ax.set_ylabel('run-steps / s'), ax.legend(fontsize=7)
    name = next((modes[m]['device_name'] for m in order if modes[m].get('device_name')), '')
    ax.set_title(f'training throughput on {name}: a plain loop vs E runs in lockstep', fontsize=9)
    plots.save(fig, path)


# ----------------------------------------------------------------------------- staging (on the machine that ran it)
def stage_experiment(exp_dir, name, shard_str, prov, args, out_dir, scale='paper'):
    """An analyzed experiment directory -> out_dir/{summary.json, analysis.json.gz, figures/}."""
    apath = os.path.join(exp_dir, 'analysis.json')
    if not os.path.isfile(apath):
        raise ValueError(f"results error: no {apath}; run analyze.py {exp_dir} first")
    analysis = read_json(apath)
    base = experiment_base(exp_dir, name, shard_str, prov, args, scale)
    os.makedirs(out_dir, exist_ok=True)
    return write_stage(analysis, logged_finals(exp_dir, analysis), base, os.path.join(exp_dir, 'figures'), out_dir)


def write_stage(analysis, logged, base, fig_dir, out_dir):
    """out_dir/{summary.json, analysis.json.gz (without the selection table), figures/} -> the summary."""
    s = summary_from(analysis, logged, base)
    s['figures'] = pick_figures(fig_dir, s['runs'], out_dir)
    write_json_gz({k: v for k, v in analysis.items() if k != 'selection_table'}, os.path.join(out_dir, 'analysis.json.gz'))
    write_summary(s, out_dir)
    return s


def bench_mode(b):
    """The mode a bench JSON measured: eager / compile / graph on cuda, 'cpu' elsewhere."""
    c = b.get('config', {})
    return ('cpu' if not str(b.get('device', '')).startswith('cuda') else 'graph' if c.get('cuda_graph')
            else 'eager' if c.get('compile') is False else 'compile')


def bench_modes(files):
    """Bench JSONs -> {mode: {'rows': {row: {value, E, unit, peak_mem_gb, + the sweep row's fields}},
    'file', 'device_name', 'torch'}}."""
    out = {}
    for path in files:
        b = read_json(path)
        mode = bench_mode(b)
        rows = {r['row']: dict(value=r.get('run_steps_per_s', r.get('items_per_s')), E=r.get('E'),
                               unit='run-steps/s' if 'run_steps_per_s' in r else 'examples/s',
                               peak_mem_gb=r.get('peak_mem_gb'), **{k: r[k] for k in SWEEP_FIELDS if k in r})
                for r in b.get('rows', [])}
        out[mode] = dict(rows=rows, file=os.path.basename(path), device_name=b.get('device_name'), torch=b.get('torch'))
    return out


def stage_bench(src_dir, prov, out_dir):
    """A folder of bench JSONs (+ tests_gpu.txt) -> out_dir/{summary.json, bench_*.json, tests_gpu.txt, figures/bench.png}."""
    files = sorted(p for p in glob.glob(os.path.join(src_dir, 'bench*.json')) if 'cpu' not in os.path.basename(p))
    if not files:
        raise ValueError(f"results error: no bench*.json in {src_dir}")
    os.makedirs(os.path.join(out_dir, 'figures'), exist_ok=True)
    for p in files + glob.glob(os.path.join(src_dir, 'tests_gpu.txt')):
        shutil.copyfile(p, os.path.join(out_dir, os.path.basename(p)))
    modes = bench_modes([os.path.join(out_dir, os.path.basename(p)) for p in files])
    s = dict(exp='bench', format=1, code=prov.get('code'), provenance=[prov], modes=modes)
    bench_figure(modes, os.path.join(out_dir, 'figures', 'bench.png'))
    s['figures'] = dict(files=['bench.png'], sim={})
    write_summary(round_floats(s), out_dir)
    return s


# ----------------------------------------------------------------------------- merging shards, importing
def compatible(old, new):
    """Two results of one experiment may merge: same scale, data version, shard count and analysis
    settings, and no knob whose value differs."""
    return (old.get('exp') == new.get('exp') and old.get('scale', 'paper') == new.get('scale', 'paper')
            and old.get('data_version') == new.get('data_version')
            and dig(old, 'shards', 'n') == dig(new, 'shards', 'n')
            and not changed_keys(old.get('config', {}), new.get('config', {}))
            and machine_free(old.get('analysis_settings')) == machine_free(new.get('analysis_settings')))


def machine_free(settings):
    """Analysis settings without those of how it ran (MACHINE_KEYS, ANALYSIS_HOW): results that differ only
    in these merge, as runs trained in another dtype do."""
    return {k: v for k, v in (settings or {}).items() if k not in MACHINE_KEYS | ANALYSIS_HOW}


def merged_settings(old, new):
    """The settings of two merged analyses: the new one's, with each setting of how they ran that differs listed
    as both values ('bfloat16 / float32', 'not recorded' where an older analysis lacks it; each shard's machine is
    in its provenance), and the settings retired from either."""
    out = dict(new)
    for k in (MACHINE_KEYS | ANALYSIS_HOW) - {'retired'}:
        values = {v for s in (old, new) for v in str(s.get(k, 'not recorded')).split(' / ')}
        if (k in old or k in new) and len(values) > 1:
            out[k] = ' / '.join(sorted(values))
    retired = dict(old.get('retired') or {}, **(new.get('retired') or {}))
    return dict(out, **({'retired': retired} if retired else {}))


def merge_analyses(old_a, new_a, new_runs):
    """Records and runs of two analyses (the new one wins for its runs), in analyze.py's order,
    summarised again by analyze.summarise -> the merged analysis dict."""
    records = [r for r in old_a['records'] if r['run'] not in new_runs] + new_a['records']
    records.sort(key=lambda r: (r['run'], r['iter']))              # analyze.py: runs by name, checkpoints by iter
    lacking = sorted({r['run'] for r in records if r.get('final') and 'ood_correct' not in r})
    if lacking:
        raise ValueError(f"results error: cannot merge: the final record of {lacking[0]} has no 'ood_correct' "
                         "(analysed by an older analyze.py); rerun that shard, or --force=True to replace")
    runs = sorted([r for r in old_a.get('runs', []) if r['name'] not in new_runs] + new_a.get('runs', []),
                  key=lambda r: r['name'])
    notes = old_a.get('notes', []) + new_a.get('notes', [])
    fields = analyze.summarise(records, current_settings(new_a['settings']), notes)
    return dict(new_a, **fields, records=records, runs=runs, notes=list(dict.fromkeys(notes)),
                settings=merged_settings(old_a['settings'], new_a['settings']))


def current_settings(settings):
    """An analysis's settings for summarising it again: the knobs analyze.py still has (a value it
    no longer accepts -> its default), and any knob the summary reads that it lacks, at its default."""
    cur = {k: v if v in analyze.CHOICES.get(k, (v,)) else analyze.DEFAULTS[k] for k, v in settings.items()
           if k in analyze.DEFAULTS}
    return dict({k: analyze.DEFAULTS[k] for k in analyze.SUMMARY_KEYS}, **cur)


def restage(analysis, summaries, fig_dirs, out_dir):
    """An analysis summarised again (merged shards, or new rules) -> out_dir, as write_stage does:
    the cross-run figures redrawn from it, the similarity figures of fig_dirs kept. summaries: the
    staged summaries it comes from (the last is the newest), for the logged finals and provenance."""
    with tempfile.TemporaryDirectory(prefix='results_restage_', ignore_cleanup_errors=True) as work:
        with open(os.path.join(work, 'analysis.json'), 'w') as f:
            json.dump(analysis, f)
        try:
            plots.plot(work)                                           # no similarity.npz: cross-run figures only
        except Exception as e:                                         # figures are not worth losing the summary over
            analysis['notes'].append(f"figures not redrawn ({type(e).__name__}: {e}); the newest ones shown")
            shutil.copytree(fig_dirs[-1], os.path.join(work, 'figures'), dirs_exist_ok=True)
        for d in fig_dirs:                                             # the similarity figures of each
            for p in glob.glob(os.path.join(d, 'sim_*.png')):
                shutil.copyfile(p, os.path.join(work, 'figures', os.path.basename(p)))
        old_s, new_s = summaries[0], summaries[-1]
        runs = {r['name']: r for s in summaries for r in s['runs']}
        logged = {n: dict(iter=r['iter'], final=r['final'], knobs=r.get('knobs')) for n, r in runs.items()}
        new_shards = {p['shard'] for p in new_s['provenance']}
        base = {k: new_s[k] for k in ('exp', 'format', 'data_version', 'config_version', 'config', 'config_args')}
        base.update(scale=new_s.get('scale', 'paper'),                # results from before scales are paper scale
                    shards=dict(n=new_s['shards']['n'], done=sorted(set(old_s['shards']['done']) | set(new_s['shards']['done']))),
                    provenance=old_s['provenance'] if old_s is new_s else
                    [p for p in old_s['provenance'] if p['shard'] not in new_shards] + new_s['provenance'],
                    runs_expected=sorted(set(logged) | set(new_s.get('runs_missing', [])) & set(old_s.get('runs_missing', []))))
        os.makedirs(out_dir, exist_ok=True)
        return write_stage(analysis, logged, base, os.path.join(work, 'figures'), out_dir)


def merge_stages(old_dir, new_dir, out_dir):
    """Two staged results of one experiment (other shards) -> one in out_dir: the records are
    concatenated and summarised again, the cross-run figures redrawn from the merged analysis."""
    old_s, new_s = read_json(os.path.join(old_dir, 'summary.json')), read_json(os.path.join(new_dir, 'summary.json'))
    merged = merge_analyses(read_json(os.path.join(old_dir, 'analysis.json.gz')),
                            read_json(os.path.join(new_dir, 'analysis.json.gz')), {r['name'] for r in new_s['runs']})
    return restage(merged, [old_s, new_s], [os.path.join(d, 'figures') for d in (old_dir, new_dir)], out_dir)


def regrown(s, n):
    """A summary whose config differs from its config file's only in a sweep that grew (seeds or values
    added) -> (the same summary in the grown sweep's terms: that config, its runs expected and as done the
    shards of n (machine.select_shard) whose runs it holds; {old run name: its name in the grown sweep}).
    Its runs stay current: each one's knobs, data and schedule are those the grown sweep gives it."""
    why = stale_reasons(s)
    if why != ['config changed: sweep']:
        raise ValueError(f"results error: --regrow needs results whose only change is a grown sweep; {s['exp']}: "
                         + ('; '.join(why) or 'current'))
    scale = s.get('scale', 'paper')
    full = configure(train.DEFAULTS, [experiments.config_path(s['exp'], scale), *s.get('config_args', [])])
    expected = dict(train.expand_sweep(full))                          # {name: run config}, in training order
    renames = {}
    for r in s['runs']:                                                # the grown sweep's run with this one's values
        values = {k: (r.get('knobs') or {}).get(k, s['config'].get(k)) for k in full['sweep']}
        match = [name for name, rc in expected.items() if all(rc[k] == v for k, v in values.items())]
        if not match:
            raise ValueError(f"results error: --regrow: run {r['name']} of {s['exp']} is not in its grown sweep")
        renames[r['name']] = match[0]
    names = list(expected)
    done = [i for i in range(min(n, len(names)))
            if {name for name, _ in select_shard(list(expected.items()), f'{i}/{n}')[0]} <= set(renames.values())]
    if not done:
        raise ValueError(f"results error: --regrow={n}: no shard of {n} is made of {s['exp']}'s runs alone")
    cfg = dict(s['config'], sweep=exp_config(s['exp'], s.get('config_args', []), scale)['sweep'])
    prov = [dict(p, shard=','.join(f'{i}/{n}' for i in done)) for p in s['provenance']]
    runs = [dict(r, name=renames[r['name']]) for r in s['runs']]
    return dict(s, config=cfg, config_version=config_hash(cfg), shards=dict(n=n, done=done), provenance=prov, runs=runs,
                runs_missing=[name for name in names if name not in renames.values()]), renames


def renamed(a, fig_dir, renames, work):
    """An analysis and its similarity figures with runs renamed ({old: new}) -> (analysis, figure folder in work)."""
    a = dict(a, records=[dict(r, run=renames.get(r['run'], r['run'])) for r in a['records']],
             runs=[dict(r, name=renames.get(r['name'], r['name'])) for r in a.get('runs', [])])
    out = os.path.join(work, 'figures_renamed')
    shutil.copytree(fig_dir, out)
    for old, new in renames.items():
        for p in glob.glob(os.path.join(out, f'sim_*_{old}.png')):
            os.replace(p, p[:-len(old) - 4] + new + '.png')
    return a, out


def resummarise_dir(result_dir, regrow=0):
    """A result in assets/ summarised again in place under the current rules (analyze.summarise and
    this file's summary): a measure its records lack (e.g. a unification variant added since) stays
    missing. Stale results stay stale; with regrow=n, results whose sweep grew are re-expressed as the
    done shards of n of the grown one (`regrown`), for the other shards to merge into. -> one line."""
    s = read_json(os.path.join(result_dir, 'summary.json'))
    a = read_json(os.path.join(result_dir, 'analysis.json.gz'))
    fig_dir = os.path.join(result_dir, 'figures')
    with tempfile.TemporaryDirectory(prefix='results_resummarise_', ignore_cleanup_errors=True) as work:
        if regrow:
            s, renames = regrown(s, regrow)
            a, fig_dir = renamed(a, fig_dir, renames, work)
        notes = list(a.get('notes', []))
        settings = current_settings(a['settings'])
        new = analyze.summarise(a['records'], settings, notes)
        # the settings it is summarised with; those of the analysis that are no knobs any more (renamed or
        # dropped since) are kept apart under 'retired': they still say how the analysis was made
        retired = dict(a['settings'].get('retired', {}), **{k: v for k, v in a['settings'].items()
                                                             if k not in analyze.DEFAULTS and k != 'retired'})
        a = dict(a, **new, settings=dict(settings, **({'retired': retired} if retired else {})),
                 notes=list(dict.fromkeys(notes)))
        new = restage(a, [s], [fig_dir], os.path.join(work, 'out'))
        replace_dir(os.path.join(work, 'out'), result_dir, keep=('stale',))
    return f"{s['exp']}: summarised again -> {result_dir}" + (f" (stale: {'; '.join(stale_reasons(new))})"
                                                                if stale_reasons(new) else '')


def replace_dir(src, dest, keep=()):
    """dest becomes a copy of src; files and folders of dest matching a `keep` pattern stay."""
    with tempfile.TemporaryDirectory(prefix='results_keep_', ignore_cleanup_errors=True) as aside:
        kept = [os.path.basename(p) for pat in keep for p in glob.glob(os.path.join(dest, pat))]
        for name in kept:
            shutil.move(os.path.join(dest, name), os.path.join(aside, name))
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(src, dest, copy_function=shutil.copyfile)
        for name in kept:
            shutil.rmtree(os.path.join(dest, name), ignore_errors=True)
            shutil.move(os.path.join(aside, name), os.path.join(dest, name))
    for d, _, _ in os.walk(dest):
        os.chmod(d, 0o755)                                             # not the 0700 of a temporary folder


def keep_beside(dest, old, new, aside):
    """The result that stays beside new partial results in stale/: stale results they replace (e.g. a
    sweep made on an older dataset, while a CPU trains one seed of it anew), or the stale/ already there,
    copied to `aside`, until the current results hold every run. -> aside, or None."""
    if stale_reasons(new) or not new.get('runs_missing'):
        return None
    if old is not None and stale_reasons(old):
        shutil.copytree(dest, aside, ignore=lambda d, names: ['stale'] if d == dest else [])
    elif os.path.isdir(os.path.join(dest, 'stale')):
        shutil.copytree(os.path.join(dest, 'stale'), aside)
    else:
        return None
    return aside


def import_stage(stage, assets_dir, force=False):
    """Staged results (a folder with summary.json) -> the experiment's folder in assets/ at its scale:
    replaces stale or absent results, merges another shard into current ones. -> one line."""
    new = read_json(os.path.join(stage, 'summary.json'))
    name = new.get('exp')
    if not name or not re.fullmatch(r'[A-Za-z0-9_.-]+', name):
        raise ValueError(f"results error: {stage}/summary.json names no valid experiment")
    if name == 'bench':
        dest = os.path.join(assets_dir, name)
        replace_dir(stage, dest, keep=('bench_cpu*',))
        return f"bench: {', '.join(sorted(new.get('modes', {})))} -> {dest}"
    dest = experiments.assets_dir(name, new.get('scale', 'paper'), assets_dir)
    old = read_json(os.path.join(dest, 'summary.json')) if os.path.isfile(os.path.join(dest, 'summary.json')) else None
    old_stale, new_stale = (stale_reasons(old) if old else []), stale_reasons(new)
    done = lambda s: f"shards {','.join(map(str, s['shards']['done']))} of {s['shards']['n']}"
    covers = old is not None and set(old['shards']['done']) <= set(new['shards']['done'])   # e.g. a shard run again
    with tempfile.TemporaryDirectory(prefix='results_import_', ignore_cleanup_errors=True) as work:
        if old is None or force or (old_stale and not new_stale) or (covers and compatible(old, new)):
            beside = keep_beside(dest, old, new, os.path.join(work, 'stale'))
            replace_dir(stage, dest)
            msg = f"{name}: {done(new)} -> {dest}" + (f" (stale: {'; '.join(new_stale)})" if new_stale else '')
        elif compatible(old, new):
            new = merge_stages(dest, stage, os.path.join(work, name))
            beside = keep_beside(dest, old, new, os.path.join(work, 'stale'))
            replace_dir(os.path.join(work, name), dest)
            msg = f"{name}: merged, {done(new)} -> {dest}"
        else:
            beside = msg = None
        if beside:
            shutil.copytree(beside, os.path.join(dest, 'stale'), copy_function=shutil.copyfile)
            msg += f" (beside it in stale/: the results it replaced, until every run is in)"
    if msg:
        return msg
    if new_stale:
        raise ValueError(f"results error: {name} results to import are stale ({'; '.join(new_stale)}) and "
                         f"{dest} holds others; --force=True replaces them")
    raise ValueError(f"results error: {name} results to import do not merge with {dest} (other shard count, knobs or "
                     "analysis settings); --force=True replaces them")


def import_archive(path, assets_dir, force=False):
    """An archive of dev/run_queue.py (.tgz holding summary.json, ...) -> assets/<exp>/."""
    if not os.path.isfile(path):
        raise ValueError(f"results error: no archive {path}")
    with tempfile.TemporaryDirectory(prefix='results_unpack_', ignore_cleanup_errors=True) as work:
        try:
            with tarfile.open(path) as tar:
                bad = [m.name for m in tar.getmembers() if m.name.startswith(('/', '..')) or '/../' in m.name]
                if bad:
                    raise ValueError(f"results error: {path} holds an unsafe path {bad[0]}")
                tar.extractall(work, **({'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}))
        except tarfile.TarError as e:
            raise ValueError(f"results error: {path} is not a readable archive: {e}") from None
        if not os.path.isfile(os.path.join(work, 'summary.json')):
            raise ValueError(f"results error: {path} holds no summary.json")
        return import_stage(work, assets_dir, force)


def summarise_dir(src, name, shard_str, prov_path, assets_dir, force=False, scale='paper'):
    """--summarise: an experiment directory (or a folder of bench JSONs) -> assets/."""
    prov = read_json(prov_path) if prov_path else {}
    with tempfile.TemporaryDirectory(prefix='results_stage_', ignore_cleanup_errors=True) as work:
        if name == 'bench':
            stage_bench(src, prov, work)
        else:
            stage_experiment(src, name, shard_str, prov, [], work, scale)
        return import_stage(work, assets_dir, force)


# ----------------------------------------------------------------------------- main
def parse_args(argv, defaults=DEFAULTS, sources=(__file__,)):
    """configure() plus repeated `--import=archive` and bare archive paths."""
    rest, archives = [], []
    for a in argv:
        if a.startswith('--import='):
            archives.append(a.split('=', 1)[1])
        elif not a.startswith('--') and a.endswith(('.tgz', '.tar.gz')):
            archives.append(a)
        else:
            rest.append(a)
    cfg = configure(defaults, rest, choices=CHOICES, sources=list(sources))
    cfg['imports'] = ','.join(a for a in [cfg['imports'], *archives] if a)
    return cfg


def main(cfg):
    """--summarise, then every archive of --import, into assets/, then --resummarise; prints one line for each."""
    if cfg['regrow'] and not cfg['resummarise']:
        raise ValueError("results error: --regrow=n goes with --resummarise=<assets folder>")
    if not cfg['summarise'] and not cfg['imports'] and not cfg['resummarise']:
        raise ValueError("results error: nothing to do: give --import=<archive>, --summarise=<dir> --exp=<name> "
                         "or --resummarise=<assets folder>")
    globals().update(max_summary_kb=cfg['max_summary_kb'])
    if cfg['summarise']:
        if not cfg['exp']:
            raise ValueError("results error: --summarise needs --exp=<experiment> (or bench)")
        print(summarise_dir(cfg['summarise'], cfg['exp'], cfg['shard'], cfg['provenance'], cfg['assets'], cfg['force'],
                            cfg['scale']))
    for path in filter(None, cfg['imports'].split(',')):
        print(import_archive(path, cfg['assets'], cfg['force']))
    if cfg['resummarise']:
        print(resummarise_dir(cfg['resummarise'], cfg['regrow']))


if __name__ == '__main__':
    cli(lambda: main(parse_args(sys.argv[1:])))
