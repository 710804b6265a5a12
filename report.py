"""
Results in the repo, and the README tables made from them. Every experiment that ran on a GPU
lives in assets/<exp>/:
  summary.json       provenance (device, torch, commit, date, commands, timings, data version),
                     every run's knobs and final accuracy/probability by split, fact type and
                     language, the correlations, selection tables, MI and footprints (<= 300 KB)
  analysis.json.gz   analyze.py's records and runs, rounded: what merging shards and redrawing
                     the cross-run figures need
  figures/*.png      the figures the README shows (<= 400 KB each)

    python report.py                                        # rewrite the README's tables from assets/
    python report.py --check                                # exit 1 if README and assets/ disagree (tests run it)
    python report.py --import=out/gpu/sweep_celeb-1of2.tgz  # archives of gpu_queue.py -> assets/, then rewrite
    python report.py --summarise=out/sweep_celeb --exp=sweep_celeb --shard=0/2 --provenance=prov.json

A generated table sits between `<!-- report:NAME -->` and `<!-- /report:NAME -->`; nothing else
of the README is touched. Results are *stale* when they were made on another data version
(data_gen.VERSION, read at run time) or from a config whose values changed since (a knob added
later does not count: by convention a new knob's default keeps the old behaviour). Stale results
stay visible, marked as such, and are never merged with current ones.
Shards of one experiment (train.py --shard=i/n) merge by concatenating their analysis records and
summarising again (analyze.summarise): the same numbers as analysing all runs together.
"""
import glob
import gzip
import hashlib
import itertools
import json
import math
import os
import re
import shutil
import sys
import tarfile
import tempfile

from configurator import configure

# -----------------------------------------------------------------------------
readme = 'README.md'        # the file whose marked tables are rewritten
assets = 'assets'           # one folder per experiment
check = False               # only compare: exit 1 when the README's tables differ from what assets/ gives
imports = ''                # archives (.tgz of gpu_queue.py) to unpack into assets/, comma-separated (or --import=...)
summarise = ''              # an analysed experiment directory (analysis.json, <run>/config.json + log.jsonl, figures/) -> assets/
exp = ''                    # --summarise: the experiment (config/<exp>.py), or 'bench' for a folder of bench JSONs
shard = ''                  # --summarise: 'i/n' when the directory holds one shard of the experiment
provenance = ''             # --summarise: a JSON file with device, torch, commit, date, command, train_s, analyze_s, data_version
force = False               # import even when it would replace current results by stale ones
max_summary_kb = 300        # a summary.json may not be larger
max_figure_kb = 400         # figures are re-encoded / downscaled to fit
early_fracs = [0.01, 0.05]  # finding 3: unification at the first checkpoint past these shares of training
# -----------------------------------------------------------------------------
DEFAULTS = {k: v for k, v in dict(globals()).items() if not k.startswith('_') and k.islower()
            and isinstance(v, (bool, int, float, str, list))}
ROOT = os.path.dirname(os.path.abspath(__file__))
SPLITS = ('train', 'id_test', 'ood_test')
FACT_TYPES = ('birth_year', 'birth_city', 'death_year', 'death_city')
# knobs that change where or how fast a run goes, never its results: left out of the config version
MACHINE_KEYS = {'device', 'dtype', 'compile', 'cuda_graph', 'out_dir', 'resume', 'shard', 'data_dir',
                'wandb_log', 'wandb_project'}
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
FIGURE_NAMES = ('acc_vs_knobs', 'acc_curves', 'unif_vs_ood', 'selection', 'footprint_early', 'mi_vs_footprint',
                'extract_vs_footprint', 'name_confusion', 'acc_by_n_templates')
BLOCKS = ('findings', 'figures', 'experiments', 'runs', 'selection', 'bench', 'toy')


# ----------------------------------------------------------------------------- small helpers
def print_help(path, doc):
    """The usage text and the settings block of a script (`--help`)."""
    with open(path) as f:
        parts = f.read().split('\n# ---')
    print(doc.strip() + '\n\nknobs (--key=value):\n' + (parts[1].split('\n', 1)[1].rstrip() if len(parts) > 2 else ''))


def rnd(x, digits=5):
    """Floats to `digits` significant digits, recursively (summaries stay small and diffable)."""
    if isinstance(x, float):
        return x if not math.isfinite(x) or x == 0 else float(f'{x:.{digits}g}')
    if isinstance(x, dict):
        return {k: rnd(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [rnd(v, digits) for v in x]
    return x


def dig(d, *keys):
    """d[k1][k2]... (an int indexes a list) or None where a level is missing (the schema of
    analysis.json grows)."""
    for k in keys:
        if isinstance(d, list) and isinstance(k, int) and -len(d) <= k < len(d):
            d = d[k]
        elif isinstance(d, dict) and d.get(k) is not None:
            d = d[k]
        else:
            return None
    return d


def read_json(path):
    opener = gzip.open if path.endswith('.gz') else open
    try:
        with opener(path, 'rt') as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"report error: cannot read {path}: {e}") from None


def write_json_gz(obj, path):
    data = json.dumps(rnd(obj), separators=(',', ':')).encode()
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


def pearson(x, y):
    pts = [(a, b) for a, b in zip(x, y) if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)]
    if len(pts) < 3:
        return None
    mx, my = sum(a for a, _ in pts) / len(pts), sum(b for _, b in pts) / len(pts)
    sxy = sum((a - mx) * (b - my) for a, b in pts)
    sx, sy = sum((a - mx) ** 2 for a, _ in pts), sum((b - my) ** 2 for _, b in pts)
    return sxy / math.sqrt(sx * sy) if sx > 0 and sy > 0 else None


