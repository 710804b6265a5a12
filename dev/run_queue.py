"""
The experiment queue for short GPU sittings: on a machine that starts empty, run what assets/ still
lacks as far as a time budget goes, and pack each finished item as one archive for
`python -m dev.report --import=...` (docs/experiments.md; .ci/gpu calls it).

    python -m dev.run_queue --budget=540 --dry_run=True    # the plan and its estimates, on any machine
    python -m dev.run_queue --budget=600 --tiny=True --out=/tmp/q --assets=/tmp/a   # the whole loop in miniature, CPU
    python -m dev.run_queue --device=cpu --seeds=0 --shards="{'sweep_celeb': 32}" --budget=4800 sweep_celeb
                                       # paper scale on a CPU: seed 0 of the main sweep, a run per item
    python -m dev.run_queue --scale=laptop --device=cpu --part=0/2 --budget=3600 selection_long &
    python -m dev.run_queue --scale=laptop --device=cpu --part=1/2 --budget=3600 selection_long
                                       # two calls side by side, a core each: more steps per hour on few cores

Items in priority order (ORDER): `bench` when results.code_version differs from assets/bench's, then
each missing shard of each experiment of config/experiments.py. The shard count is that of the current
partial results, else the smallest whose largest shard fits `budget`; before each item the queue takes
the first whose estimate fits the time left. A shard of E runs costs (the dry run prints each term)
    safety x (startup_s + data_s x datasets x n_people / 1000 + E x max_iters / throughput(E) x slow
              + evaluations x eval_s + checkpoints / ckpt_rate x slow) + pack_s
throughput(E): the bench's lockstep run-steps/s, interpolated in E; eval_s and ckpt_rate as measured by
the GPU runs in assets/, `slow` an experiment's own measured cost against this model (else its `cost`).
"""
import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import types

import checkpoints
import data_gen
from dev import results
import train
from config.experiments import EXPERIMENTS, SCALES, config_path
from configurator import cli, config_keys, configure
from machine import cpu_has_bf16, provenance, usable_cores

# -----------------------------------------------------------------------------
budget = 540.0             # seconds this call may spend on items (the allocation minus the machine's start and copy-back)
scale = 'paper'            # 'paper' (config/<exp>.py, a GPU) or 'laptop' (config/laptop/<exp>.py on a CPU: no bench item,
                           # estimates from the CPU bench in assets/bench, results for assets/laptop/)
device = 'cuda'            # paper scale on 'cuda' (a GPU sitting) or 'cpu' (items of about an hour on a CPU: estimates from the
                           # CPU bench's paper-shape rows and the CPU runs in assets/, an item a stopped queue left resumes)
seeds = ''                 # comma-separated seeds ('' = all): only the shards whose runs all have one of them (one seed of a sweep)
part = ''                  # 'i/n': this call takes the i-th of every n shards of an experiment (after `seeds`), so that n calls
                           # side by side share them; each gets cores/n threads, its own work_dir and queue.txt (suffix _<i>of<n>)
out = 'out/gpu'            # where the archives and queue.txt go ($OUT on the GPU machine)
work_dir = 'out/queue'     # runs and analyses of the item in progress (removed once it is packed)
assets = 'assets'          # the repo's results: what is done, and the measured speeds
only = ''                  # comma-separated items to consider ('' = all of ORDER); bare names on the command line add here
redo = ''                  # comma-separated experiments to run again though assets/ holds current results (e.g. for a
                           # measure the analysis gained since); import their first archive with --force=True
