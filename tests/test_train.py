import glob
import json
import os

import pytest
import torch

import data_gen
import train
from model import load_checkpoint


def tiny(tmp_path, **kw):
    """A run that trains in a second or two on a CPU."""
    cfg = dict(train.DEFAULTS, out_dir=str(tmp_path / 'out'), data_dir=str(tmp_path / 'data'),
               n_people=60, n_first_names=20, n_last_names=20, n_cities=10, n_templates=3,
               celeb_frac=0.2, n_layer=2, n_head=2, n_embd=32, batch_size=32, max_iters=40,
               warmup_iters=5, eval_interval=20, n_ckpts=3, log_interval=10, eval_max=200,
               device='cpu', compile=False)
    cfg.update(kw)
    return cfg


def records(run_dir, split=None):
    with open(os.path.join(run_dir, 'log.jsonl')) as f:
        recs = [json.loads(l) for l in f]
    return [r for r in recs if split is None or r['split'] == split]


def ckpt_vocab(run_dir):
    with open(os.path.join(run_dir, 'config.json')) as f:
        return data_gen.load_meta(json.load(f)['dataset_path'])['vocab']


def final_weights(run_dir):
    path = max(glob.glob(os.path.join(run_dir, 'ckpt_*.pt')), key=lambda p: int(p.split('_')[-1][:-3]))
    return torch.load(path, weights_only=False)['model']


def test_tiny_run_learns(tmp_path):
    cfg = tiny(tmp_path, max_iters=150, learning_rate=1e-2, eval_interval=150, n_ckpts=2)
    exp = train.train(cfg)
    run = os.path.join(exp, 'main')
    loss = [r['loss'] for r in records(run, 'loss')]
    assert loss[-1] < 0.6 * loss[0]
    acc = {r['iter']: r['acc'] for r in records(run, 'train') if r['fact_type'] == 'all' and r['lang'] == 'all'}
    assert acc[0] < 0.15 and acc[150] > 0.3          # chance is ~1/n_cities or lower
    conf = json.load(open(os.path.join(run, 'config.json')))
    assert conf['model_args']['n_runs'] == 1 and conf['celeb_frac'] == 0.2
    # records per (split, fact type, language) and aggregates, as DESIGN.md says
    keys = {(r['split'], r['fact_type'], r['lang']) for r in records(run) if r['split'] != 'loss'}
    assert ('ood_test', 'birth_year', 'lang0') in keys and ('id_test', 'all', 'all') in keys
    # checkpoints: log-spaced, the first within 1% of training, and loadable alone
    its = sorted(int(p.split('_')[-1][:-3]) for p in glob.glob(os.path.join(run, 'ckpt_*.pt')))
    assert its[0] == 0 and its[1] <= 150 // 100 + 1 and its[-1] == 150
    model, ckpt = load_checkpoint(os.path.join(run, 'ckpt_150.pt'), vocab=ckpt_vocab(run))
    assert ckpt['iter'] == 150 and set(ckpt['adam_v']) == set(ckpt['model'])
    with pytest.raises(SystemExit, match='trained on another vocabulary'):
        load_checkpoint(os.path.join(run, 'ckpt_150.pt'), vocab=ckpt_vocab(run)[:-1] + ['zzz'])
    with pytest.raises(SystemExit, match='checkpoint not found'):
        load_checkpoint(os.path.join(run, 'ckpt_7.pt'))


def test_lockstep_equals_separate(tmp_path):
    short = dict(max_iters=20, n_ckpts=2, eval_interval=20)
    exp = train.train(tiny(tmp_path / 'sweep', sweep={'celeb_frac': [0.0, 0.2], 'seed': [1]}, **short))
    for frac in (0.0, 0.2):
        alone = train.train(tiny(tmp_path / f'alone{frac}', celeb_frac=frac, seed=1, **short))
        a, b = os.path.join(exp, f'celeb_frac{frac}-seed1'), os.path.join(alone, 'main')
        ra = [r for r in records(a) if r['split'] != 'loss']
        rb = [r for r in records(b) if r['split'] != 'loss']
        assert [r['n'] for r in ra] == [r['n'] for r in rb]
        assert [r['acc'] for r in ra] == [r['acc'] for r in rb]
        assert all(abs(x['prob'] - y['prob']) < 1e-4 for x, y in zip(ra, rb))
        wa, wb = final_weights(a), final_weights(b)
        assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)