def ranks(x):
    """Average ranks (ties share their mean rank)."""
    order = sorted(range(len(x)), key=lambda i: x[i])
    r = [0.0] * len(x)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2
        i = j + 1
    return r


def spearman(x, y):
    pts = [(a, b) for a, b in zip(x, y) if a is not None and b is not None]
    return pearson(ranks([a for a, _ in pts]), ranks([b for _, b in pts])) if len(pts) >= 3 else None


def parse_shard(s):
    """'i/n' -> (i, n); '' -> (0, 1)."""
    if not s:
        return 0, 1
    try:
        i, n = (int(v) for v in s.split('/'))
        assert 0 <= i < n
    except (ValueError, AssertionError):
        raise ValueError(f"report error: shard={s!r} is not 'i/n' with 0 <= i < n") from None
    return i, n


# ----------------------------------------------------------------------------- versions and staleness
def data_version():
    import data_gen
    return data_gen.VERSION


def exp_config(name, args=()):
    """The resolved config of config/<name>.py (+ args) without the machine-only knobs."""
    import train
    path = os.path.join(ROOT, 'config', f'{name}.py')
    if not os.path.isfile(path):
        raise ValueError(f"report error: no config/{name}.py")
    cfg = configure(train.DEFAULTS, [path, *args])
    return json.loads(json.dumps({k: v for k, v in cfg.items() if k not in MACHINE_KEYS}, default=str))


def config_hash(cfg):
    return hashlib.sha1(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:12]


def run_time_config(name, args, run_cfg):
    """The experiment's config as it was when a run was made: the run's own values (its
    config.json holds every knob the code had then) with the swept knobs and `sweep` taken from
    the experiment's config file. Knobs added to the code since are left out."""
    cur = exp_config(name, args)
    swept = set(cur.get('sweep') or {})
    run_cfg = json.loads(json.dumps(run_cfg, default=str))
    return {k: cur[k] if k in swept or k == 'sweep' else run_cfg[k] for k in cur if k in run_cfg or k == 'sweep'}


def changed_keys(old, cur):
    return sorted(k for k in cur if k in old and old[k] != cur[k])


def stale_reasons(s):
    """Why a summary's results no longer match the current data and config ([] = current)."""
    if s.get('exp') == 'bench':
        return []
    why = []
    if s.get('data_version') != data_version():
        why.append(f"made on data v{s.get('data_version')}, now v{data_version()}")
    try:
        cur = exp_config(s['exp'], s.get('config_args', []))
    except ValueError as e:
        return why + [str(e).replace('report error: ', '')]
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


# ----------------------------------------------------------------------------- summaries of an experiment
def final_metrics(log_path):
    """The last evaluation in a run's log.jsonl -> (iter, {split: {fact_type: {lang: [acc, prob, n]}}})."""
    evals = []
    with open(log_path) as f:
        for line in f:
            r = json.loads(line)
            if r.get('split') in SPLITS:
                evals.append(r)
    if not evals:
        raise ValueError(f"report error: no evaluation in {log_path}")
    last = max(r['iter'] for r in evals)
    out = {}
    for r in evals:
        if r['iter'] == last:
            out.setdefault(r['split'], {}).setdefault(r['fact_type'], {})[r['lang']] = [r['acc'], r.get('prob'), r.get('n')]
    return last, out


def headline(rec, st):
    return dig(rec, 'unification', st.get('unif_variant', 'same_fact'), st.get('unif_rep', 'act'),
               st.get('unif_layer', 'concat'))


def footprint(rec, st, what):
    return dig(rec, 'footprint', what, st.get('unif_rep', 'act'), st.get('unif_layer', 'concat'))


def run_entry(name, recs, st, logged):
    """What summary.json keeps of one run: the logged final accuracies and probabilities (ID and
    OOD by fact type and language, train overall), and from the analysis records: final MI, name
    confusion, unification of every baseline (concat layer), a trajectory over checkpoints."""
    fin = next((r for r in recs if r.get('final')), recs[-1] if recs else {})
    layer = st.get('unif_layer', 'concat')
    unif = {v: {kind: dig(fin, 'unification', v, kind, layer) for kind in kinds}
            for v, kinds in (fin.get('unification') or {}).items() if isinstance(kinds, dict)}
    traj = dict(iter=[r['iter'] for r in recs], unification=[headline(r, st) for r in recs],
                lang_footprint=[footprint(r, st, 'lang') for r in recs], ood=[dig(r, 'acc', 'ood_test', 'all') for r in recs])
    final = {k: v for k, v in logged['final'].items() if k != 'train'}
    final['train'] = {'all': {'all': dig(logged, 'final', 'train', 'all', 'all')}}
    return dict(name=name, knobs=logged.get('knobs') or fin.get('knobs'), iter=logged['iter'], final=rnd(final, 4),
                mi_lang_attr=fin.get('mi_lang_attr'), mi_token_lang=fin.get('mi_token_lang'),
                unification=rnd(unif, 4) or None, name_confusion=fin.get('name_confusion'),
                acc_by_n_train_templates=fin.get('acc_by_n_train_templates'), trajectory=rnd(traj, 4))


