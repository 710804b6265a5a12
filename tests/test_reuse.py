"""A run is trained once: a sweep whose run another experiment already finished (same data, model,
optimiser, steps and seed) links it in (train.py's reuse_dir, checkpoints.run_id), and trains the rest."""
import json
import os

import checkpoints
import train
from test_train import records, tiny


def test_a_finished_run_of_another_experiment_is_linked_not_trained(tmp_path):
    root = tmp_path / 'exps'
    a = train.train(tiny(tmp_path, out_dir=str(root / 'a'), sweep={'celeb_frac': [0.0, 0.2]}))
    # b: celeb_frac 0.2 as in a (reused), 0.1 new; its data knob spelled differently at a setting where it
    # makes no difference (no shared words: the placement mode changes nothing) is still the same run
    b = train.train(tiny(tmp_path, out_dir=str(root / 'b'), sweep={'celeb_frac': [0.2, 0.1]},
                         shared_token_mode='role', reuse_dir=str(root)))
    src, dst, new = (os.path.join(a, 'celeb_frac0.2'), os.path.join(b, 'celeb_frac0.2'),
                     os.path.join(b, 'celeb_frac0.1'))
    cfg = json.load(open(os.path.join(dst, 'config.json')))
    assert cfg['reused_from'] == src and cfg['shared_token_mode'] == 'role'
    assert cfg['run_id'] == json.load(open(os.path.join(src, 'config.json')))['run_id']
    assert records(dst) == records(src)                                   # the same evaluations and losses
    ckpts = sorted(f for f in os.listdir(src) if f.startswith('ckpt_'))
    assert ckpts and all(os.path.samefile(os.path.join(src, f), os.path.join(dst, f)) for f in ckpts)   # linked
    assert 'reused_from' not in json.load(open(os.path.join(new, 'config.json')))
    assert json.load(open(os.path.join(b, 'timing.json')))['n_runs'] == 1                              # trained: 0.1 only
    # another seed is another run: nothing to reuse, both trained
    c = train.train(tiny(tmp_path, out_dir=str(root / 'c'), sweep={'celeb_frac': [0.2]}, seed=1, reuse_dir=str(root)))
    assert 'reused_from' not in json.load(open(os.path.join(c, 'celeb_frac0.2', 'config.json')))


def test_an_unfinished_run_is_not_reused(tmp_path):
    """A run killed before its last step is no run to reuse: the sweep trains it itself."""
    root, one = tmp_path / 'exps', {'celeb_frac': [0.2]}
    a = train.train(tiny(tmp_path, out_dir=str(root / 'a'), sweep=one), stop_after=15)
    b = train.train(tiny(tmp_path, out_dir=str(root / 'b'), sweep=one, reuse_dir=str(root)))
    cfg = json.load(open(os.path.join(b, 'celeb_frac0.2', 'config.json')))
    assert 'reused_from' not in cfg and json.load(open(os.path.join(b, 'timing.json')))['n_runs'] == 1
    assert checkpoints.finished_runs(str(root))[cfg['run_id']] == os.path.join(b, 'celeb_frac0.2') != os.path.join(a, 'celeb_frac0.2')
