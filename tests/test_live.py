"""Live unification (train.py's live_unif) and pruning by it (prune_at): the live score equals analyze.py's at
the same checkpoint, a pruned sweep's kept runs follow the paths they follow unpruned, stopped runs cost
nothing afterwards and say so in their logs, a kill after a prune resumes, and plots.py draws it from the
logs alone."""
import json
import os
import shutil
import subprocess
import sys

import pytest

import analyze
import metrics
import plots
import records
import train
from test_train import final_weights, records as log_records, same_weights, tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEP = {'celeb_frac': [0.0, 0.1, 0.15, 0.2]}
PRUNE = dict(sweep=SWEEP, max_iters=40, eval_interval=10, n_ckpts=2, ckpt_first=10, prune_at=0.5, prune_keep=1,
             prune_controls=True, dtype='float32')          # at iter 20: the best of 3 runs with parallel data + the control


def live(run_dir):
    """{iter: the logged live unification fields} of a run."""
    return {r['iter']: r for r in log_records(run_dir, 'train') if 'unification' in r or 'unification_null_reason' in r}


@pytest.fixture(scope='module')
def pruned(tmp_path_factory):
    return train.train(tiny(tmp_path_factory.mktemp('pruned'), **PRUNE))


def test_live_score_equals_analysis(tmp_path):
    """At every checkpoint, the logged live score is analyze.py's headline and paper ratio (activations,
    all layers), within 0.01 (the same examples: records.parallel_sample; the same scorer)."""
    exp = train.train(tiny(tmp_path, max_iters=150, learning_rate=2e-2, eval_interval=50, n_ckpts=2, ckpt_first=100,
                           dtype='float32'))
    out = analyze.analyze(dict(analyze.DEFAULTS, exp_dir=exp, device='cpu', proj_dim=64, max_examples=100,
                               max_celeb_facts=records.PARALLEL_FACTS[1], ood_sample=50, max_ckpts=0, figures=False,
                               dtype='float32'))
    logged = live(os.path.join(exp, 'main'))
    recs = out['records']
    assert [r['iter'] for r in recs] == [0, 100, 150]
    scored = 0
    for rec in recs:
        mine = logged[rec['iter']]['unification']
        assert mine['examples'] == rec['n_examples']['celebrity'] > 0
        for v in ('normalized', 'same_fact'):
            theirs = rec['unification'][v]['act']['concat'] if rec['unification'] else None
            assert (mine[v] is None) == (theirs is None)
            if theirs is not None:
                assert abs(mine[v] - theirs) < 0.01
                scored += 1
    assert scored >= 4                                       # the trained checkpoints have a score to compare


def test_run_without_parallel_data_says_so(pruned):
    none = live(os.path.join(pruned, 'celeb_frac0.0'))
    assert set(none) == {0, 10, 20, 30, 40} and all(r['unification'] is None and r['unification_null_reason']
                                                    == records.NO_PARALLEL for r in none.values())


def test_prune_keeps_the_most_unified_and_stops_the_rest(pruned, tmp_path):
    runs = [f'celeb_frac{f}' for f in SWEEP['celeb_frac']]
    at20 = {n: live(os.path.join(pruned, n))[20]['unification'] for n in runs}
    best = max(runs[1:], key=lambda n: at20[n]['normalized'] if at20[n] and at20[n]['normalized'] is not None else -9)
    kept = {'celeb_frac0.0', best}                           # the control, and the most unified run
    for n in runs:
        d = os.path.join(pruned, n)
        its = sorted(int(f[5:-3]) for f in os.listdir(d) if f.startswith('ckpt_'))
        recs = log_records(d)
        mark = records.stopped(recs)
        if n in kept:
            assert mark is None and its[-1] == 40 and max(r['iter'] for r in recs) == 40
        else:                                                # stopped at 20: its log and checkpoints so far stay
            assert mark['iter'] == 20 and set(mark['kept']) == kept and its[-1] == 20
            assert max(r['iter'] for r in recs) == 20 and mark['rank'] >= 2
    timing = json.load(open(os.path.join(pruned, 'timing.json')))
    assert timing['run_steps'] == 4 * 20 + 2 * 20 and timing['run_steps_unpruned'] == 4 * 40
    assert timing['n_runs'] == 4 and timing['n_runs_end'] == 2
    # the kept runs trained on as in the whole sweep (shrinking the group moved nothing between runs)
    whole = train.train(tiny(tmp_path, **dict(PRUNE, prune_at=0.0)))
    for n in kept:
        assert same_weights(final_weights(os.path.join(pruned, n)), final_weights(os.path.join(whole, n)))
    # analyze.py takes a stopped run as ending at its last checkpoint, and leaves it out of the cross-run measures
    stopped_run = next(n for n in runs if n not in kept)
    assert {r['name']: max(r['ckpts']) for r in analyze.find_runs(pruned)[0]}[stopped_run] == 20
    out = analyze.analyze(dict(analyze.DEFAULTS, exp_dir=pruned, device='cpu', proj_dim=16, max_examples=40,
                               max_celeb_facts=8, ood_sample=20, figures=False, dtype='float32'))
    assert {r['run'] for r in out['records'] if r.get('stopped') == 20} == set(runs) - kept
    assert out['correlations'] is None and set(out['ckpt_selection']) == kept      # 2 runs left: no correlation
    assert any(n.startswith('2 run(s) stopped by prune_at left out') for n in out['notes'])