def summary_from(analysis, logged, base):
    """summary.json from an analysis (records + analyze.summarise's fields) and the runs' logged
    finals {run: {'iter', 'final', 'knobs'}}; base: exp, versions, shards, provenance."""
    st = analysis.get('settings', {})
    by_run = {}
    for r in analysis.get('records', []):
        by_run.setdefault(r['run'], []).append(r)
    runs = []
    for name in sorted(logged):
        e = run_entry(name, sorted(by_run.get(name, []), key=lambda r: r['iter']), st, logged[name])
        e['ckpt_selection'] = dig(analysis, 'ckpt_selection', name)
        runs.append({k: v for k, v in e.items() if v is not None})
    skip = {'records', 'runs', 'settings', 'exp_dir', 'notes', 'varying_knobs', 'ckpt_selection'}
    extra = {k: v for k, v in analysis.items() if k not in skip and len(json.dumps(v, default=str)) < 20_000}
    present = {r['name'] for r in runs}
    s = dict(base, analysis_settings={k: v for k, v in st.items() if k not in ('exp_dir', 'device')},
             runs_missing=[n for n in base.get('runs_expected', []) if n not in present], **extra,
             notes=list(analysis.get('notes', []))[:40], runs=runs)
    s.pop('runs_expected', None)
    return rnd(s)


def logged_finals(exp_dir, analysis):
    """{run: {'iter', 'final', 'knobs'}} from every <run>/log.jsonl of an experiment directory."""
    knobs = {r['run']: r.get('knobs') for r in analysis.get('records', []) if r.get('final')}
    out = {}
    for cfg_path in sorted(glob.glob(os.path.join(exp_dir, '*', 'config.json'))):
        d = os.path.dirname(cfg_path)
        it, fin = final_metrics(os.path.join(d, 'log.jsonl'))
        out[os.path.basename(d)] = dict(iter=it, final=fin, knobs=knobs.get(os.path.basename(d)))
    if not out:
        raise ValueError(f"report error: no runs in {exp_dir} (expected <run>/config.json and log.jsonl)")
    return out


def dataset_version(run_cfg, fallback):
    """The data version a run was trained on: its dataset's meta.json, else `fallback`."""
    path = run_cfg.get('dataset_path')
    if path and os.path.isfile(os.path.join(path, 'meta.json')):
        return read_json(os.path.join(path, 'meta.json')).get('version', fallback)
    return fallback


def workload(cfg, n_runs):
    """What one lockstep group of n_runs costs, in the units of the queue's estimates."""
    import train
    its = train.ckpt_iters(cfg['max_iters'], cfg['n_ckpts'])
    evals = set(range(0, cfg['max_iters'] + 1, cfg['eval_interval'])) | set(its) | {cfg['max_iters']}
    return dict(E=n_runs, run_steps=n_runs * cfg['max_iters'], n_evals=len(evals), n_ckpts=n_runs * len(its))


def experiment_base(exp_dir, name, shard_str, prov, args):
    """The versioned header of an experiment summary: config, data version, shards, expected runs."""
    import train
    i, n = parse_shard(shard_str)
    run_cfg = read_json(sorted(glob.glob(os.path.join(exp_dir, '*', 'config.json')))[0])
    cfg = run_time_config(name, args, run_cfg)
    dv = dataset_version(run_cfg, prov.get('data_version'))
    if dv is None:
        raise ValueError("report error: unknown data version (no dataset meta.json, no data_version in the provenance)")
    full = configure(train.DEFAULTS, [os.path.join(ROOT, 'config', f'{name}.py'), *args])
    expected = [r for r, _ in train.expand_sweep(full)]
    n_runs = len(glob.glob(os.path.join(exp_dir, '*', 'config.json')))
    prov = {**workload(cfg, n_runs), **prov, 'shard': f'{i}/{n}', 'data_version': dv}
    return dict(exp=name, format=1, data_version=dv, config_version=config_hash(cfg), config=cfg,
                config_args=list(args), shards=dict(n=n, done=[i]), provenance=[prov], runs_expected=expected)


# ----------------------------------------------------------------------------- figures
def shrink_png(src, dst, max_kb):
    """Copy a PNG, re-encoded with a 256-colour palette and, while still too large, downscaled."""
    from PIL import Image
    if os.path.getsize(src) <= max_kb * 1000:
        shutil.copyfile(src, dst)
        return
    img = Image.open(src).convert('RGB')
    scale = 1.0
    while True:
        w, h = max(1, int(img.width * scale)), max(1, int(img.height * scale))
        im = img.resize((w, h), Image.LANCZOS) if scale < 1 else img
        im.quantize(256, method=Image.Quantize.MEDIANCUT).save(dst, optimize=True)
        size = os.path.getsize(dst)
        if size <= max_kb * 1000:
            return
        scale *= 0.9 * math.sqrt(max_kb * 1000 / size)


