"""gpu_queue.py: the plan (order, skipping what assets/ holds, budget, shards that fit), packing within
what comes back from the GPU machine, and the whole loop in miniature on CPU (archives imported by
results.py)."""
import glob
import json
import os
import shutil
import subprocess
import sys

import pytest

import checkpoints
import data_gen
from dev import results
from dev import run_queue as gpu_queue

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ONE_THREAD = dict(os.environ, OMP_NUM_THREADS='1')   # tiny tensors: threads only wait on a busy machine


@pytest.fixture
def queue(tmp_path):
    """gpu_queue's settings for a test, with an assets/ that holds only the real GPU bench."""
    assets = tmp_path / 'assets'
    os.makedirs(assets / 'bench')
    for p in glob.glob(os.path.join(ROOT, 'assets', 'bench', 'bench_*.json')):
        shutil.copy(p, assets / 'bench')
    return gpu_queue.settings(dict(gpu_queue.DEFAULTS, assets=str(assets), out=str(tmp_path / 'out'),
                                   work_dir=str(tmp_path / 'work')))


def fake_current(assets, name, shards_n=1):
    """A summary that says `name` is done for the current data and config."""
    cfg = results.exp_config(name)
    s = dict(exp=name, format=1, data_version=data_gen.VERSION, config_version=results.config_hash(cfg), config=cfg,
             config_args=[], shards=dict(n=shards_n, done=list(range(shards_n))), provenance=[], runs=[])
    os.makedirs(os.path.join(assets, name), exist_ok=True)
    with open(os.path.join(assets, name, 'summary.json'), 'w') as f:
        f.write(results.dumps(s))


def test_plan_order_skip_and_budget(queue):
    fake_current(queue.assets, 'balance')
    items, speeds = gpu_queue.plan(queue, set())
    names = [it['item'] for it in items]
    exps = list(dict.fromkeys(n.split('-')[0] for n in names))
    assert exps == gpu_queue.ORDER                                   # the fixed priority order
    assert names[0] == 'bench' and 'est' in items[0]                 # no bench summary for this code: measure it first
    bal = next(it for it in items if it['item'] == 'balance')
    assert bal['skip'] == 'current results in assets/'
    runnable = [it for it in items if 'skip' not in it]
    assert all(it['est'] <= queue.budget for it in runnable)      # every shard fits one sitting
    sel = [it for it in runnable if it['exp'] == 'selection']
    n = sel[0]['shard'][1]
    assert len(sel) == n > 1 and sum(it['terms']['E'] for it in sel) == 110
    assert all(it['terms']['E'] == 1 and it['terms']['mode'] == 'graph' for it in runnable if it['exp'] == 'steps_10x')
    # the simulation takes each run item's cost off the budget, in order
    lines = gpu_queue.simulate(items, queue.budget)
    assert lines[0].startswith('bench') and ' run (' in lines[0] and all(' run (' not in l for l in lines[1:])
    assert gpu_queue.simulate(items, 1)[0].endswith(f'later: needs {1.1 * queue.bench_s:.0f} s, 1 s left')


def test_estimate_reads_the_bench(queue, tmp_path):
    pts = gpu_queue.bench_points([os.path.join(queue.assets, 'bench')], False)
    bench = results.read_json(os.path.join(ROOT, 'assets', 'bench', 'bench_compile.json'))
    e16 = next(r['run_steps_per_s'] for r in bench['rows'] if r['row'] == 'lockstep E=16')
    assert gpu_queue.throughput(pts, 16, 'compile') == e16
    assert gpu_queue.throughput(pts, 8, 'compile') < e16 and gpu_queue.throughput(pts, 640, 'compile') == pts['compile'][-1][1]
    with pytest.raises(ValueError, match='bench'):
        gpu_queue.throughput({}, 4, 'compile')
    # the speed candidates and the sweep row are not points of the training step's throughput
    b = dict(bench, rows=bench['rows'] + [dict(row='lockstep E=64 ce_loss', E=64, run_steps_per_s=1e6),
                                          dict(row='sweep (16 runs x 3000 steps)', E=16, run_steps_per_s=1.0)])
    os.makedirs(tmp_path / 'b')
    with open(tmp_path / 'b' / 'bench_compile.json', 'w') as f:
        json.dump(b, f)
    assert gpu_queue.bench_points([str(tmp_path / 'b')], False)['compile'] == pts['compile']
    # a measured GPU run of the experiment calibrates its estimate: the H200 sweep (seed 0)
    shutil.copytree(os.path.join(ROOT, 'assets', 'sweep_celeb'), os.path.join(queue.assets, 'sweep_celeb'))
    items, speeds = gpu_queue.plan(queue, set())
    p = results.read_json(os.path.join(ROOT, 'assets', 'sweep_celeb', 'summary.json'))['provenance'][0]
    assert speeds['ckpt_rate'] == pytest.approx(p['n_ckpts'] / p['analyze_s'])
    assert 0.5 < speeds['eval_s'] < 2
    sw = [it for it in items if it.get('exp') == 'sweep_celeb']
    assert [it['shard'] for it in sw] == [(0, 2), (1, 2)] and all('stale' in it['why'] for it in sw)