gpu_tests_k = 'graph'      # pytest -k of the GPU tests in the bench item ('' = all, ~5 min: the lockstep test trains 5 compiled runs)
shards = {}                # fixed shard counts {exp: n}, e.g. for tests; the others are chosen to fit `budget`
max_shards = 16            # the most shards an experiment may be split into
dry_run = False            # print the plan with its estimates and run nothing
tiny = False               # a CPU miniature of every item (tiny data, model and analysis; two values per swept knob)
safety = 1.1               # estimates are multiplied by this
startup_s = 30.0           # a training process before its first step: start-up and torch.compile (H200 sweep: ~40 s with data)
data_s = 1.0               # building one dataset of 1,000 people
eval_s = 1.0               # one evaluation of a lockstep group, until measured on a GPU (H200 sweep: 1.0 s at E=16)
ckpt_rate = 1.5            # analysed checkpoints per second, until measured on a GPU (H200 sweep: 1.87)
bench_s = 480.0            # cost of the bench item until measured (x safety: the most a 540 s budget starts)
pack_s = 10.0              # staging and packing one item
max_files = 8              # files that may come back from the machine
max_file_mb = 16.0         # the largest file that may come back
commit = ''                # code commit to record ('' = git rev-parse where there is a .git, else 'unknown')
# -----------------------------------------------------------------------------
DEFAULTS = config_keys(globals())
CHOICES = {'scale': SCALES, 'device': ('cuda', 'cpu')}
ORDER = ['bench', *EXPERIMENTS]   # priority of the items: the bench, then config/experiments.py's order
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # the repo
NAME_OK = re.compile(r'[A-Za-z0-9._-]+')
CPU_PICK_ROW = re.compile(r'lockstep E=\d+( auto)?')   # a CPU bench's rows of train.py's own pick (dtype='auto', compile='auto')
# the CPU miniature of an experiment (tiny=True): as tests/test_experiments.py's TINY
TINY = dict(n_people=60, n_first_names=20, n_last_names=20, n_cities=10, n_layer=1, n_head=2, n_embd=16,
            batch_size=16, max_iters=6, n_ckpts=1, eval_interval=6, eval_max=40)
TINY_ANALYSIS = ['--device=cpu', '--proj_dim=32', '--max_examples=60', '--max_celeb_facts=8', '--ood_sample=40',
                 '--figures=False']
# the bench item's runs of bench.py after the GPU tests, in order: (JSON written, arguments)
# ~4 + ~4 minutes on an H200 (estimated from the bench of 2026-11-28: compilation dominates the first)
BENCH_RUNS = [('bench_compile.json', ['--steps=100', '--candidates=True', '--profile=True']),
              ('bench_graph.json', ['--steps=100', '--cuda_graph=True', '--sweep=True', '--sweep_iters=2000'])]
TINY_BENCH = ['--device=cpu', '--compile=False', '--run_counts=[1]', '--steps=1', '--warmup=1', '--n_people=300', '--n_layer=1', '--n_head=2',
              '--n_embd=16', '--batch_size=16', '--n_reps=8', '--proj_dim=16', '--sweep_runs=2', '--sweep_iters=4', '--pair=False']


class ItemFailed(Exception):
    pass


# ----------------------------------------------------------------------------- speeds
def bench_points(dirs, cpu, shape='laptop', bf16=None):
    """{mode: [(E, run-steps/s), ...]} of the lockstep rows of the newest GPU (or with cpu=True: CPU)
    bench JSONs in dirs, newest by provenance date whatever the file's name. On a CPU only the rows of the
    model's shape count (`shape`: 'laptop' or 'paper'), those of the setting train.py picks ('lockstep E=4'
    or 'lockstep E=4 auto'), and they stand for every mode; with bf16 True/False, only benches of a CPU with
    (without) native bfloat16 count, since the pick and its speed depend on it."""
    pts = {}
    for d in dirs:
        benches = [(path, results.read_json(path)) for path in glob.glob(os.path.join(d, 'bench*.json'))]
        benches.sort(key=lambda pb: ((pb[1].get('provenance') or {}).get('date', ''), pb[0]))
        for path, b in benches:
            mode = results.bench_mode(b)
            cuda = mode != 'cpu'
            if cuda == cpu or (bf16 is not None and (b.get('provenance') or {}).get('cpu_bf16') != bf16):
                continue                                         # GPU benches for a GPU, CPU ones (alike) for a CPU
            if cuda:
                rows = sorted((r['E'], r['run_steps_per_s']) for r in b.get('rows', [])   # not the speed candidates
                              if results.LOCKSTEP_ROW.fullmatch(r.get('row', '')) and r.get('run_steps_per_s'))
            else:
                rows = sorted({r['E']: r['run_steps_per_s'] for r in b.get('rows', []) if r.get('shape') == shape
                               and CPU_PICK_ROW.fullmatch(r.get('row', '')) and r.get('run_steps_per_s')}.items())
            if rows:
                for m in ([mode] if cuda else ['compile', 'graph']):
                    pts[m] = rows                                      # later dirs (this sitting) win
    return pts