def pick_figures(fig_dir, runs, out_dir, max_kb):
    """Copy the cross-run figures and the similarity figures of the lowest- and highest-OOD runs
    that have them into out_dir/figures -> {'files': [...], 'sim': {'low'/'high': {run, ood, act, grad}}}."""
    os.makedirs(os.path.join(out_dir, 'figures'), exist_ok=True)
    files = []
    for name in FIGURE_NAMES:
        src = os.path.join(fig_dir, f'{name}.png')
        if os.path.isfile(src):
            shrink_png(src, os.path.join(out_dir, 'figures', f'{name}.png'), max_kb)
            files.append(f'{name}.png')
    ood = {r['name']: dig(r, 'final', 'ood_test', 'all', 'all', 0) for r in runs}
    have = sorted((o, n) for n, o in ood.items() if o is not None and os.path.isfile(os.path.join(fig_dir, f'sim_act_{n}.png')))
    sim = {}
    for tag, (o, n) in (('low', have[0]), ('high', have[-1])) if have else ():
        sim[tag] = dict(run=n, ood=o)
        for kind in ('act', 'grad'):
            src = os.path.join(fig_dir, f'sim_{kind}_{n}.png')
            if os.path.isfile(src):
                shrink_png(src, os.path.join(out_dir, 'figures', f'sim_{kind}_{n}.png'), max_kb)
                sim[tag][kind] = f'sim_{kind}_{n}.png'
                files.append(sim[tag][kind])
    return dict(files=sorted(set(files)), sim=sim)


def slim_analysis(analysis):
    """The part of analysis.json kept in assets/ (records and runs, for merging and redrawing)."""
    return {k: v for k, v in analysis.items() if k not in ('selection_table',)}


# ----------------------------------------------------------------------------- staging (on the machine that ran it)
def stage_experiment(exp_dir, name, shard_str, prov, args, out_dir, max_kb=max_figure_kb):
    """An analysed experiment directory -> out_dir/{summary.json, analysis.json.gz, figures/}."""
    apath = os.path.join(exp_dir, 'analysis.json')
    if not os.path.isfile(apath):
        raise ValueError(f"report error: no {apath}; run analyze.py {exp_dir} first")
    analysis = read_json(apath)
    base = experiment_base(exp_dir, name, shard_str, prov, args)
    os.makedirs(out_dir, exist_ok=True)
    s = summary_from(analysis, logged_finals(exp_dir, analysis), base)
    s['figures'] = pick_figures(os.path.join(exp_dir, 'figures'), s['runs'], out_dir, max_kb)
    write_json_gz(slim_analysis(analysis), os.path.join(out_dir, 'analysis.json.gz'))
    write_summary(s, out_dir)
    return s


def bench_modes(files):
    """Bench JSONs -> {mode: {'rows': {row: value}, 'file', 'device_name', 'torch'}}; mode = eager /
    compile / graph on cuda, 'cpu' elsewhere."""
    out = {}
    for path in files:
        b = read_json(path)
        c = b.get('config', {})
        mode = ('cpu' if not str(b.get('device', '')).startswith('cuda') else 'graph' if c.get('cuda_graph')
                else 'eager' if c.get('compile') is False else 'compile')
        rows = {r['row']: dict(value=r.get('run_steps_per_s', r.get('items_per_s')), E=r.get('E'),
                               unit='run-steps/s' if 'run_steps_per_s' in r else 'examples/s',
                               peak_mem_gb=r.get('peak_mem_gb')) for r in b.get('rows', [])}
        out[mode] = dict(rows=rows, file=os.path.basename(path), device_name=b.get('device_name'), torch=b.get('torch'))
    return out


def stage_bench(src_dir, prov, out_dir):
    """A folder of bench JSONs (+ tests_gpu.txt) -> out_dir/{summary.json, bench_*.json, tests_gpu.txt, figures/bench.png}."""
    files = sorted(p for p in glob.glob(os.path.join(src_dir, 'bench*.json')) if 'cpu' not in os.path.basename(p))
    if not files:
        raise ValueError(f"report error: no bench*.json in {src_dir}")
    os.makedirs(os.path.join(out_dir, 'figures'), exist_ok=True)
    for p in files + glob.glob(os.path.join(src_dir, 'tests_gpu.txt')):
        shutil.copyfile(p, os.path.join(out_dir, os.path.basename(p)))
    modes = bench_modes([os.path.join(out_dir, os.path.basename(p)) for p in files])
    s = dict(exp='bench', format=1, code=prov.get('code'), provenance=[prov], modes=modes)
    bench_figure(modes, os.path.join(out_dir, 'figures', 'bench.png'))
    s['figures'] = dict(files=['bench.png'], sim={})
    write_summary(rnd(s), out_dir)
    return s


