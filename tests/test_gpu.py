"""Checks of the GPU-only paths (bf16 autocast, torch.compile, CUDA graphs, analysis on the GPU);
skipped without CUDA. Run them on a GPU machine with: python -m pytest -q tests/test_gpu.py"""
import json
import os

import pytest
import torch

import analyze
import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')


def cfg_for(tmp_path, **kw):
    cfg = dict(train.DEFAULTS, out_dir=str(tmp_path / 'out'), data_dir=str(tmp_path / 'data'), n_people=300,
               max_iters=600, warmup_iters=50, eval_interval=600, n_ckpts=3, device='cuda')
    cfg.update(kw)
    return cfg


def final_acc(run_dir, split):
    recs = [json.loads(l) for l in open(os.path.join(run_dir, 'log.jsonl'))]
    return [r['acc'] for r in recs if r['split'] == split and r['fact_type'] == 'all' and r['lang'] == 'all'
            and 'template' not in r][-1]


def test_lockstep_equals_single_runs_on_gpu(tmp_path):
    """E=4 in lockstep (the CUDA defaults: bf16, compiled, CUDA graph) gives the accuracies of four
    single runs within bf16 noise."""
    fracs = [0.0, 0.1, 0.2, 0.3]
    exp = train.train(cfg_for(tmp_path / 'sweep', sweep={'celeb_frac': fracs}))
    timing = json.load(open(os.path.join(exp, 'timing.json')))
    assert timing['graphed'] and timing['compiled']                  # 'auto' picks both on CUDA
    for f in fracs:
        alone = train.train(cfg_for(tmp_path / f'alone{f}', celeb_frac=f))
        for split in ('train', 'id_test', 'ood_test'):
            a, b = final_acc(os.path.join(exp, f'celeb_frac{f}'), split), final_acc(os.path.join(alone, 'main'), split)
            assert abs(a - b) < 0.05, (f, split, a, b)   # bf16 kernels differ between E=4 and E=1


def test_cuda_graph_step_matches_eager(tmp_path):
    """The whole step captured as a CUDA graph follows the same path as the plain step (float32),
    also with a learning rate and weight decay per run."""
    kw = dict(max_iters=100, dtype='float32', compile=False, n_ckpts=1, sweep={'seed': [0, 1], 'weight_decay': [0.1, 1.0]})
    a = train.train(cfg_for(tmp_path / 'eager', cuda_graph=False, **kw))
    b = train.train(cfg_for(tmp_path / 'graph', cuda_graph=True, **kw))
    assert json.load(open(os.path.join(b, 'timing.json')))['graphed']
    for run in ('seed0-weight_decay0.1', 'seed1-weight_decay1.0'):
        wa = torch.load(os.path.join(a, run, 'ckpt_100.pt'), weights_only=True)['model']
        wb = torch.load(os.path.join(b, run, 'ckpt_100.pt'), weights_only=True)['model']
        assert all(torch.allclose(wa[k], wb[k], atol=1e-4) for k in wa)


def test_analysis_on_gpu_batched_equals_per_run(tmp_path):
    exp = train.train(cfg_for(tmp_path, max_iters=200, sweep={'celeb_frac': [0.1, 0.3]}))
    acfg = dict(analyze.DEFAULTS, exp_dir=exp, figures=False, max_ckpts=3)
    together = analyze.analyze(dict(acfg, run_batch=2))['records']
    alone = analyze.analyze(dict(acfg, run_batch=1))['records']
    assert len(together) == len(alone) >= 2 * 2                        # both runs, at least 2 checkpoints each
    assert [(a['run'], a['iter']) for a in together] == [(b['run'], b['iter']) for b in alone]
    for a, b in zip(together, alone):
        for kind in ('act', 'grad'):
            x, y = a['footprint']['lang'][kind]['concat'], b['footprint']['lang'][kind]['concat']
            assert abs(x - y) < 1e-2, (a['run'], a['iter'], kind, x, y)     # TF32 / bf16 projection noise
