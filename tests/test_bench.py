import json

import bench


def test_bench_runs_on_cpu(tmp_path):
    cfg = dict(bench.DEFAULTS, device='cpu', run_counts=[1, 2], steps=2, warmup=1, batch_size=8, n_layer=1,
               n_embd=32, n_head=2, n_people=300, data_dir=str(tmp_path / 'data'), n_reps=8, proj_dim=64,
               out_file=str(tmp_path / 'bench.json'))
    rows = bench.bench(cfg)
    names = [r['row'] for r in rows]
    assert names == ['plain loop', 'lockstep E=1', 'lockstep E=2', 'act reps', 'grad reps (64 dims)']
    assert all(r.get('run_steps_per_s', r.get('items_per_s', 0)) > 0 for r in rows)
    saved = json.load(open(cfg['out_file']))
    assert saved['device'] == 'cpu' and [r['row'] for r in saved['rows']] == names