def bench_figure(modes, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    order = [m for m in ('eager', 'compile', 'graph', 'cpu') if m in modes]
    rows = [r for r in dict.fromkeys(r for m in order for r, v in modes[m]['rows'].items() if v['unit'] == 'run-steps/s')]
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    for j, m in enumerate(order):
        ax.bar([i + 0.27 * j for i in range(len(rows))], [dig(modes[m], 'rows', r, 'value') or 0 for r in rows], 0.27,
               label={'eager': 'eager', 'compile': 'torch.compile', 'graph': 'compile + CUDA graph', 'cpu': 'CPU'}[m])
    ax.set_xticks([i + 0.27 * (len(order) - 1) / 2 for i in range(len(rows))], rows, fontsize=8)
    ax.set_ylabel('run-steps / s'), ax.legend(fontsize=7)
    name = next((modes[m]['device_name'] for m in order if modes[m].get('device_name')), '')
    ax.set_title(f'training throughput on {name}: a plain loop vs E runs in lockstep', fontsize=9)
    fig.savefig(path, dpi=100, bbox_inches='tight')
    plt.close(fig)


def write_summary(s, out_dir):
    text = dumps(s)
    if len(text) > max_summary_kb * 1000:
        raise ValueError(f"report error: summary.json of {s['exp']} would be {len(text) // 1000} KB > {max_summary_kb} KB")
    with open(os.path.join(out_dir, 'summary.json'), 'w') as f:
        f.write(text)


# ----------------------------------------------------------------------------- merging shards, importing
def compatible(old, new):
    """Two results of one experiment may merge: same data version, shard count and analysis
    settings, and no knob whose value differs."""
    return (old.get('exp') == new.get('exp') and old.get('data_version') == new.get('data_version')
            and dig(old, 'shards', 'n') == dig(new, 'shards', 'n')
            and not changed_keys(old.get('config', {}), new.get('config', {}))
            and old.get('analysis_settings') == new.get('analysis_settings'))


def merge_analyses(old_a, new_a, new_runs):
    """Records and runs of two analyses (the new one wins for its runs), in analyze.py's order,
    summarised again by analyze.summarise -> the merged analysis dict."""
    import analyze
    records = [r for r in old_a['records'] if r['run'] not in new_runs] + new_a['records']
    records.sort(key=lambda r: (r['run'], r['iter']))              # analyze.py: runs by name, checkpoints by iter
    lacking = sorted({r['run'] for r in records if r.get('final') and 'ood_correct' not in r})
    if lacking:
        raise ValueError(f"report error: cannot merge: the final record of {lacking[0]} has no 'ood_correct' "
                         "(analysed by an older analyze.py); rerun that shard, or --force=True to replace")
    runs = sorted([r for r in old_a.get('runs', []) if r['name'] not in new_runs] + new_a.get('runs', []),
                  key=lambda r: r['name'])
    notes = old_a.get('notes', []) + new_a.get('notes', [])
    fields = analyze.summarise(records, dict(new_a['settings']), notes)
    return dict(new_a, **fields, records=records, runs=runs, notes=list(dict.fromkeys(notes)))


def merge_stages(old_dir, new_dir, out_dir, max_kb=max_figure_kb):
    """Two staged results of one experiment (other shards) -> one in out_dir: the records are
    concatenated and summarised again, the cross-run figures redrawn from the merged analysis."""
    import plots
    old_s, new_s = read_json(os.path.join(old_dir, 'summary.json')), read_json(os.path.join(new_dir, 'summary.json'))
    new_runs = {r['name'] for r in new_s['runs']}
    merged = merge_analyses(read_json(os.path.join(old_dir, 'analysis.json.gz')),
                            read_json(os.path.join(new_dir, 'analysis.json.gz')), new_runs)
    work = tempfile.mkdtemp(prefix='report_merge_')
    try:
        with open(os.path.join(work, 'analysis.json'), 'w') as f:
            json.dump(merged, f)
        try:
            plots.plot(work)                                           # no similarity.npz: cross-run figures only
        except Exception as e:                                         # figures are not worth losing the merge over
            merged['notes'].append(f"merged figures not redrawn ({type(e).__name__}: {e}); the newest shard's shown")
            shutil.copytree(os.path.join(new_dir, 'figures'), os.path.join(work, 'figures'), dirs_exist_ok=True)
        for d in (old_dir, new_dir):                                   # the similarity figures of each shard
            for p in glob.glob(os.path.join(d, 'figures', 'sim_*.png')):
                shutil.copyfile(p, os.path.join(work, 'figures', os.path.basename(p)))
        runs = {r['name']: r for r in old_s['runs']}
        runs.update({r['name']: r for r in new_s['runs']})
        logged = {n: dict(iter=r['iter'], final=r['final'], knobs=r.get('knobs')) for n, r in runs.items()}
        expected = sorted(set(logged) | set(new_s.get('runs_missing', [])) & set(old_s.get('runs_missing', [])))
        new_shards = {p['shard'] for p in new_s['provenance']}
        base = {k: new_s[k] for k in ('exp', 'format', 'data_version', 'config_version', 'config', 'config_args')}
        base.update(shards=dict(n=new_s['shards']['n'], done=sorted(set(old_s['shards']['done']) | set(new_s['shards']['done']))),
                    provenance=[p for p in old_s['provenance'] if p['shard'] not in new_shards] + new_s['provenance'],
                    runs_expected=expected)
        os.makedirs(out_dir, exist_ok=True)
        s = summary_from(merged, logged, base)
        s['figures'] = pick_figures(os.path.join(work, 'figures'), s['runs'], out_dir, max_kb)
        write_json_gz(slim_analysis(merged), os.path.join(out_dir, 'analysis.json.gz'))
        write_summary(s, out_dir)
        return s
    finally:
        shutil.rmtree(work, ignore_errors=True)


def replace_dir(src, dest, keep=()):
    """dest becomes a copy of src; files of dest matching a `keep` pattern stay."""
    kept = {}
    for pat in keep:
        for p in glob.glob(os.path.join(dest, pat)):
            kept[os.path.basename(p)] = open(p, 'rb').read()
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest, copy_function=shutil.copyfile)
    for d, _, _ in os.walk(dest):
        os.chmod(d, 0o755)                                             # not the 0700 of a temporary folder
    for name, data in kept.items():
        with open(os.path.join(dest, name), 'wb') as f:
            f.write(data)