def test_resume_equals_uninterrupted(tmp_path):
    full = train.train(tiny(tmp_path / 'full'))
    cfg = tiny(tmp_path / 'cut')
    train.train(cfg, stop_after=25)             # as if killed at step 25 (last resume point: 20)
    train.train(dict(cfg, resume=True, device='auto'))    # the device setting may change on resume
    a, b = os.path.join(full, 'main'), os.path.join(cfg['out_dir'], 'main')
    wa, wb = final_weights(a), final_weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    strip = lambda rs: [(r['iter'], r['split'], r['fact_type'], r['lang'], r['acc']) for r in rs if r['split'] != 'loss']
    assert strip(records(a)) == strip(records(b))


def test_resume_needs_checkpoint_and_same_config(tmp_path):
    cfg = tiny(tmp_path, max_iters=10)
    with pytest.raises(SystemExit, match='no checkpoint to resume from'):
        train.train(dict(cfg, resume=True))
    train.train(cfg)
    with pytest.raises(SystemExit, match='config differs .* learning_rate'):
        train.train(dict(cfg, resume=True, learning_rate=1.0))


def test_compiled_checkpoint_has_plain_keys(tmp_path, monkeypatch):
    real = torch.compile
    monkeypatch.setattr(torch, 'compile', lambda m, **kw: real(m, backend='eager'))
    exp = train.train(tiny(tmp_path, max_iters=4, compile=True))
    sd = final_weights(os.path.join(exp, 'main'))
    assert sd and not any('_orig_mod' in k for k in sd)


def test_nan_loss_stops_with_run_and_step(tmp_path, monkeypatch):
    monkeypatch.setattr(train, 'get_lr', lambda it, cfg: float('nan'))   # weights become NaN at step 0
    cfg = tiny(tmp_path)
    with pytest.raises(SystemExit, match="run 'main' diverged at iter 1"):
        train.train(cfg)
    run = os.path.join(cfg['out_dir'], 'main')
    assert os.path.exists(os.path.join(run, 'ckpt_0.pt')) and not os.path.exists(os.path.join(run, 'ckpt_1.pt'))


def test_sweep_errors(tmp_path):
    with pytest.raises(SystemExit, match='differs with template_len_max'):
        train.train(tiny(tmp_path, sweep={'template_len_max': [4, 8]}, template_len_min=4))
    with pytest.raises(SystemExit, match="sweep over 'learning_rate'"):
        train.train(tiny(tmp_path, sweep={'learning_rate': [1e-3, 1e-2]}))
    with pytest.raises(SystemExit, match="block='foo' is not one of pythia, gemma2"):
        train.train(tiny(tmp_path, block='foo'))
    with pytest.raises(SystemExit, match="unknown key 'celeb'"):
        train.train(tiny(tmp_path, sweep={'celeb': [0.1]}))


def test_ckpt_iters_log_spaced():
    its = train.ckpt_iters(12000, 20)
    assert its[0] == 0 and its[1] <= 120 and its[-1] == 12000 and 15 <= len(its) <= 22
    gaps = [b / a for a, b in zip(its[1:], its[2:])]
    assert max(gaps) / min(gaps) < 1.5                   # geometric spacing


def test_batch_indices_independent_of_other_runs():
    n = torch.tensor([50, 70, 90])
    both = train.batch_indices(torch.tensor([3, 4, 5]), 17, 64, n)
    alone = train.batch_indices(torch.tensor([4]), 17, 64, n[1:2])
    assert torch.equal(both[1], alone[0]) and (both < n[:, None]).all()
    assert not torch.equal(both[0], train.batch_indices(torch.tensor([3]), 18, 64, n[:1])[0])
