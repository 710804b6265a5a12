"""A miniature of every experiment of config/experiments.py at both scales, end to end (data, lockstep
training, analysis), so that the configs of the reproduction cannot rot. Each keeps its own knobs and
the first two values of every swept knob; population, model and schedule are shrunk."""
import glob
import json
import math
import os

import pytest

pytestmark = pytest.mark.slow      # end to end: the fast subset (-m 'not slow') skips them

import analyze
import train
from config.experiments import EXPERIMENTS, SCALES, config_path, out_dir
from configurator import configure

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = [(name, scale) for name in EXPERIMENTS for scale in SCALES]
TINY = dict(n_people=60, n_first_names=20, n_last_names=20, n_cities=10, n_layer=1, n_head=2, n_embd=16,
            batch_size=16, max_iters=6, n_ckpts=2, n_ckpts_linear=0, ckpt_first=1, eval_interval=6, eval_max=40, device='cpu',
            compile=False)


def test_registry_lists_every_experiment_config():
    """Every config of an experiment is in the registry (celeb_XX.py are single points of sweep_celeb,
    demo.py the quick start, quick.py the tests' tiny run), and every laptop twin stacks on its paper config."""
    on_disk = {os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, 'config', '**', '*.py'), recursive=True)}
    listed = {os.path.relpath(config_path(n, s), ROOT) for n, s in CONFIGS}
    others = {p for p in on_disk if os.path.basename(p).startswith('celeb_')} | {
        'config/demo.py', 'config/quick.py', 'config/experiments.py', 'config/__init__.py', 'config/laptop/base.py'}
    assert on_disk - others == listed
    for name in EXPERIMENTS:
        assert f"include('../{name}.py')" in open(config_path(name, 'laptop')).read()


@pytest.mark.parametrize('name,scale', CONFIGS)
def test_experiment_miniature(name, scale, tmp_path):
    cfg = configure(train.DEFAULTS, [config_path(name, scale)])
    assert cfg['out_dir'] == out_dir(name, scale)                 # each experiment writes its own directory
    # two values per swept knob; a laptop twin differs from its paper config only in scale, which TINY
    # overrides, and in its sweep's values: one run of it shows that it trains and is analysed
    cfg.update(TINY, out_dir=str(tmp_path / 'out'), data_dir=str(tmp_path / 'data'),
               sweep={k: v[:2 if scale == 'paper' else 1] for k, v in cfg['sweep'].items()})
    exp = train.train(cfg)
    n_runs = len(glob.glob(os.path.join(exp, '*', 'config.json')))
    assert n_runs == math.prod(len(v) for v in cfg['sweep'].values())
    acfg = dict(analyze.DEFAULTS, exp_dir=exp, device='cpu', proj_dim=32, max_examples=60, max_celeb_facts=8,
                ood_sample=40, figures=False, max_ckpts=0)
    analyze.analyze(acfg)
    with open(os.path.join(exp, 'analysis.json')) as f:
        out = json.load(f)
    assert len(out['records']) == n_runs * 3                      # checkpoints 0, 1 and 6 of every run