def import_stage(stage, assets_dir, force=False, max_kb=max_figure_kb):
    """Staged results (a folder with summary.json) -> assets/<exp>/: replaces stale or absent
    results, merges another shard into current ones. -> one line saying what happened."""
    new = read_json(os.path.join(stage, 'summary.json'))
    name = new.get('exp')
    if not name or not re.fullmatch(r'[A-Za-z0-9_.-]+', name):
        raise ValueError(f"report error: {stage}/summary.json names no valid experiment")
    dest = os.path.join(assets_dir, name)
    if name == 'bench':
        replace_dir(stage, dest, keep=('bench_cpu*',))
        return f"bench: {', '.join(sorted(new.get('modes', {})))} -> {dest}"
    old = read_json(os.path.join(dest, 'summary.json')) if os.path.isfile(os.path.join(dest, 'summary.json')) else None
    old_stale, new_stale = (stale_reasons(old) if old else []), stale_reasons(new)
    done = lambda s: f"shards {','.join(map(str, s['shards']['done']))} of {s['shards']['n']}"
    covers = old is not None and set(old['shards']['done']) <= set(new['shards']['done'])   # e.g. a shard run again
    if old is None or force or (old_stale and not new_stale) or (covers and compatible(old, new)):
        replace_dir(stage, dest)
        return f"{name}: {done(new)} -> {dest}" + (f" (stale: {'; '.join(new_stale)})" if new_stale else '')
    if compatible(old, new):
        work = tempfile.mkdtemp(prefix='report_import_')
        try:
            s = merge_stages(dest, stage, os.path.join(work, name), max_kb)
            replace_dir(os.path.join(work, name), dest)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return f"{name}: merged, {done(s)} -> {dest}"
    if new_stale:
        raise ValueError(f"report error: {name} results to import are stale ({'; '.join(new_stale)}) and "
                         f"{dest} holds others; --force=True replaces them")
    raise ValueError(f"report error: {name} results to import do not merge with {dest} (other shard count, knobs or "
                     "analysis settings); --force=True replaces them")


