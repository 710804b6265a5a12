import json
import os
import subprocess
import sys

import numpy as np
import pytest

import toy
from configurator import configure

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cfg(**kw):
    return dict(toy.DEFAULTS, **kw)


def eta2_lstsq(data, n_labels):
    """R^2 of onehot(label) regressed on onehot(language), weighted by copies: an independent
    computation of the share of label variance that language explains."""
    pairs, w = data['pairs'], data['copies'].astype(float)
    Y = np.eye(n_labels)[data['labels'][pairs[:, 1]]]
    X = np.eye(2)[pairs[:, 0]]
    sw = np.sqrt(w)[:, None]
    beta = np.linalg.lstsq(sw * X, sw * Y, rcond=None)[0]
    resid = ((Y - X @ beta) ** 2).sum(1) @ w
    total = ((Y - w @ Y / w.sum()) ** 2).sum(1) @ w
    return 1 - resid / total


def test_lang_var_zero_cross_equals_same():
    for c in (cfg(), cfg(n_labels=2, celeb_frac=0.0, l2=20.0), cfg(steps=300, l2=0.0)):
        for seed in range(3):
            data = toy.make_data(c, 0.0, seed)
            assert data['lang_var_measured'] == pytest.approx(0.0, abs=1e-12)
            for scale in (1.0, 0.1):
                W = toy.fit(c, data, scale)
                np.testing.assert_allclose(W[0], W[1], atol=1e-9)   # the two languages read the same
                r = toy.evaluate(c, data, scale)
                assert r['cross_acc'] == r['same_acc']
    # the check can fail: an informative language makes them differ
    r = toy.evaluate(cfg(), toy.make_data(cfg(), 0.1, 0), 1.0)
    assert r['cross_acc'] < r['same_acc'] - 0.1


def test_measured_lang_var_matches_asked():
    for n_labels in (2, 4):
        c = cfg(n_labels=n_labels)
        for target in (0.0, 0.02, 0.05, 0.1, 0.15):
            for seed in range(4):
                data = toy.make_data(c, target, seed)
                assert abs(data['lang_var_measured'] - target) < 0.005
                assert data['lang_var_measured'] == pytest.approx(eta2_lstsq(data, n_labels), abs=1e-9)
    with pytest.raises(ValueError, match='lang_var=0.9 unreachable'):
        toy.make_data(cfg(n_labels=4), 0.9, 0)                     # beyond what 2 languages can explain


def test_data_invariants_and_determinism():
    c = cfg()
    a, b = toy.make_data(c, 0.05, 3), toy.make_data(c, 0.05, 3)
    assert all(np.array_equal(a[k], b[k]) for k in ('labels', 'celeb', 'pairs', 'copies'))
    assert not np.array_equal(a['labels'], toy.make_data(c, 0.05, 4)['labels'])
    ents, counts = np.unique(a['pairs'][:, 1], return_counts=True)
    assert len(ents) == c['n_entities']                            # every entity is seen
    assert np.array_equal(counts == 2, a['celeb'][ents])           # celebrities in both languages, others in one
    assert a['copies'].min() >= 1 and a['copies'].max() <= c['max_copies']


def test_shrinking_lang_scale_never_lowers_cross_acc():
    c = cfg()
    scales = [1.0, 0.3, 0.1, 0.03, 0.01]
    for lang_var in (0.05, 0.1):
        datasets = {s: toy.make_data(c, lang_var, s) for s in range(8)}
        cross = [toy.row(c, datasets, lang_var, s)['cross_acc'] for s in scales]
        assert all(later >= earlier for earlier, later in zip(cross, cross[1:])), cross
        assert cross[-1] > cross[0] + 0.05                         # and it does rise
    # and informativeness lowers it at the default scale while same-language recall stays high
    rows = [toy.row(c, {s: toy.make_data(c, v, s) for s in range(5)}, v, 1.0) for v in (0.0, 0.05, 0.1)]
    assert rows[0]['cross_acc'] > rows[1]['cross_acc'] > rows[2]['cross_acc']
    assert min(r['same_acc'] for r in rows) > 0.95


def test_gradient_descent_reaches_ridge():
    c = cfg(n_entities=100, n_labels=2, max_copies=3, l2=5.0)
    data = toy.make_data(c, 0.1, 0)
    np.testing.assert_allclose(toy.fit(dict(c, steps=1500), data, 1.0), toy.fit(c, data, 1.0), atol=1e-6)
    with pytest.raises(ValueError, match='diverged'):
        toy.fit(dict(c, steps=300, lr=100.0), data, 1.0)           # divergence is a clear error


def test_main_writes_results(tmp_path, capsys):
    res = toy.main(cfg(out_dir=str(tmp_path)))
    saved = json.load(open(tmp_path / 'results.json'))
    assert saved['table'] == res['table']
    assert [r['lang_var'] for r in saved['table']] == [0.0, 0.05, 0.1]
    for r in saved['table']:
        assert {'lang_var', 'lang_var_measured', 'same_acc', 'cross_acc', 'seeds'} <= set(r)
        assert len(r['seeds']) >= 5
    assert len(saved['scale_table']) == len(toy.DEFAULTS['lang_scales']) * 3
    assert os.path.getsize(tmp_path / 'cross_acc_vs_scale.png') > 1000
    assert 'cross_acc' in capsys.readouterr().out


def test_config_and_bad_input():
    c = configure(toy.DEFAULTS, ['--lang_vars=[0.2]', '--l2=1', '--n_labels=2'])
    assert c['lang_vars'] == [0.2] and c['l2'] == 1.0
    with pytest.raises(ValueError, match='needs l2 > 0'):
        toy.main(cfg(l2=0.0))                                      # closed form needs a penalty
    with pytest.raises(ValueError, match=r'lang_var in \[0, 1\)'):
        toy.main(cfg(lang_vars=[1.5]))
    with pytest.raises(ValueError, match=r'n_entities >= 4\*n_labels'):
        toy.make_data(cfg(n_entities=10), 0.0, 0)


def test_command_line(tmp_path):
    """--help lists every knob; a bad value is one line on stderr and exit code 1, nothing written."""
    run = subprocess.run([sys.executable, 'toy.py', '--help'], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and all(f'--{k}=' in run.stdout for k in toy.DEFAULTS)
    assert 'weight penalty' in run.stdout
    for arg, msg in [('--l2=0', 'toy: the closed-form solve needs l2 > 0 (or set steps > 0)'),
                     ('--n_labels=two', "config error: n_labels='two' is not a valid int")]:
        bad = subprocess.run([sys.executable, 'toy.py', arg, f'--out_dir={tmp_path}'], cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
        assert bad.returncode == 1 and bad.stderr.strip() == msg, bad.stderr
    assert not os.listdir(tmp_path)