def throughput(pts, E, mode):
    """Run-steps/s at E runs: linear interpolation between measured E, flat beyond them."""
    p = pts.get(mode) or pts.get('compile')
    if not p:
        raise ValueError("no GPU bench in assets/bench to estimate from: run the bench item first")
    if E <= p[0][0]:
        return p[0][1] * E / p[0][0]
    for (e0, r0), (e1, r1) in zip(p, p[1:]):
        if E <= e1:
            return r0 + (r1 - r0) * (E - e0) / (e1 - e0)
    return p[-1][1]


def median(xs, default):
    xs = sorted(x for x in xs if x is not None and x > 0)
    return xs[len(xs) // 2] if xs else default


def measured_rates(cfg, pts, summaries, cpu=False, bf16=None):
    """eval_s and ckpt_rate from the GPU (with cpu=True: CPU) runs in assets/, and per experiment its own
    slowness against the model ({exp: (train, analysis) multipliers}). bf16 True/False: only the runs of CPUs
    alike in native bfloat16 where there are any (the bench they are set against is such a CPU's)."""
    provs = [(s['exp'], p) for s in summaries.values() if s.get('exp') != 'bench' for p in s.get('provenance', [])
             if p.get('device') is not None and (p['device'] == 'cpu') == cpu
             and p.get('train_s') and p.get('analyze_s') and p.get('E')]
    alike = [(e, p) for e, p in provs if bf16 is not None and p.get('cpu_bf16') == bf16]
    provs = alike or provs
    rate = median([p['n_ckpts'] / p['analyze_s'] for _, p in provs], cfg['ckpt_rate'])
    ev = median([(p['train_s'] - p['run_steps'] / throughput(pts, p['E'], p.get('mode', 'compile'))) / p['n_evals']
                 for _, p in provs if pts], cfg['eval_s'])
    own = {}
    for name, p in provs if pts else ():
        steps = p['run_steps'] / throughput(pts, p['E'], p.get('mode', 'compile'))
        own[name] = (max(0.5, (p['train_s'] - p['n_evals'] * ev) / steps), max(0.5, p['analyze_s'] * rate / p['n_ckpts']))
    return dict(eval_s=ev, ckpt_rate=rate, own=own)


# ----------------------------------------------------------------------------- the plan
def load_summaries(q):
    """{exp: summary} of the results in assets/ at the queue's scale."""
    out = {}
    for p in glob.glob(os.path.join(q.assets, *(['laptop'] if q.scale == 'laptop' else []), '*', 'summary.json')):
        s = results.read_json(p)
        out[s.get('exp')] = s
    return out


def experiment_runs(q, name):
    """(resolved config, [(run name, run config)], config-changing args: those of the CPU miniature) of an experiment."""
    args = []
    if q.tiny:
        sweep = {k: v[:2] for k, v in configure(train.DEFAULTS, [config_path(name, q.scale)])['sweep'].items()}
        args = [f'--{k}={v!r}' for k, v in TINY.items()] + ([f'--sweep={sweep!r}'] if sweep else [])
    full = configure(train.DEFAULTS, [config_path(name, q.scale), *args])
    return full, train.expand_sweep(full), args


def estimate(q, name, full, runs, speeds, mode='compile'):
    """(cost in s, the terms) of training and analysing `runs` of an experiment in one process."""
    E = len(runs)
    w = results.workload(full, E)
    datasets = len({json.dumps({k: rc[k] for k in data_gen.DATA_DEFAULTS}, sort_keys=True, default=str) for _, rc in runs})
    cost = EXPERIMENTS[name]['cost']                                  # ~5 for character tokenizers
    slow_t, slow_a = speeds['own'].get(name) or (cost, cost)
    thr = throughput(speeds['pts'], E, mode)
    steps = w['run_steps'] / thr * slow_t
    train_s = q.startup_s + q.data_s * datasets * full['n_people'] / 1000 + steps + w['n_evals'] * speeds['eval_s']
    analysis_s = w['n_ckpts'] / speeds['ckpt_rate'] * slow_a
    return q.safety * (train_s + analysis_s) + q.pack_s, dict(E=E, mode=mode, thr=thr, train=train_s, analysis=analysis_s)


def best_estimate(q, name, full, runs, speeds):
    """The cheaper of torch.compile and the step as a CUDA graph (where the bench measured it)."""
    modes = ['compile'] + (['graph'] if 'graph' in speeds['pts'] and not on_cpu(q) else [])
    return min((estimate(q, name, full, runs, speeds, m) for m in modes), key=lambda e: e[0])


def fit_shards(q, name, full, runs, speeds):
    """The smallest shard count whose largest shard fits the budget (None if none does)."""
    return next((n for n in range(1, min(len(runs), q.max_shards) + 1)
                 if best_estimate(q, name, full, runs[0::n], speeds)[0] <= q.budget), None)


def experiment_items(q, name, summaries, speeds, done_now):
    """The items (missing shards) of one experiment, or one skipped item saying why."""
    try:
        full, runs, args = experiment_runs(q, name)
    except (ValueError, SystemExit) as e:
        return [dict(item=name, skip=f'bad config: {e}')]
    s = summaries.get(name)
    current = s is not None and s.get('config_args', []) == args and not results.stale_reasons(s)
    redo = current and name in q.redo.split(',')
    current = current and not redo
    if current:
        n, done = s['shards']['n'], set(s['shards']['done'])
    else:
        n, done = q.shards.get(name) or fit_shards(q, name, full, runs, speeds), set()
    if n is None:
        cost = best_estimate(q, name, full, runs[0::min(len(runs), q.max_shards)], speeds)[0]
        return [dict(item=name, skip=f'even {min(len(runs), q.max_shards)} shards need {cost:.0f} s each > budget {q.budget:.0f} s')]
    mine = list(range(n))
    if q.seeds:                                        # e.g. seed 0 of a sweep: its shards hold only seed-0 runs
        keep = {int(x) for x in str(q.seeds).split(',')}
        mine = [i for i in mine if all(rc['seed'] in keep for _, rc in runs[i::n])]
    if q.part:                                         # every k-th of those, whatever is done: calls side by side never meet
        k, m = part_of(q)
        mine = mine[k::m]
    missing = [i for i in mine if i not in done and (name, i) not in done_now]
    if not missing:
        return [dict(item=name, skip='current results in assets/' if current else 'done in this sitting')]
    items = []
    for i in missing:
        cost, terms = best_estimate(q, name, full, runs[i::n], speeds)
        why = ('run again (--redo)' if redo else 'stale: ' + '; '.join(results.stale_reasons(s)) if s and not current
               else 'missing')
        items.append(dict(item=f'{name}-{i}of{n}', exp=name, shard=(i, n), est=cost, terms=terms, why=why, args=args))
    return items


def bench_item(q, summaries, done_now):
    s = summaries.get('bench')
    if 'bench' in done_now:
        return dict(item='bench', skip='done in this sitting')
    if s and s.get('code') == results.code_version():
        return dict(item='bench', skip='assets/bench measured this code')
    cost = q.safety * median([p.get('total_s') for p in (s or {}).get('provenance', [])], q.bench_s)
    return dict(item='bench', exp='bench', est=cost, terms={}, why='code changed since assets/bench' if s else 'missing')


def plan(q, done_now, extra_bench_dirs=()):
    """Every item of the queue in priority order, each with its estimate or the reason it is skipped."""
    summaries = load_summaries(q)
    dirs = [os.path.join(q.assets, 'bench'), *extra_bench_dirs]
    # on a CPU, the benches of a CPU alike in native bfloat16 where there are any, else every CPU bench
    alike = on_cpu(q) and bench_points(dirs, True, bench_shape(q), cpu_has_bf16())
    pts = alike or bench_points(dirs, on_cpu(q), bench_shape(q))
    speeds = dict(measured_rates(dict(eval_s=q.eval_s, ckpt_rate=q.ckpt_rate), pts, summaries, on_cpu(q),
                                 cpu_has_bf16() if alike else None), pts=pts,
                  unlike=on_cpu(q) and not alike)
    wanted = [x for x in q.only.split(',') if x]
    unknown = [x for x in wanted + q.redo.split(',') if x and x not in ORDER]
    if unknown:
        raise ValueError(f"gpu_queue error: unknown item '{unknown[0]}' (items: {', '.join(ORDER)})")
    items = []
    for name in ORDER:
        if wanted and name not in wanted:
            continue
        if name == 'bench':
            items.append(bench_item(q, summaries, done_now) if q.scale == 'paper' else
                         dict(item='bench', skip='laptop scale: estimates from the CPU bench in assets/bench'))
            continue
        try:
            items += experiment_items(q, name, summaries, speeds, done_now)
        except ValueError as e:                                        # e.g. no bench to estimate from yet
            items.append(dict(item=name, skip=str(e)))
    return items, speeds


# ----------------------------------------------------------------------------- running an item
def run_cmd(cmd, timeout, log_path):
    """Run a child process (its own process group, killed with it when the time is up), output to
    log_path. -> (exit code or None if killed, output with progress bars dropped)."""
    with open(log_path, 'w') as log:
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        try:
            rc = p.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            rc = None
    with open(log_path, errors='replace') as f:
        lines = f.read().replace('\r', '\n').splitlines()
    return rc, '\n'.join(l for l in lines if l.strip() and not re.search(r'\d+%\||it/s\]|s/it\]', l))


def checked(rc, text, what):
    if rc is None:
        raise ItemFailed(f'{what} ran out of time')
    if rc != 0:
        raise ItemFailed(f"{what} exited {rc}: {(text.strip().splitlines() or [''])[-1][:200]}")


def threads_used(text):
    """The CPU threads train.py ran on, from its start line (else what OMP_NUM_THREADS gave it; else None:
    machine()'s count stands): with --part the queue's own count is not its children's."""
    m = re.search(r' on cpu \([^)]*?(\d+) threads?\)', text) or re.fullmatch(r'(\d+)', os.environ.get('OMP_NUM_THREADS', ''))
    return int(m.group(1)) if m else None


def machine(q):
    """machine.provenance with the GPU's name (or 'cpu') as the device, the day as the date, and the code's hash."""
    p = provenance('cpu' if on_cpu(q) else 'cuda')
    return dict(p, device=p.get('gpu', 'cpu'), commit=q.commit or p['commit'] or 'unknown', code=results.code_version(),
                date=p['date'][:10])


def on_cpu(q):
    """The queue runs on a CPU: a miniature, the laptop scale, or the paper scale with device='cpu'."""
    return q.tiny or q.scale == 'laptop' or q.device == 'cpu'


def bench_shape(q):
    """The model shape whose CPU bench rows estimate this queue's items."""
    return 'paper' if q.scale == 'paper' and q.device == 'cpu' and not q.tiny else 'laptop'


def run_experiment(q, it, left, stage):
    """Train, analyse and stage one shard of an experiment -> provenance."""
    name, (i, n) = it['exp'], it['shard']
    wd = os.path.join(q.work_dir, name)
    machine_args = [f'--out_dir={wd}'] + (['--cuda_graph=True'] if it['terms']['mode'] == 'graph' and not q.tiny else [])
    if q.tiny:
        machine_args += ['--device=cpu', '--compile=False', f"--data_dir={os.path.join(q.work_dir, 'data')}"]
    base_cmd = ['train.py', os.path.relpath(config_path(name, q.scale), ROOT), *([f'--shard={i}/{n}'] if n > 1 else []), *it['args'], *machine_args]
    # on a CPU an item takes up to an hour or more: a shard that an earlier call trained with this command (its
    # analysis cut by the budget) is analysed, not trained again; one it left half-trained resumes from its resume
    # point (not in a miniature; train.py checks that the config is the same); elsewhere every item starts clean
    done_path = os.path.join(wd, f'trained_{i}of{n}.json')
    trained = results.read_json(done_path) if on_cpu(q) and os.path.isfile(done_path) else None
    trained = trained if trained and trained['command'] == base_cmd else None
    resume = not trained and on_cpu(q) and not q.tiny and \
        os.path.isfile(os.path.join(wd, checkpoints.resume_file(f'{i}/{n}' if n > 1 else '')))
    if not trained and not resume:
        shutil.rmtree(wd, ignore_errors=True)
    train_cmd = base_cmd + (['--resume=True'] if resume else [])
    if trained:
        text, train_wall = trained['output'], trained['train_wall_s']
    else:
        t0 = time.time()
        rc, text = run_cmd([sys.executable, *train_cmd], left, os.path.join(q.work_dir, f"{it['item']}_train.txt"))
        checked(rc, text, 'train.py')
        train_wall = time.time() - t0
        os.makedirs(wd, exist_ok=True)
        checkpoints.atomic_write(done_path, json.dumps(dict(command=base_cmd, train_wall_s=train_wall,
                                                             output='\n'.join(text.splitlines()[-5:]))))
    m = re.search(r'done in ([0-9.]+)s', text)
    analyze_cmd = ['analyze.py', wd, *shlex.split(EXPERIMENTS[name].get('analyze', '')), *(TINY_ANALYSIS if q.tiny else [])]
    t1 = time.time()
    rc, text2 = run_cmd([sys.executable, *analyze_cmd], left - (0 if trained else train_wall),
                        os.path.join(q.work_dir, f"{it['item']}_analyze.txt"))
    checked(rc, text2, 'analyze.py')
    threads = threads_used(text) if on_cpu(q) else None
    prov = dict(machine(q), **({'threads': threads} if threads else {}),
                command=[' '.join(['python', *train_cmd]), ' '.join(['python', *analyze_cmd])],
                train_s=float(m.group(1)) if m else round(train_wall, 1), train_wall_s=round(train_wall, 1),
                analyze_s=round(time.time() - t1, 1), mode=it['terms'].get('mode'), queue_estimate_s=round(it['est']),
                resumed=bool(resume),             # train_s: then only the part after the resume point
                trained_by_an_earlier_call=bool(trained),
                train_tail=text.splitlines()[-3:])
    results.stage_experiment(wd, name, f'{i}/{n}', prov, it['args'], stage, q.scale)
    shutil.rmtree(wd, ignore_errors=True)                              # checkpoints: gigabytes at paper scale
    return prov


def run_bench(q, left, stage):
    """The GPU tests (at most a quarter of the time left), then bench.py for each of BENCH_RUNS -> staged
    bench results (the raw JSONs stay in work_dir/bench_raw for this sitting's estimates). A run that fails
    is recorded (provenance 'failed'); the item fails only when none succeeds. tiny: one small CPU run."""
    raw = os.path.join(q.work_dir, 'bench_raw')
    shutil.rmtree(raw, ignore_errors=True)
    os.makedirs(raw)
    t0, tests, cmds, secs, failed = time.time(), 'not run (tiny: no GPU)', [], [], []
    if not q.tiny:
        cmd = ['python', '-m', 'pytest', '-q', 'tests/test_gpu.py', *(['-k', q.gpu_tests_k] if q.gpu_tests_k else [])]
        rc, text = run_cmd([sys.executable, *cmd[1:]], left / 4, os.path.join(raw, 'tests_gpu.txt'))
        with open(os.path.join(raw, 'tests_gpu.txt'), 'w') as f:
            f.write('\n'.join(text.splitlines()[-30:]) + '\n')
        secs.append(round(time.time() - t0, 1))
        tests = ('ran out of time' if rc is None else (text.strip().splitlines() or ['no output'])[-1].strip('= ')) \
            + f" (`{shlex.join(cmd)}`, {secs[-1]:.0f} s)"
        cmds.append(shlex.join(cmd))
    runs = [('bench_compile.json', ['--candidates=True', '--sweep=True'])] if q.tiny else BENCH_RUNS   # no CUDA graphs on a CPU
    for fname, extra in runs:
        t1 = time.time()
        cmd = ['bench.py', *extra, *(TINY_BENCH + [f"--data_dir={os.path.join(q.work_dir, 'data')}"] if q.tiny else []),
               f'--out_file={os.path.join(raw, fname)}']
        rc, text = run_cmd([sys.executable, *cmd], left - (time.time() - t0), os.path.join(q.work_dir, f'{fname}.txt'))
        try:
            checked(rc, text, ' '.join(['python', 'bench.py', *extra]))
            cmds.append(' '.join(['python', 'bench.py', *extra]))
            secs.append(round(time.time() - t1, 1))
        except ItemFailed as e:
            failed.append(f'{e} after {time.time() - t1:.0f} s')
    if len(failed) == len(runs):
        raise ItemFailed('; '.join(failed))
    prov = dict(machine(q), command=cmds, command_s=secs, tests=tests, total_s=round(time.time() - t0, 1),
                **({'failed': failed} if failed else {}))
    results.stage_bench(raw, prov, stage)
    return prov


def pack(q, stage, path):
    """stage/* -> path (.tgz); ValueError if it exceeds max_file_mb."""
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    with tarfile.open(path, 'w:gz') as tar:
        for name in sorted(os.listdir(stage)):
            tar.add(os.path.join(stage, name), arcname=name)
    if os.path.getsize(path) > q.max_file_mb * 1e6:
        size = os.path.getsize(path) / 1e6
        os.remove(path)
        raise ValueError(f"gpu_queue error: {os.path.basename(path)} is {size:.1f} MB > {q.max_file_mb} MB")
    return path


def check_out(q, out_dir):
    """What would not come back from the machine: too many files, too large, too deep, odd names."""
    files = [os.path.relpath(os.path.join(d, f), out_dir) for d, _, fs in os.walk(out_dir) for f in fs]
    bad = [f"{len(files)} files > {q.max_files}"] if len(files) > q.max_files else []
    for f in files:
        parts = f.split(os.sep)
        if len(parts) > 3:
            bad.append(f'{f}: more than two folders deep')
        if not all(NAME_OK.fullmatch(p) for p in parts):
            bad.append(f'{f}: a name with characters other than letters, digits and ._-')
        if os.path.getsize(os.path.join(out_dir, f)) > q.max_file_mb * 1e6:
            bad.append(f'{f}: larger than {q.max_file_mb} MB')
    return bad


# ----------------------------------------------------------------------------- main
def simulate(items, left):
    """The plan as the queue would go through it if every item took its estimate: one line per item."""
    lines = []
    for it in items:
        t = it.get('terms') or {}
        cols = (f"{it['item']:<20}" + (f"{it['est']:>8.0f}" if 'est' in it else f"{'':>8}")
                + (f"{t['E']:>5} {t['mode']:>8} {t['thr']:>9.1f} {t['train']:>7.0f} {t['analysis']:>8.0f}" if t else f"{'':>41}"))
        if 'skip' in it:
            lines.append(cols + f"  skip: {it['skip']}")
        elif it['est'] <= left:
            left -= it['est']
            lines.append(cols + f"  run ({it['why']}); {left:.0f} s left after it")
        else:
            lines.append(cols + f"  later: needs {it['est']:.0f} s, {left:.0f} s left")
    return lines


def part_of(q):
    """q.part 'i/n' -> (i, n), checked; (0, 1) when ''."""
    if not q.part:
        return 0, 1
    m = re.fullmatch(r'(\d+)/(\d+)', str(q.part))
    if not m or not int(m.group(1)) < int(m.group(2)):
        raise ValueError(f"gpu_queue error: part must be 'i/n' with 0 <= i < n, got {q.part!r}")
    return int(m.group(1)), int(m.group(2))


def settings(cfg):
    """The queue's knobs as named fields (q.budget, q.tiny, ...), passed to every function that reads them."""
    return types.SimpleNamespace(**cfg)


def run_queue(cfg):
    """Run (or, with dry_run, print) the queue within the budget. -> exit code."""
    q = settings(cfg)
    k, m = part_of(q)
    q.log_name = f'queue_{k}of{m}.txt' if q.part else 'queue.txt'
    if q.part:                                         # its own folder and share of the cores
        q.work_dir = f'{q.work_dir}_{k}of{m}'
        if on_cpu(q) and not os.environ.get('OMP_NUM_THREADS'):
            os.environ['OMP_NUM_THREADS'] = str(max(1, usable_cores() // m))   # what train.py and analyze.py take
    if q.seeds and not all(x.strip().lstrip('-').isdigit() for x in str(q.seeds).split(',')):
        raise ValueError(f"gpu_queue error: seeds must be comma-separated integers, got {q.seeds!r}")
    if not q.dry_run and not on_cpu(q):
        import torch
        if not torch.cuda.is_available():
            raise ValueError("gpu_queue error: no CUDA device here "
                             "(--dry_run=True prints the plan; --tiny=True runs a CPU miniature)")
    t0, done_now, log, extra, n_packed = time.time(), set(), [], [], 0
    items, speeds = plan(q, done_now)
    kind = ('dry run' if q.dry_run else 'tiny (CPU)' if q.tiny else 'laptop scale (CPU)' if q.scale == 'laptop'
            else 'paper scale on a CPU' if q.device == 'cpu' else 'GPU')
    pts = ', '.join(f"{m} " + ' '.join(f"E={e}:{r:.0f}" for e, r in p) for m, p in speeds['pts'].items())
    log += [f"queue: budget {q.budget:.0f} s, {kind}, data v{data_gen.VERSION}",
            f"speeds: bench run-steps/s {pts or 'none'}; eval {speeds['eval_s']:.2f} s; "
            f"analysis {speeds['ckpt_rate']:.2f} checkpoints/s; safety x{q.safety}"
            + (f"; no bench of a CPU {'with' if cpu_has_bf16() else 'without'} native bfloat16 as this one: "
               "the estimates may be far off" if speeds['unlike'] else ''),
            f"{'item':<20}{'est s':>8}{'E':>5} {'mode':>8} {'run-st/s':>9} {'train':>7} {'analysis':>8}  decision",
            *simulate(items, q.budget)]
    print('\n'.join(log), flush=True)
    if q.dry_run:
        return 0
    os.makedirs(q.out, exist_ok=True)
    try:                                               # a second call on this work_dir: a one-line error, not a clash
        release = checkpoints.lock(q.work_dir, ['queue'])
    except ValueError:
        raise ValueError(f"gpu_queue error: work_dir {q.work_dir} is in use by another call of the queue; give each "
                         "call its own --work_dir, or split the shards with --part") from None
    while n_packed < q.max_files - 1:
        left = q.budget - (time.time() - t0)
        items, speeds = plan(q, done_now, extra)
        it = next((x for x in items if 'skip' not in x and x['est'] <= left), None)
        if it is None:
            break
        log.append(f"{time.strftime('%H:%M:%S')} {it['item']}: start (estimate {it['est']:.0f} s, {left:.0f} s left)")
        print(log[-1], flush=True)
        stage = os.path.join(q.work_dir, 'stage', it['item'])
        shutil.rmtree(stage, ignore_errors=True)
        t1 = time.time()
        try:
            prov = run_bench(q, left, stage) if it['exp'] == 'bench' else run_experiment(q, it, left, stage)
            path = pack(q, stage, os.path.join(q.out, f"{it['item']}.tgz"))
            n_packed += 1
            extra = [os.path.join(q.work_dir, 'bench_raw')] if it['exp'] == 'bench' else extra
            log.append(f"  done in {time.time() - t1:.0f} s (" + ', '.join(f'{k} {prov[k]}' for k in
                       ('train_s', 'train_wall_s', 'analyze_s', 'total_s', 'tests', 'failed') if k in prov)
                       + f") -> {os.path.basename(path)} ({os.path.getsize(path) / 1e6:.2f} MB)")
        except (ItemFailed, ValueError, OSError) as e:
            log.append(f"  failed after {time.time() - t1:.0f} s: {e}")
        done_now.add('bench' if it['exp'] == 'bench' else (it['exp'], it['shard'][0]))
        print(log[-1], flush=True)
        write_log(q, log)
    log.append(f"queue: {n_packed} archive(s) in {time.time() - t0:.0f} s of {q.budget:.0f}")
    write_log(q, log)
    release()
    bad = check_out(q, q.out)
    print(log[-1] + ''.join(f'\nwill not come back: {b}' for b in bad))
    return 1 if bad else 0


def write_log(q, log):
    with open(os.path.join(q.out, q.log_name), 'w') as f:
        f.write('\n'.join(log) + '\n')


def parse_args(argv):
    """configure() plus bare item names (bash .ci/gpu 540 sweep_celeb balance)."""
    names = [a for a in argv if not a.startswith('-') and not a.endswith('.py')]
    cfg = configure(DEFAULTS, [a for a in argv if a not in names], choices=CHOICES, sources=[__file__])
    cfg['only'] = ','.join(x for x in [cfg['only'], *names] if x)
    return cfg


if __name__ == '__main__':
    sys.exit(cli(lambda: run_queue(parse_args(sys.argv[1:]))))