def import_archive(path, assets_dir, force=False):
    """An archive of gpu_queue.py (.tgz holding summary.json, ...) -> assets/<exp>/."""
    if not os.path.isfile(path):
        raise ValueError(f"report error: no archive {path}")
    work = tempfile.mkdtemp(prefix='report_unpack_')
    try:
        with tarfile.open(path) as tar:
            bad = [m.name for m in tar.getmembers() if m.name.startswith(('/', '..')) or '/../' in m.name]
            if bad:
                raise ValueError(f"report error: {path} holds an unsafe path {bad[0]}")
            tar.extractall(work, **({'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}))
        if not os.path.isfile(os.path.join(work, 'summary.json')):
            raise ValueError(f"report error: {path} holds no summary.json")
        return import_stage(work, assets_dir, force)
    except tarfile.TarError as e:
        raise ValueError(f"report error: {path} is not a readable archive: {e}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def summarise_dir(src, name, shard_str, prov_path, assets_dir, force=False):
    """--summarise: an experiment directory (or a folder of bench JSONs) -> assets/<exp>/."""
    prov = read_json(prov_path) if prov_path else {}
    work = tempfile.mkdtemp(prefix='report_stage_')
    try:
        if name == 'bench':
            stage_bench(src, prov, work)
        else:
            stage_experiment(src, name, shard_str, prov, [], work)
        return import_stage(work, assets_dir, force)
    finally:
        shutil.rmtree(work, ignore_errors=True)


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
        s['_stale'], s['_dir'] = stale_reasons(s), rel(os.path.dirname(p))
        S[s.get('exp')] = s
    return dict(S=S, toy=opt('toy', 'results.json'), vocab=opt('llm_eval', 'vocab_overlap.json'),
                llm=opt('llm_eval', 'results.json'), mini=opt('quick_balance', 'analysis.json'),
                assets=assets_dir, rel=rel)


def f3(x, fmt='.3f'):
    return '–' if x is None else format(x, fmt)


def acc(run, split, ft='all', lang='all', what=0):
    return dig(run, 'final', split, ft, lang, what)


def with_results(st):
    """(name, summary) of the experiments with results, the README's order first, bench excluded."""
    names = [n for n in EXPERIMENTS if n in st['S']] + sorted(n for n in st['S'] if n not in EXPERIMENTS and n != 'bench')
    return [(n, st['S'][n]) for n in names]


def main_summary(st):
    return next((st['S'][n] for n in ('sweep_celeb', 'gemma2') if n in st['S'] and st['S'][n].get('runs')), None)


def devices(s):
    return ', '.join(dict.fromkeys(str(p.get('device')) for p in s.get('provenance', [])))


def scale_line(s):
    """Where and on what a result was made, and whether it is still current."""
    n, miss = len(s['runs']), len(s.get('runs_missing', []))
    line = f"`{s['exp']}`, {n} of {n + miss} runs, {devices(s)}, data v{s.get('data_version')}"
    return line + (f": **stale** ({'; '.join(s['_stale'])})" if s['_stale'] else '')


def fig_path(st, exp, name):
    s = st['S'].get(exp)
    if s and name in (dig(s, 'figures', 'files') or []):
        return f"{s['_dir']}/figures/{name}"
    return None


def knob_key(run):
    return tuple((str(type(v)), v) for v in (run.get('knobs') or {}).values())


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
    rows = ['| experiment | SPEC finding | what it tests | runs | made on | status | train + analysis (s) |',
            '|---|---|---|---|---|---|---|']
    for name, (fnd, what) in EXPERIMENTS.items():
        s = st['S'].get(name)
        if s is None:
            rows.append(f'| `{name}` | {fnd} | {what} | 0 | – | not yet run | – |')
            continue
        n, miss = len(s['runs']), len(s.get('runs_missing', []))
        prov = s.get('provenance', [])
        made = '; '.join(dict.fromkeys(f"{p.get('device')}, {p.get('date')}" for p in prov)) + f", data v{s.get('data_version')}"
        status = f"**stale**: {'; '.join(s['_stale'])}" if s['_stale'] else 'current'
        if miss:
            status += f"; shards {', '.join(map(str, s['shards']['done']))} of {s['shards']['n']} done"
        times = f"{sum(p.get('train_s') or 0 for p in prov):.0f} + {sum(p.get('analyze_s') or 0 for p in prov):.0f}"
        rows.append(f'| `{name}` | {fnd} | {what} | {n} of {n + miss} | {made} | {status} | {times} |')
    return '\n'.join(rows)


def runs_table(s):
    runs = sorted(s['runs'], key=knob_key)
    knobs = list(dict.fromkeys(k for r in runs for k in (r.get('knobs') or {})))
    fts = [ft for ft in FACT_TYPES if any(acc(r, 'ood_test', ft) is not None for r in runs)]
    v, layer = s['analysis_settings'].get('unif_variant', 'same_fact'), s['analysis_settings'].get('unif_layer', 'concat')
    head = knobs + ['ID', 'OOD'] + [f'OOD {ft}' for ft in fts] + [f'unification act ({v}, {layer})', 'unification grad',
                                                                  'language footprint (max)']
    rows = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for r in runs:
        lf = [x for x in dig(r, 'trajectory', 'lang_footprint') or [] if x is not None]
        cells = [str((r.get('knobs') or {}).get(k, '')) for k in knobs] + [f3(acc(r, 'id_test')), f3(acc(r, 'ood_test'))]
        cells += [f3(acc(r, 'ood_test', ft)) for ft in fts]
        cells += [f3(dig(r, 'unification', v, 'act')), f3(dig(r, 'unification', v, 'grad')),
                  f3(max(lf) if lf else None)]
        rows.append('| ' + ' | '.join(cells) + ' |')
    return rows


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
        out += [f"#### {scale_line(s)}", '',
                f"Run selection: {st_.get('select_repeats')} random subsets of {st_.get('select_frac', 0):.0%} of the runs; "
                "mean final OOD accuracy of the run each rule picks.", '',
                '| pick the run by | OOD accuracy of the pick |', '|---|---|']
        for k, val in sel.items():
            label = SEL_NAMES.get(k) or (f"OOD accuracy on {k[4:-3]}% of the OOD test" if k.startswith('ood_') else k)
            out.append(f'| {label} | {f3(val)} |')
        layer = st_.get('unif_layer', 'concat')
        out += ['', f"Pearson r of unification ({layer}) with final OOD accuracy across runs "
                f"(better baseline: {s.get('better_variant')}):", '', '| baseline | activations | gradients |', '|---|---|---|']
        for v, kinds in (corr or {}).items():
            out.append(f"| {v} | {f3(dig(kinds, 'act', layer))} | {f3(dig(kinds, 'grad', layer))} |")
        cm, n = ckpt_means(s)
        if cm:
            out += ['', f'Checkpoint selection, mean over the {n} runs with parallel data of the OOD accuracy at the '
                    'checkpoint picked by: ' + ', '.join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in cm.items()) + '.']
        out.append('')
    return '\n'.join(out).strip() or 'No experiment with run selection has run yet.'


def block_bench(st):
    b = st['S'].get('bench')
    if not b:
        return 'The GPU bench has not run yet.'
    modes = [m for m in ('eager', 'compile', 'graph', 'cpu') if m in b.get('modes', {})]
    label = {'eager': 'eager', 'compile': 'torch.compile', 'graph': 'torch.compile + CUDA graph', 'cpu': 'CPU'}
    fullest = sorted(modes, key=lambda m: -len(b['modes'][m]['rows']))     # row order of the mode with every row
    rows = list(dict.fromkeys(r for m in fullest for r in b['modes'][m]['rows']))
    out = ['| row | ' + ' | '.join(label[m] for m in modes) + ' |', '|---|' + '---|' * len(modes)]
    for r in rows:
        unit = next(b['modes'][m]['rows'][r]['unit'] for m in modes if r in b['modes'][m]['rows'])
        cells = [dig(b, 'modes', m, 'rows', r, 'value') for m in modes]
        out.append(f"| {r} ({unit}) | " + ' | '.join(f3(c, ',.0f' if unit == 'examples/s' else ',.1f') for c in cells) + ' |')
    for p in b.get('provenance', []):
        cmds = '; '.join(f'`{c}`' for c in (p.get('command') or []))
        out += ['', f"{p.get('device')}, torch {p.get('torch')}, commit {p.get('commit')}, {p.get('date')}: {cmds}."]
        if p.get('tests'):
            out.append(f"GPU tests: {p['tests']}.")
    return '\n'.join(out)


def block_toy(st):
    t = st['toy']
    if not t:
        return 'The toy model has not run yet.'
    out = ['| lang_var (target) | measured | same-language accuracy | cross-language accuracy (± std over seeds) |',
           '|---|---|---|---|']
    for r in t.get('table', []):
        out.append(f"| {r['lang_var']} | {f3(r.get('lang_var_measured'), '.4f')} | {f3(r.get('same_acc'))} | "
                   f"{f3(r.get('cross_acc'))} ± {f3(r.get('cross_acc_std'))} |")
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


def ood_list(s):
    return [acc(r, 'ood_test') for r in s['runs']]


def finding1(st):
    m = main_summary(st)
    if m is None:
        return 'not yet run', 'the main sweep has not run at paper scale', '', ''
    ids, oods, sel = [acc(r, 'id_test') for r in m['runs']], ood_list(m), m.get('selection') or {}
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
            text += (f". CPU miniature (200 people, 4 layers, no parallel data, one run each): OOD balanced {o['balanced']:.3f} "
                     f"(MI {mi['balanced']:.3f} bits), src {o['src']:.3f} ({mi['src']:.3f}), imbalanced {o['imbalanced']:.3f} "
                     f"({mi['imbalanced']:.3f}), ID {min(dig(r, 'acc', 'id_test', 'all') for r in fin.values()):.2f}+ "
                     "in all three")
    holds = [h for h, _ in paper]
    if paper and all(holds) and not names:
        status = 'reproduced'
    elif any(holds) or mini_ok:
        status = 'partly reproduced'
    else:
        status = 'not reproduced' if paper else 'not yet run'
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
    rows = ['| # | finding (SPEC) | status | what the measured results show | scale | figures |', '|---|---|---|---|---|---|']
    for n, claim, fn in FINDINGS:
        status, text, scale, figs = fn(st)
        rows.append(f'| {n} | {claim} | **{status}** | {text} | {scale or "–"} | {figs or "–"} |')
    return '\n'.join(rows)


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


RENDER = dict(findings=block_findings, figures=block_figures, experiments=block_experiments, runs=block_runs,
              selection=block_selection, bench=block_bench, toy=block_toy)
MARK = re.compile(r'(<!-- report:([\w-]+) -->\n)(.*?)(<!-- /report:\2 -->)', re.S)


def render(st):
    return {name: RENDER[name](st) for name in BLOCKS}


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
def parse_args(argv):
    """configure() plus the flag `--check`, repeated `--import=archive` and bare archive paths."""
    rest, archives = [], []
    for a in argv:
        if a == '--check':
            a = '--check=True'
        if a.startswith('--import='):
            archives.append(a.split('=', 1)[1])
        elif not a.startswith('--') and a.endswith(('.tgz', '.tar.gz')):
            archives.append(a)
        else:
            rest.append(a)
    cfg = configure(DEFAULTS, rest)
    cfg['imports'] = ','.join(a for a in [cfg['imports'], *archives] if a)
    return cfg


def main(cfg):
    globals().update({k: cfg[k] for k in ('max_summary_kb', 'max_figure_kb', 'early_fracs')})
    if cfg['summarise']:
        if not cfg['exp']:
            raise ValueError("report error: --summarise needs --exp=<experiment> (or bench)")
        print(summarise_dir(cfg['summarise'], cfg['exp'], cfg['shard'], cfg['provenance'], cfg['assets'], cfg['force']))
    for path in filter(None, cfg['imports'].split(',')):
        print(import_archive(path, cfg['assets'], cfg['force']))
    if not os.path.isfile(cfg['readme']):
        raise ValueError(f"report error: no {cfg['readme']}")
    with open(cfg['readme']) as f:
        text = f.read()
    new, changed = rewrite(text, render(load_state(cfg['assets'], cfg['readme'])), cfg['readme'])
    if cfg['check']:
        if changed:
            print(f"report error: the README's {', '.join(changed)} table(s) differ from {cfg['assets']}/ "
                  "(run python report.py)", file=sys.stderr)
            return 1
        print(f"report: {cfg['readme']} matches {cfg['assets']}/")
        return 0
    if changed:
        with open(cfg['readme'], 'w') as f:
            f.write(new)
    print(f"report: {cfg['readme']}: " + (f"rewrote {', '.join(changed)}" if changed else 'tables up to date'))
    return 0


if __name__ == '__main__':
    if '--help' in sys.argv[1:] or '-h' in sys.argv[1:]:
        print_help(__file__, __doc__)
        sys.exit(0)
    try:
        sys.exit(main(parse_args(sys.argv[1:])))
    except (ValueError, OSError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(msg if msg.startswith(('report error', 'config error')) else f'report error: {msg}', file=sys.stderr)
        sys.exit(1)
