import json
import resource

import pytest
import torch

import bench
import data_gen
import machine
import train


@pytest.mark.slow                                        # a whole (tiny) sweep and its analysis
def test_bench_runs_on_cpu(tmp_path):
    cfg = dict(bench.DEFAULTS, device='cpu', run_counts=[1, 2], steps=2, warmup=1, batch_size=8, n_layer=1,
               n_embd=32, n_head=2, n_people=300, data_dir=str(tmp_path / 'data'), n_reps=8, proj_dim=64,
               candidates=True, sweep=True, sweep_runs=2, sweep_iters=6, profile=True, compile=False, pair_ckpts=4,
               out_file=str(tmp_path / 'bench.json'))
    rows = bench.bench(cfg)
    names = [r['row'] for r in rows]
    assert names == ['plain loop', 'lockstep E=1', 'lockstep E=2', 'lockstep E=2 attention_math',
                     'lockstep E=2 ce_loss', 'lockstep E=2 index_select', 'act reps', 'grad reps (64 dims, sketch)', 'live unif E=2',
                     'sweep (2 runs x 6 steps)', 'analysis pair (4 checkpoints)']
    assert all(r.get('run_steps_per_s', r.get('items_per_s', 0)) > 0 for r in rows[:-2])
    pair = rows[-1]                                                # the analysis' CPU defaults against float32
    assert pair['n_ckpts'] == 4 and len(pair['seconds']['float32']) == len(pair['seconds']['pick']) == 2
    assert pair['ratio'] == pair['float32_s'] / pair['pick_s'] and pair['ckpts_per_s'] == 4 / pair['pick_s']
    assert set(pair['max_diff']) == set(bench.PAIR_MEASURES) and 0 <= pair['max_diff']['ood_acc_sample'] <= 1
    rows = rows[:-1]
    prof = rows[2]['profile']                                      # the step at the largest E, op by op
    assert 0 < len(prof) <= 15 and all(p['ms_per_step'] >= 0 and 0 <= p['share'] <= 1 for p in prof)
    sweep = rows[-1]
    assert sweep['n_ckpts'] > 2 and 0 < sweep['step_s'] < sweep['train_s'] and 0 <= sweep['outside_steps_frac'] < 1
    assert sweep['ckpts_per_s'] > 0 and sweep['analyze_s'] > 0
    saved = json.load(open(cfg['out_file']))
    assert saved['device'] == 'cpu' and [r['row'] for r in saved['rows']] == names
    assert {'cpu', 'cores', 'torch', 'commit', 'date'} <= set(saved['provenance'])


def test_a_failing_analysis_pair_keeps_the_rows_before_it(tmp_path):
    """The JSON is written before the long rows: an analysis pair on a missing sweep is a one-line error,
    and the throughput rows measured before it are on disk."""
    cfg = dict(bench.DEFAULTS, device='cpu', run_counts=[1], steps=1, warmup=1, batch_size=8, n_layer=1, n_embd=32,
               n_head=2, n_people=300, data_dir=str(tmp_path / 'data'), n_reps=4, proj_dim=16, compile=False,
               analyze_dir=str(tmp_path / 'no_sweep'), out_file=str(tmp_path / 'bench.json'))
    with pytest.raises(ValueError, match='no_sweep'):
        bench.bench(cfg)
    saved = json.load(open(cfg['out_file']))
    assert [r['row'] for r in saved['rows']] == ['plain loop', 'lockstep E=1', 'act reps', 'grad reps (16 dims, sketch)',
                                                      'live unif E=1']


