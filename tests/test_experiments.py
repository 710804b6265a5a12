"""A miniature of every experiment config, end to end (data, lockstep training, analysis), so
that the configs of the reproduction cannot rot. Each keeps its own knobs and the first two
values of every swept knob; population, model and schedule are shrunk."""
import glob
import json
import math
import os

import pytest

pytestmark = pytest.mark.slow      # end to end: the fast subset (-m 'not slow') skips them

import analyze
import train
from configurator import configure

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, 'config', '*.py'))
                 if not os.path.basename(p).startswith('celeb_'))   # celeb_XX.py: single points of sweep_celeb
TINY = dict(n_people=60, n_first_names=20, n_last_names=20, n_cities=10, n_layer=1, n_head=2, n_embd=16,
            batch_size=16, max_iters=6, n_ckpts=2, ckpt_first=1, eval_interval=6, eval_max=40, device='cpu', compile=False)


@pytest.mark.parametrize('name', CONFIGS)
def test_experiment_miniature(name, tmp_path):
    stack = ['quick.py'] if name.startswith('quick_') else []          # quick_*.py are stacked on quick.py
    cfg = configure(train.DEFAULTS, [os.path.join(ROOT, 'config', f) for f in stack + [name]])
    assert cfg['out_dir'] == f"out/{name[:-3]}"                   # each experiment writes its own directory
    cfg.update(TINY, out_dir=str(tmp_path / 'out'), data_dir=str(tmp_path / 'data'),
               sweep={k: v[:2] for k, v in cfg['sweep'].items()})
    exp = train.train(cfg)
    n_runs = len(glob.glob(os.path.join(exp, '*', 'config.json')))
    assert n_runs == math.prod(len(v) for v in cfg['sweep'].values())
    acfg = dict(analyze.DEFAULTS, exp_dir=exp, device='cpu', proj_dim=32, max_examples=60, max_celeb_facts=8,
                ood_sample=40, figures=False, max_ckpts=0)
    analyze.analyze(acfg)
    with open(os.path.join(exp, 'analysis.json')) as f:
        out = json.load(f)
    assert len(out['records']) == n_runs * 3                      # checkpoints 0, 1 and 6 of every run