@pytest.mark.slow                                            # 2 x 2 tiny sweeps
@pytest.mark.parametrize('kill_at', [25, 35])             # before the pruned group's first resume point (30), after
def test_resume_after_prune(pruned, tmp_path, kill_at):
    cfg = tiny(tmp_path, **PRUNE)
    train.train(cfg, stop_after=kill_at)
    train.train(dict(cfg, resume=True))
    for n in (f'celeb_frac{f}' for f in SWEEP['celeb_frac']):
        a, b = os.path.join(pruned, n), os.path.join(cfg['out_dir'], n)
        assert log_records(a) == log_records(b)
        assert same_weights(final_weights(a), final_weights(b), atol=0)


def test_live_figure_from_logs_alone(pruned, tmp_path):
    """plots.py draws the live figure of a sweep without analysis.json, checkpoints or torch."""
    exp = tmp_path / 'logs'
    # logs and configs only (the prune test may have analysed the sweep: its analysis stays behind too)
    shutil.copytree(pruned, exp, ignore=shutil.ignore_patterns('*.pt', 'analysis.json*', 'similarity.npz', 'figures'))
    code = ("import sys; sys.modules['torch'] = None; import plots; print(plots.plot(sys.argv[1]))")
    out = subprocess.run([sys.executable, '-c', code, str(exp)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count('.png') == 1 and os.path.getsize(exp / 'figures' / 'unif_live.png') > 5000   # the live figure alone
    runs = {r['name']: r for r in plots.live_runs(str(exp))}
    assert runs['celeb_frac0.0']['unif'] is None and runs['celeb_frac0.2']['unif'][0][-1] in (20, 40)
    assert sum(r['stopped'] is not None for r in runs.values()) == 2


@pytest.mark.parametrize('knobs, msg', [(dict(prune_at=1.0), 'prune_at=1.0 must be in'),
                                        (dict(prune_at=0.1, live_unif=False), 'prune_at needs live_unif'),
                                        (dict(prune_keep=0), 'prune_keep=0 must be >= 1'),
                                        (dict(live_unif_facts=-1), 'live_unif_facts=-1 must be >= 0')])
def test_bad_knobs(tmp_path, knobs, msg):
    with pytest.raises(ValueError, match=msg):
        train.train(tiny(tmp_path, **knobs))


def test_live_score_reads_the_headline():
    """records.live_score (no torch) reads the variant that metrics.HEADLINE declares, and prune_choice ranks by it."""
    u = lambda h, p: {'unification': {metrics.HEADLINE: h, metrics.PAPER_RATIO: p}}
    unif = [u(0.2, 0.9), u(0.6, 0.1), u(None, 0.5), {'unification': None, 'unification_null_reason': records.NO_PARALLEL}]
    assert records.live_score(unif[1]) == 0.6
    keep, stops = records.prune_choice(unif, list('abcd'), dict(prune_keep=2, prune_controls=False, prune_at=0.1), 7)
    assert keep == [0, 1] and sorted(stops) == [2, 3] and stops[2]['rank'] == 3 and stops[3]['rank'] is None
    keep, _ = records.prune_choice(unif, list('abcd'), dict(prune_keep=1, prune_controls=True, prune_at=0.1), 7)
    assert keep == [1, 3]