def test_cpu_grid(tmp_path, monkeypatch):
    """The CPU table in miniature: per shape the GEMM limit, then every setting at each run count with
    its ratio to the first (float32 eager) and its share of the limit; 'auto' is the trainer's pick."""
    monkeypatch.setattr(machine, 'cpu_can_compile', lambda: False)    # compiling takes a minute: not here
    asked = []                                 # three processes that import torch: timed in the slow test below
    monkeypatch.setattr(bench, 'side_by_side', lambda lap, *a, **k: asked.append(lap) or dict(row='2 single-run jobs side by side'))
    (tmp_path / 'laptop.py').write_text('n_layer = 1\nn_head = 2\nn_embd = 32\nbatch_size = 8\nmax_iters = 6\n'
                                        'eval_interval = 3\neval_max = 50\nn_ckpts = 2\n')
    cfg = dict(bench.DEFAULTS, device='cpu', grid=True, run_counts=[2], steps=1, warmup=1, batch_size=16, n_layer=1,
               n_embd=32, n_head=2, n_people=300, data_dir=str(tmp_path / 'data'), n_reps=8, proj_dim=64,
               laptop_config=str(tmp_path / 'laptop.py'), laptop_runs=3,
               grid_settings=['float32', 'bfloat16', 'auto', 'float32+threads1+ce_loss'], out_file=str(tmp_path / 'b.json'))
    rows = bench.bench(cfg)
    grid = [r for r in rows if 'shape' in r]
    assert [(r['shape'], r['row']) for r in grid if r['row'].startswith('gemm')] == \
        [(s, f'gemm {d}') for s in ('laptop', 'paper') for d in ('float32', 'bfloat16')]
    steps = [r for r in grid if r['row'].startswith('lockstep') and not r.get('alias')]
    plain = [r for r in grid if r.get('alias')]                     # the laptop shape's pick, as the queue reads it
    assert [(r['row'], r['shape'], r['setting']) for r in plain] == [('lockstep E=1', 'laptop', 'auto'),
                                                                     ('lockstep E=3', 'laptop', 'auto')]
    assert [(r['shape'], r['E'], r['setting']) for r in steps] == \
        [(s, E, x) for s, Es in (('laptop', (1, 3)), ('paper', (2,))) for E in Es for x in cfg['grid_settings']]
    for r in steps:
        assert r['run_steps_per_s'] > 0 and r['gflops'] > 0 and r['gemm_share'] > 0
        assert r['ratio'] == 1.0 or r['setting'] != 'float32'
    assert [(lap['n_layer'], lap['batch_size']) for lap in asked] == [(1, 8), (1, 16)]      # the laptop shape, the paper one
    assert rows.count(dict(row='2 single-run jobs side by side')) == 2
    picked = machine.system_settings(train.DEFAULTS, 'cpu')
    assert all(r['resolved']['dtype'] == picked[0] and r['resolved']['compile'] == picked[1]
               for r in steps if r['setting'] == 'auto')
    assert bench.step_flops(dict(n_layer=1, n_embd=32, n_head=2, block='pythia', vocab_size=10, block_size=5), 2) == \
        6 * 2 * 4 * (32 * 96 + 32 * 32 + 32 * 128 + 128 * 32 + 32 * 10) + 3 * 2 * 4 * 4 * 4 * 32
    plain = next(r for r in rows if r['row'] == 'grad reps (64 dims, sketch, float32 vmap)')   # with or without bf16:
    assert plain['ratio'] > 0 and plain['items_per_s'] > 0           # the CPU's picks differ in grad_impl and memory
    with pytest.raises(ValueError, match='grid_settings'):
        bench.parse_setting('float32+fast', 'cpu')


@pytest.mark.slow
def test_single_runs_side_by_side(tmp_path, monkeypatch):
    """The side-by-side row: two single-run jobs one after the other on both cores and side by side on one
    core each, in processes of their own; both ways timed, the ratio > 1 where side by side is faster."""
    monkeypatch.setattr(machine, 'cpu_can_compile', lambda: False)    # the setting is resolved here, not in the jobs
    lap = dict(train.DEFAULTS, n_layer=1, n_head=2, n_embd=32, batch_size=8, n_people=300, data_dir=str(tmp_path / 'data'))
    data_gen.prepare(dict(data_gen.DATA_DEFAULTS, n_people=300, data_dir=lap['data_dir']))   # built once, as bench.py does
    side = bench.side_by_side(lap, 1, 5)
    assert side['row'] == '2 single-run jobs side by side' and side['steps_per_job'] == 5
    assert side['sequential_s'] > 0 and side['side_by_side_s'] > 0 and side['ratio'] == side['sequential_s'] / side['side_by_side_s']