def test_only_and_errors(queue):
    only = gpu_queue.settings(dict(vars(queue), only='sweep_celeb'))
    assert {it['item'].split('-')[0] for it in gpu_queue.plan(only, set())[0]} == {'sweep_celeb'}
    with pytest.raises(ValueError, match="unknown item 'nonsense'"):
        gpu_queue.plan(gpu_queue.settings(dict(vars(queue), only='nonsense')), set())
    r = subprocess.run(['bash', '.ci/gpu'], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and 'usage' in r.stderr


@pytest.mark.slow
def test_unknown_item_is_a_one_line_error():
    r = subprocess.run([sys.executable, '-m', 'dev.run_queue', '--budget=540', '--dry_run=True', 'nonsense'], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.startswith('gpu_queue error: unknown item') and r.stderr.count('\n') == 1


def test_packing_limits(queue, tmp_path):
    out = tmp_path / 'o'
    os.makedirs(out / 'a' / 'b' / 'c')
    (out / 'ok.tgz').write_bytes(b'x')
    assert gpu_queue.check_out(queue, str(out)) == []
    (out / 'a' / 'b' / 'c' / 'deep.txt').write_text('x')
    (out / 'bad name.txt').write_text('xx')
    for i in range(7):
        (out / f'f{i}.txt').write_text('x')
    small = gpu_queue.settings(dict(vars(queue), max_file_mb=1e-6))
    bad = gpu_queue.check_out(small, str(out))
    assert any('10 files > 8' in b for b in bad) and any('deep' in b for b in bad)
    assert any('bad name' in b and 'letters' in b for b in bad) and any('larger than' in b for b in bad)
    stage = tmp_path / 'stage'
    os.makedirs(stage / 'figures')
    (stage / 'summary.json').write_text('{}' * 1000)
    with pytest.raises(ValueError, match='MB'):
        gpu_queue.pack(small, str(stage), str(tmp_path / 'p' / 'x.tgz'))
    assert not os.path.exists(tmp_path / 'p' / 'x.tgz')


def tiny_queue(tmp_path, *items):
    assets, out = tmp_path / 'assets', tmp_path / 'out'
    return [sys.executable, '-m', 'dev.run_queue', '--budget=3000', '--tiny=True', f'--out={out}', f'--assets={assets}',
            f'--work_dir={tmp_path / "work"}', "--shards={'sweep_celeb': 2}", *items]


@pytest.mark.slow
def test_tiny_queue_end_to_end(queue, tmp_path):
    """The whole loop on CPU: the queue trains, analyses and packs both shards of a miniature
    sweep_celeb; results.py imports and merges them; the queue then skips the experiment."""
    assets, out = tmp_path / 'assets', tmp_path / 'out'
    r = subprocess.run(tiny_queue(tmp_path, 'sweep_celeb'), cwd=ROOT, capture_output=True, text=True, env=ONE_THREAD)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(os.listdir(out)) == ['queue.txt', 'sweep_celeb-0of2.tgz', 'sweep_celeb-1of2.tgz']
    log = (out / 'queue.txt').read_text()
    assert 'sweep_celeb-1of2: start' in log and 'failed' not in log and gpu_queue.check_out(queue, str(out)) == []
    for name in ('sweep_celeb-0of2.tgz', 'sweep_celeb-1of2.tgz'):
        results.import_archive(str(out / name), str(assets))
    s = results.read_json(str(assets / 'sweep_celeb' / 'summary.json'))
    assert s['shards'] == dict(n=2, done=[0, 1]) and len(s['runs']) == 4 and s['runs_missing'] == []
    assert s['provenance'][0]['command'][0].startswith('python train.py config/sweep_celeb.py --shard=0/2')
    q = gpu_queue.settings(dict(vars(queue), tiny=True, only='sweep_celeb', shards={'sweep_celeb': 2}))
    assert gpu_queue.plan(q, set())[0] == [dict(item='sweep_celeb', skip='current results in assets/')]


@pytest.mark.slow
def test_tiny_bench_item(tmp_path):
    """The bench item in miniature (bench.py on CPU): packed, imported, then skipped for this code."""
    os.makedirs(tmp_path / 'assets')
    r = subprocess.run(tiny_queue(tmp_path, 'bench'), cwd=ROOT, capture_output=True, text=True, env=ONE_THREAD)
    assert r.returncode == 0 and os.path.isfile(tmp_path / 'out' / 'bench.tgz'), r.stdout + r.stderr
    results.import_archive(str(tmp_path / 'out' / 'bench.tgz'), str(tmp_path / 'assets'))
    s = results.read_json(str(tmp_path / 'assets' / 'bench' / 'summary.json'))
    assert s['code'] == results.code_version() and 'cpu' in s['modes'] and 'failed' not in s['provenance'][0]
    rows = s['modes']['cpu']['rows']                                  # the candidates and the sweep, on CPU
    assert {'lockstep E=1 ce_loss', 'lockstep E=1 index_select'} <= set(rows)
    sweep = next(v for k, v in rows.items() if k.startswith('sweep'))
    assert {'train_s', 'step_s', 'outside_steps_frac', 'analyze_s', 'ckpts_per_s'} <= set(sweep)
    q = gpu_queue.settings(dict(gpu_queue.DEFAULTS, assets=str(tmp_path / 'assets'), tiny=True, only='bench'))
    assert gpu_queue.plan(q, set())[0] == [dict(item='bench', skip='assets/bench measured this code')]


def test_laptop_scale_plan(queue):
    """--scale=laptop: no bench item, the laptop twins (config/laptop/), estimates from the CPU bench only,
    results looked up in assets/laptop/."""
    q = gpu_queue.settings(dict(vars(queue), scale='laptop', budget=100000.0))
    items, speeds = gpu_queue.plan(q, set())
    assert items[0]['item'] == 'bench' and items[0]['skip'].startswith('laptop scale')
    cpu = results.read_json(os.path.join(ROOT, 'assets', 'bench', 'bench_cpu.json'))
    assert {e for e, _ in speeds['pts']['compile']} == {r['E'] for r in cpu['rows']
                                                       if results.LOCKSTEP_ROW.fullmatch(r['row'])}
    sweep = [it for it in items if it.get('exp') == 'sweep_celeb']
    assert len(sweep) == 1 and sweep[0]['terms']['E'] == 12            # 6 celeb_frac x 2 seeds, one process
    assert all(it['terms']['mode'] == 'compile' for it in items if 'terms' in it and it['terms'])


def test_newest_cpu_bench_stands_whatever_its_name(tmp_path):
    """Benches kept side by side count by their provenance date: an older one named to sort last
    (bench_cpu_old.json after bench_cpu.json) does not stand for the current one, and a newer one without
    laptop-shape rows (the analysis bench: paper-shape lockstep rows only) is no estimate of a laptop twin."""
    def bench(rate, date, shape='laptop'):
        return dict(device='cpu', config=dict(compile=True), provenance=dict(date=date),
                    rows=[dict(row='lockstep E=1', E=1, run_steps_per_s=rate, **({'shape': shape} if shape else {})),
                          dict(row='lockstep E=12', E=12, run_steps_per_s=rate * 0.9, shape=shape)])
    d = tmp_path / 'bench'
    os.makedirs(d)
    for name, b in [('bench_cpu.json', bench(30.0, '2026-12-02 08:36')),
                    ('bench_cpu_old.json', bench(7.0, '2026-11-30 10:00')),
                    ('bench_cpu-analysis.json', bench(8.6, '2026-12-02 11:50', shape=None))]:
        with open(d / name, 'w') as f:
            json.dump(b, f)
    pts = gpu_queue.bench_points([str(d)], True)
    assert pts['compile'] == pts['graph'] == [(1, 30.0), (12, 27.0)]


def test_one_seed_at_paper_scale_on_a_cpu(queue, tmp_path):
    """device='cpu' at paper scale: estimates from the CPU bench's paper-shape rows of train.py's own pick,
    preferring a CPU like this one (native bfloat16 or not); seeds='0' keeps only the shards whose runs
    all have seed 0 (sweep_celeb in 32 shards: the even ones, one run each)."""
    q = gpu_queue.settings(dict(vars(queue), device='cpu', seeds='0', shards={'sweep_celeb': 32}, only='sweep_celeb',
                                budget=1e6))
    items, speeds = gpu_queue.plan(q, set())
    assert [it['shard'] for it in items] == [(i, 32) for i in range(0, 32, 2)]
    assert all(it['terms']['E'] == 1 for it in items)
    paper = {(r['E'], r['run_steps_per_s']) for p in glob.glob(os.path.join(ROOT, 'assets', 'bench', 'bench_cpu*.json'))
             for r in results.read_json(p)['rows'] if r.get('shape') == 'paper' and gpu_queue.CPU_PICK_ROW.fullmatch(r['row'])}
    assert speeds['pts']['compile'] and set(speeds['pts']['compile']) <= paper
    with pytest.raises(ValueError, match='seeds must be'):
        gpu_queue.run_queue(dict(vars(q), seeds='zero', dry_run=True))

    def bench(rate, date, bf16):
        return dict(device='cpu', config=dict(compile=True), provenance=dict(date=date, cpu_bf16=bf16),
                    rows=[dict(row='lockstep E=1 auto', E=1, run_steps_per_s=rate, shape='paper'),
                          dict(row='lockstep E=1 float32', E=1, run_steps_per_s=1.0, shape='paper'),
                          dict(row='lockstep E=1', E=1, run_steps_per_s=rate * 3, shape='laptop')])
    d = tmp_path / 'b'
    os.makedirs(d)
    for name, b in [('bench_cpu_a.json', bench(12.0, '2026-12-02', True)), ('bench_cpu_b.json', bench(3.0, '2026-12-01', False))]:
        with open(d / name, 'w') as f:
            json.dump(b, f)
    assert gpu_queue.bench_points([str(d)], True, 'paper', True)['compile'] == [(1, 12.0)]
    assert gpu_queue.bench_points([str(d)], True, 'paper', False)['compile'] == [(1, 3.0)]   # older, but a CPU alike
    assert gpu_queue.bench_points([str(d)], True, 'paper')['compile'] == [(1, 12.0)]         # no preference: the newest
    assert gpu_queue.bench_points([str(d)], True, 'laptop', False)['compile'] == [(1, 9.0)]


def test_laptop_item_resumes_what_a_stopped_queue_left(queue, monkeypatch):
    """At laptop scale an item whose work folder holds a resume point trains on with --resume=True and
    keeps the folder; without one (or on a GPU) it starts clean."""
    q = gpu_queue.settings(dict(vars(queue), scale='laptop'))
    it = dict(exp='balance', shard=(0, 1), terms=dict(mode='compile'), args=[], item='balance-0of1', est=100.0)
    calls = []
    monkeypatch.setattr(gpu_queue, 'run_cmd', lambda cmd, timeout, log: calls.append(cmd) or (1, 'stopped here'))
    wd = os.path.join(q.work_dir, 'balance')
    os.makedirs(wd)
    open(os.path.join(wd, 'resume.pt'), 'wb').close()
    with pytest.raises(gpu_queue.ItemFailed, match='stopped here'):
        gpu_queue.run_experiment(q, it, 100.0, q.out)
    assert '--resume=True' in calls[-1] and os.path.isfile(os.path.join(wd, 'resume.pt'))
    for q2 in (q, gpu_queue.settings(dict(vars(queue), scale='paper'))):
        if q2 is q:
            os.remove(os.path.join(wd, 'resume.pt'))
        else:
            os.makedirs(wd, exist_ok=True)
            open(os.path.join(wd, 'resume.pt'), 'wb').close()
        with pytest.raises(gpu_queue.ItemFailed):
            gpu_queue.run_experiment(q2, it, 100.0, q2.out)
        assert '--resume=True' not in calls[-1] and not os.path.exists(os.path.join(wd, 'resume.pt'))


def test_a_trained_item_whose_analysis_was_cut_is_analysed_not_trained_again(queue, monkeypatch):
    """On a CPU a shard trained by an earlier call with the same command (the budget cut its analysis) is only
    analysed, its provenance from that training; another command, or a GPU sitting, trains afresh."""
    q = gpu_queue.settings(dict(vars(queue), scale='laptop'))
    it = dict(exp='balance', shard=(0, 1), terms=dict(mode='compile'), args=[], item='balance-0of1', est=100.0)
    calls, staged = [], []
    analysis_rc = [None]                                                # None: killed when the time was up

    def fake_run(cmd, timeout, log):
        calls.append(cmd[1])
        return (0, 'done in 12.5s -> out') if cmd[1] == 'train.py' else (analysis_rc[0], 'cut')
    monkeypatch.setattr(gpu_queue, 'run_cmd', fake_run)
    monkeypatch.setattr(gpu_queue.results, 'stage_experiment', lambda wd, name, sh, prov, *a: staged.append(prov))
    with pytest.raises(gpu_queue.ItemFailed):
        gpu_queue.run_experiment(q, it, 100.0, q.out)
    wd = os.path.join(q.work_dir, 'balance')
    assert calls == ['train.py', 'analyze.py'] and os.path.isfile(os.path.join(wd, 'trained_0of1.json'))
    analysis_rc[0] = 0
    prov = gpu_queue.run_experiment(q, it, 100.0, q.out)
    assert calls[2:] == ['analyze.py'] and staged == [prov] and not os.path.exists(wd)
    assert prov['train_s'] == 12.5 and prov['trained_by_an_earlier_call'] and not prov['resumed']
    for q2, it2 in ((q, dict(it, args=['--max_iters=10'])), (gpu_queue.settings(dict(vars(queue), scale='paper')), it)):
        os.makedirs(wd, exist_ok=True)                                  # the record of the first training
        with open(os.path.join(wd, 'trained_0of1.json'), 'w') as f:
            json.dump(dict(command=['train.py', 'x'], train_wall_s=1.0, output='done in 1.0s'), f)
        analysis_rc[0] = 0 if q2 is q else None                         # (the GPU sitting stops before provenance)
        try:
            gpu_queue.run_experiment(q2, it2, 100.0, q2.out)
        except gpu_queue.ItemFailed:
            assert q2 is not q
        assert calls[-2:] == ['train.py', 'analyze.py']


def test_an_item_is_analysed_with_its_experiments_own_arguments(monkeypatch, tmp_path):
    """selection_long is analysed at every checkpoint (config/experiments.py: analyze='--max_ckpts=0'), in the
    queue as in reproduce.sh; the commands are caught before anything runs."""
    cmds = []
    def fake_run(cmd, timeout, log_path):
        cmds.append(cmd[1:])
        if cmd[1] == 'analyze.py':
            raise InterruptedError                                      # enough: the command is what is tested
        return 0, 'done in 1.0s'
    monkeypatch.setattr(gpu_queue, 'run_cmd', fake_run)
    q = gpu_queue.settings(dict(gpu_queue.DEFAULTS, scale='laptop', device='cpu', work_dir=str(tmp_path / 'work')))
    os.makedirs(q.work_dir)
    it = dict(exp='selection_long', shard=(0, 6), item='selection_long-0of6', terms=dict(mode='compile'), args=[], est=1)
    with pytest.raises(InterruptedError):
        gpu_queue.run_experiment(q, it, 100.0, str(tmp_path / 'stage'))
    wd = os.path.join(q.work_dir, 'selection_long')
    assert cmds[0][:3] == ['train.py', os.path.join('config', 'laptop', 'selection_long.py'), '--shard=0/6']
    assert cmds[1] == ['analyze.py', wd, '--max_ckpts=0']


def test_calls_side_by_side_share_the_shards(queue, monkeypatch):
    """part='i/n' takes every n-th shard after `seeds`, whatever is done, so n calls never train the same
    shard; each has its own work_dir and log and cores/n threads for its children; a second call on a
    work_dir in use is a one-line error."""
    q = dict(vars(queue), device='cpu', seeds='0', shards={'sweep_celeb': 32}, only='sweep_celeb', budget=1e6)
    mine = [[it['shard'][0] for it in gpu_queue.plan(gpu_queue.settings(dict(q, part=p)), set())[0]] for p in ('0/2', '1/2')]
    assert mine == [list(range(0, 32, 4)), list(range(2, 32, 4))]            # the 16 seed-0 shards, halved
    done = gpu_queue.plan(gpu_queue.settings(dict(q, part='1/2')), {('sweep_celeb', 2)})[0]
    assert [it['shard'][0] for it in done] == list(range(6, 32, 4))          # done ones leave, the others stay put
    for bad in ('2/2', 'half', '1/0'):
        with pytest.raises(ValueError, match="part must be 'i/n'"):
            gpu_queue.run_queue(dict(q, part=bad, dry_run=True))
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    assert gpu_queue.run_queue(dict(q, part='1/2', budget=0.0)) == 0       # nothing fits: it only writes its log
    assert os.path.isfile(os.path.join(queue.out, 'queue_1of2.txt')) and os.path.isdir(queue.work_dir + '_1of2')
    assert os.environ['OMP_NUM_THREADS'] == str(max(1, len(os.sched_getaffinity(0)) // 2))
    release = checkpoints.lock(queue.work_dir + '_1of2', ['queue'])
    try:
        with pytest.raises(ValueError, match='is in use'):
            gpu_queue.run_queue(dict(q, part='1/2', budget=0.0))
    finally:
        release()


def test_redo_runs_current_results_again(queue):
    """--redo: an experiment whose results are current is planned again (all its shards), the others still skip."""
    fake_current(queue.assets, 'balance')
    fake_current(queue.assets, 'gemma2')
    q = gpu_queue.settings(dict(vars(queue), only='balance,gemma2', redo='balance', budget=100000.0))
    items, _ = gpu_queue.plan(q, set())
    assert [it['item'] for it in items if 'skip' in it] == ['gemma2']
    bal = [it for it in items if it.get('exp') == 'balance']
    assert bal and all(it['why'] == 'run again (--redo)' for it in bal)
    with pytest.raises(ValueError, match="unknown item 'balanse'"):
        gpu_queue.plan(gpu_queue.settings(dict(vars(q), redo='balanse')), set())


def test_cpu_rates_read_the_runs_of_a_cpu_alike_in_bf16():
    """On a CPU the measured rates come from runs on CPUs alike in native bfloat16, where there are any: a
    native-bf16 CPU's run (twice as fast) would make a float32-only CPU's estimates too short."""
    pts = {'compile': [(1, 5.0)]}                                   # 5 run-steps/s at E=1: 2,000 s for 10,000 steps
    prov = lambda bf16, train_s: dict(device='cpu', cpu_bf16=bf16, E=1, run_steps=10000, n_evals=10, n_ckpts=10,
                                      train_s=train_s, analyze_s=10.0)
    summaries = {'a': dict(exp='a', provenance=[prov(True, 1100.0)]), 'b': dict(exp='b', provenance=[prov(False, 4100.0)])}
    rates = lambda s, bf16: gpu_queue.measured_rates(dict(eval_s=1.0, ckpt_rate=1.0), pts, s, cpu=True, bf16=bf16)
    assert set(rates(summaries, None)['own']) == {'a', 'b'}
    slow = rates(summaries, False)
    assert set(slow['own']) == {'b'}                                # 'a' is estimated from the bench alone
    assert slow['eval_s'] == pytest.approx((4100 - 2000) / 10)      # the time beyond the bench's steps, per eval: b's
    assert set(rates({'a': summaries['a']}, False)['own']) == {'a'}   # no alike run: every run, as before


def test_provenance_records_the_threads_train_py_ran_on(monkeypatch):
    """With --part the queue sets OMP_NUM_THREADS for its children after its own torch has started:
    the provenance's thread count is train.py's, read from its start line."""
    start = "1 run(s) on cpu (float32, compiled, 1 thread): 0.97M params per run, vocab 697, 128 x 13 tokens"
    assert gpu_queue.threads_used(f"building dataset\n{start}\niter 0: ...") == 1
    assert gpu_queue.threads_used(start.replace('1 thread', '16 threads')) == 16
    monkeypatch.setenv('OMP_NUM_THREADS', '3')
    assert gpu_queue.threads_used('done in 1.0s') == 3                # a record of an earlier call keeps only the tail
