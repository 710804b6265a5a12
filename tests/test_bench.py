import json

import pytest

import bench


@pytest.mark.slow                                        # a whole (tiny) sweep and its analysis
def test_bench_runs_on_cpu(tmp_path):
    cfg = dict(bench.DEFAULTS, device='cpu', run_counts=[1, 2], steps=2, warmup=1, batch_size=8, n_layer=1,
               n_embd=32, n_head=2, n_people=300, data_dir=str(tmp_path / 'data'), n_reps=8, proj_dim=64,
               candidates=True, sweep=True, sweep_runs=2, sweep_iters=6, profile=True, out_file=str(tmp_path / 'bench.json'))
    rows = bench.bench(cfg)
    names = [r['row'] for r in rows]
    assert names == ['plain loop', 'lockstep E=1', 'lockstep E=2', 'lockstep E=2 attention_math',
                     'lockstep E=2 ce_loss', 'lockstep E=2 index_select', 'act reps', 'grad reps (64 dims, sketch)',
                     'sweep (2 runs x 6 steps)']
    assert all(r.get('run_steps_per_s', r.get('items_per_s', 0)) > 0 for r in rows[:-1])
    prof = rows[2]['profile']                                      # the step at the largest E, op by op
    assert 0 < len(prof) <= 15 and all(p['ms_per_step'] >= 0 and 0 <= p['share'] <= 1 for p in prof)
    sweep = rows[-1]
    assert sweep['n_ckpts'] > 2 and 0 < sweep['step_s'] < sweep['train_s'] and 0 <= sweep['outside_steps_frac'] < 1
    assert sweep['ckpts_per_s'] > 0 and sweep['analyze_s'] > 0
    saved = json.load(open(cfg['out_file']))
    assert saved['device'] == 'cpu' and [r['row'] for r in saved['rows']] == names


def test_candidate_steps_compute_the_same_loss(tmp_path):
    """Each speed candidate is the same computation: the first step's per-run losses agree."""
    import data_gen
    import train
    path = data_gen.prepare(dict(data_gen.DATA_DEFAULTS, n_people=300, data_dir=str(tmp_path)))
    meta = data_gen.load_meta(path)
    data = train.stack_runs([train.encode_split(data_gen.load_split(path, 'train'), meta, meta['block_size'])], 'cpu')
    cfg = dict(bench.DEFAULTS, batch_size=8, n_layer=1, n_embd=32, n_head=2)
    args = train.shape_args(cfg, meta)
    ctx = train.autocast('cpu', 'float32')
    losses = {v: bench.lockstep(cfg, data, args, 3, 'cpu', False, ctx, v)() for v in
              ('', 'attention_math', 'ce_loss', 'index_select')}
    for v, l in losses.items():
        assert l.shape == (3,) and (l - losses['']).abs().max() < 1e-5, v