def test_freed_memory_stays_in_the_process():
    """machine.cpu_reuse_memory: a 64 MB block freed and allocated again is not faulted in anew (glibc's
    defaults map it fresh and unmap it at every allocation); off restores that."""
    if not machine.cpu_reuse_memory(False):
        pytest.skip('not glibc: nothing to set')

    def faults():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(5):
            torch.ones(16 * 2 ** 20)                               # 64 MB float32, freed at once
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    default = faults()
    assert machine.cpu_reuse_memory(True)
    faults()                                                       # the heap grows once
    kept = faults()
    assert machine.cpu_reuse_memory(False)
    again = faults()
    assert default > 0 and 4 * kept < default and 4 * kept < again
    assert bench.parse_setting('auto', 'cpu')['reuse'] and not bench.parse_setting('bfloat16+compile', 'cpu')['reuse']
    assert bench.parse_setting('float32+reuse', 'cpu')['reuse'] and not bench.parse_setting('auto', 'cuda')['reuse']


def test_candidate_steps_compute_the_same_loss(tmp_path):
    """Each speed candidate is the same computation: the first step's per-run losses agree."""
    data, args = tiny_data(tmp_path)
    cfg = dict(bench.DEFAULTS, batch_size=8, n_layer=1, n_embd=32, n_head=2)
    ctx = machine.autocast('cpu', 'float32')
    losses = {v: bench.lockstep(cfg, data, args, 3, 'cpu', False, ctx, v)() for v in
              ('', 'attention_math', 'ce_loss', 'index_select')}
    for v, l in losses.items():
        assert l.shape == (3,) and (l - losses['']).abs().max() < 1e-5, v


def tiny_data(tmp_path):
    path = data_gen.prepare(dict(data_gen.DATA_DEFAULTS, n_people=300, data_dir=str(tmp_path)))
    meta = data_gen.load_meta(path)
    data = train.stack_splits([data_gen.load_split(path, 'train')], [meta], 'cpu')
    return data, train.shape_args(dict(bench.DEFAULTS, n_layer=2, n_embd=32, n_head=2), meta)


def test_bfloat16_steps_follow_float32(tmp_path):
    """The CPU fast path (bf16 autocast, attention written out) takes the steps float32 takes: the
    same two runs from the same init on the same batches keep their losses within bf16 rounding."""
    data, args = tiny_data(tmp_path)
    cfg = dict(bench.DEFAULTS, batch_size=16)
    f32 = bench.lockstep(cfg, data, args, 2, 'cpu', False, machine.autocast('cpu', 'float32'))
    b16 = bench.lockstep(cfg, data, args, 2, 'cpu', False, machine.autocast('cpu', 'bfloat16'))
    first = None
    for _ in range(10):
        a, b = f32(), b16()
        first = a if first is None else first
        assert (a - b).abs().max() < 0.02 * a.abs().max(), (a, b)
    assert (first - a).min() > 0.1                                  # and they learn


def test_pair_differences_are_the_largest_per_measure():
    """Two analyses of the same two checkpoints, given in another order: the largest |difference| per
    measure, checkpoints where either side is None skipped (nan where none is left)."""
    rec = lambda run, it, act, grad, ood: dict(run=run, iter=it, ood_acc_sample=ood, unification={
        'normalized': {'act': {'concat': act}, 'grad': {'concat': grad}}})
    a = [rec('r0', 0, 0.50, None, 0.25), rec('r0', 10, 0.90, None, 0.75)]
    b = [rec('r0', 10, 0.85, 0.3, 0.70), rec('r0', 0, 0.40, 0.2, 0.25)]
    d = bench.pair_differences(a, b)
    assert d['unification act'] == pytest.approx(0.10) and d['ood_acc_sample'] == pytest.approx(0.05)
    assert d['unification grad'] != d['unification grad']           # nan: no checkpoint has both
