"""analyze.py: representations on the run axis, the batched pass = the per-run path, end to end."""
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import analyze
import data_gen
import metrics
import plots
import records
import represent
import train
import checkpoints
from checkpoints import load_checkpoint
from machine import autocast
from model import GPT, GPTConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize('how', ['vmap', 'runs'])
@pytest.mark.parametrize('block', ['pythia', 'gemma2'])
def test_per_example_grads_match_autograd(block, how):
    """Per-example gradients of two runs at once, both ways = autograd on each run's model and example alone."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(block=block, n_layer=2, n_head=2, n_embd=16, vocab_size=23, block_size=12, n_runs=2),
                seeds=[5, 6])
    lens, plens = [[9, 7, 12], [5, 12, 0]], [[6, 4, 8], [3, 10, 1]]       # run 1's last example is padding
    idx = torch.zeros(2, 3, 12, dtype=torch.long)
    for r in range(2):
        for i, n in enumerate(lens[r]):
            idx[r, i, :n] = torch.randint(3, 23, (n,))
    G = represent.per_example_grads(model, idx, torch.tensor(plens), torch.tensor(lens), how=how)
    for r in range(2):
        for i, (n, pl) in enumerate(zip(lens[r], plens[r])):
            model.zero_grad()
            s = idx[r, i, :n]
            if n:
                logits = model(s[None, None, :-1].expand(2, 1, -1))[r, 0]
                # attribute loss: summed CE of tokens[pl : len-1] (the last token is <eos>)
                torch.nn.functional.cross_entropy(logits[pl - 1:-1], s[pl:-1], reduction='sum').backward()
            for name, p in model.named_parameters():
                ref = p.grad[r] if p.grad is not None else torch.zeros_like(p[r])
                torch.testing.assert_close(G[name][r, i], ref, atol=1e-5, rtol=1e-4)


def test_gradient_norms_by_layer_group_before_and_after_adam():
    """gradient_reps' norms: per example and layer group, the squared norm of the unprojected gradient as it
    is and divided by sqrt(Adam v) + eps, equal to per_example_grads' own (tested above against autograd);
    analyze.grad_share turns them into each group's share by language, summing to 1 over the groups."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(block='pythia', n_layer=2, n_head=2, n_embd=16, vocab_size=23, block_size=12, n_runs=2),
                seeds=[5, 6])
    v = {n: torch.rand(2, *p.shape[1:]) * 1e-4 for n, p in model.named_parameters()}          # one Adam v per run
    ckpts = [dict(adam_v={n: x[r] for n, x in v.items()}, adam_step=None, adam_eps=1e-8) for r in range(2)]
    ex = [dict(tokens=torch.randint(3, 23, (n,)).tolist(), prompt_len=pl, lang=i % 2, template=0, person=i, fact_type='a')
          for i, (n, pl) in enumerate([(9, 6), (7, 4), (12, 8)])]
    cfg = dict(analyze.DEFAULTS, proj_dim=8, grad_precond='adam', grad_batch=128, dtype='float32', proj_dtype='float32',
               grad_impl='vmap')
    reps, sq = represent.gradient_reps(model, ckpts, [ex, ex[:2]], cfg, [0.95, 0.95], norms=True)
    assert represent.gradient_reps(model, ckpts, [ex, ex[:2]], cfg, [0.95, 0.95])[1] is None
    idx, plen, tlen = represent.encode_runs([ex, ex[:2]], 'cpu')
    G = represent.per_example_grads(model, idx, plen, tlen)
    for r, n_ex in ((0, 3), (1, 2)):
        assert set(sq[r]) == {'emb', 'L1', 'L2', 'head'} and reps[r]['concat'].shape == (n_ex, 8)
        for group in sq[r]:
            names = [n for n in G if represent.layer_group(n) == group]
            raw = sum(G[n][r, :n_ex].flatten(1).square().sum(-1) for n in names)
            adam = sum((G[n][r, :n_ex] / (v[n][r].sqrt() + 1e-8)).flatten(1).square().sum(-1) for n in names)
            torch.testing.assert_close(sq[r][group], torch.stack([raw, adam], -1), rtol=1e-4, atol=0)
    share = analyze.grad_share(sq[0], ex)
    for how in ('raw', 'adam'):
        assert all(len(s) == 2 for s in share[how].values())                     # languages 0 and 1
        assert [round(sum(s[l] for s in share[how].values()), 3) for l in (0, 1)] == [1.0, 1.0]
    total = sum(sq[0].values())[1, 1]                                            # example 1 is language 1's only one
    assert share['adam']['emb'][1] == round(float(sq[0]['emb'][1, 1] / total), 4)


@pytest.mark.parametrize('kind', ['gaussian', 'sketch'])
def test_projection_preserves_cosines_within_jl(kind):
    n, P, k = 20, 3000, 1024
    x = torch.randn(n, P, generator=torch.Generator().manual_seed(0))
    x[1:5] += 2 * x[0]                                               # a few strongly related vectors
    cfg = dict(analyze.DEFAULTS, proj_kind=kind, proj_dim=k, proj_seed=7, proj_dtype='float32')
    y = represent.project('w', x, cfg)
    cos = metrics.unit(x) @ metrics.unit(x).T
    cos_p = metrics.unit(y) @ metrics.unit(y).T
    # JL (Dasgupta-Gupta): k >= 4 ln(m) / (eps^2/2 - eps^3/3) keeps m points' norms within 1 +- eps;
    # inner products of unit vectors follow from the norms of their n^2 sums and differences
    m = 2 * n * n
    eps = next(e for e in np.linspace(0.01, 1, 1000) if k >= 4 * math.log(m) / (e * e / 2 - e ** 3 / 3))
    assert (cos - cos_p).abs().max() < eps
    assert torch.equal(y, represent.project('w', x, cfg))                         # fixed given the seed
    assert not torch.equal(y, represent.project('w', x, dict(cfg, proj_seed=8)))


def test_name_confusion_counts_namesake_errors():
    # word tokens: attribute ids 10 (person 0's city), 11 (namesake person 1's), 12 (a stranger's); 2 = <eos>
    rd = {'namesake': {(0, 'birth_city'): {'B', 'A'}}, 'n_values': {'birth_city': 3}, 'eos': 2,
          'attr_map': {('birth_city', (10,)): 'A', ('birth_city', (11,)): 'B', ('birth_city', (12,)): 'C'}}
    ex = {'tokens': [1, 5, 6, 10, 2], 'prompt_len': 3, 'person': 0, 'fact_type': 'birth_city', 'attribute': 'A'}
    pred = torch.tensor([[10, 2], [11, 2], [12, 2], [11, 2]])
    correct, nc = analyze.name_confusion(pred, [ex] * 4, rd)
    assert correct.tolist() == [True, False, False, False]
    assert nc['n_errors'] == 3 and nc['share'] == pytest.approx(2 / 3) and nc['chance'] == pytest.approx(0.5)


def test_acc_by_n_templates():
    rd = {'n_train': {(0, 'birth_year'): 1, (1, 'birth_year'): 3, (2, 'birth_year'): 3}}
    exs = [{'person': p, 'fact_type': 'birth_year'} for p in (0, 1, 2, 2)]
    assert analyze.acc_by_n_templates([True, False, True, True], exs, rd) == {
        '1': {'acc': 1.0, 'n': 1}, '3': {'acc': 2 / 3, 'n': 3}}


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope='module')
def tiny_exp(tmp_path_factory):
    root = tmp_path_factory.mktemp('analyze')
    cfg = dict(train.DEFAULTS, out_dir=str(root / 'out' / 'exp'), data_dir=str(root / 'data'), n_people=60,
               n_first_names=20, n_last_names=20, n_cities=10, n_templates=3, n_layer=2, n_head=2, n_embd=32,
               batch_size=32, max_iters=60, warmup_iters=5, eval_interval=30, n_ckpts=3, ckpt_first=5,
               log_interval=10, eval_max=200, learning_rate=1e-2, device='cpu', compile=False,
               sweep={'celeb_frac': [0.0, 0.1, 0.2]})
    return train.train(cfg)


def tiny_cfg(exp, **kw):
    return dict(dict(analyze.DEFAULTS, exp_dir=exp, device='cpu', proj_dim=128, max_examples=200, max_celeb_facts=20,
                     ood_sample=200, select_repeats=50, sim_ckpts=3, max_ckpts=0), **kw)


RUNS = ['celeb_frac0.0', 'celeb_frac0.1', 'celeb_frac0.2']


@pytest.mark.slow                                        # end to end
def test_end_to_end_tiny_run(tiny_exp):
    out = analyze.analyze(tiny_cfg(tiny_exp))
    with open(os.path.join(tiny_exp, 'analysis.json')) as f:
        assert json.load(f)['selection'] == out['selection']
    figs = {'acc_vs_knobs', 'unif_vs_ood', 'mi_vs_footprint', 'extract_vs_footprint', 'footprint_early',
            'acc_curves', 'name_confusion', 'selection', 'acc_by_n_templates', 'contrast', 'unif_live'} | \
        {f'sim_{k}_{r}' for k in ('act', 'grad') for r in RUNS}
    assert set(os.listdir(os.path.join(tiny_exp, 'figures'))) == {f + '.png' for f in figs}
    shutil.rmtree(os.path.join(tiny_exp, 'figures'))             # the figures are redrawn from the files alone
    plots.plot(tiny_exp)
    assert set(os.listdir(os.path.join(tiny_exp, 'figures'))) == {f + '.png' for f in figs}
    recs = out['records']
    n_ckpts = sum(len([f for f in os.listdir(os.path.join(tiny_exp, r)) if f.startswith('ckpt_')]) for r in RUNS)
    assert len(recs) == n_ckpts and {r['run'] for r in recs} == set(RUNS)
    for r in recs:
        assert all(0 <= v <= 1 + 1e-6 for fp in r['footprint']['lang'].values() for v in fp.values())
        assert set(r['footprint']['lang']['grad']) == {'emb', 'L1', 'L2', 'head', 'no_emb', 'concat'}
        if r['run'] == 'celeb_frac0.0':                          # no parallel data: explicit null with the reason
            assert r['unification'] is None and 'no celebrity' in r['unification_null_reason']
        else:
            assert set(r['unification']['normalized']['act']) == {'emb', 'L1', 'L2', 'concat'}
            assert all(math.isfinite(v) for v in r['unification']['same_fact']['grad'].values())
            assert 0 <= r['lang_probe']['act']['concat'] <= 1
    final = [r for r in recs if r['final'] and r['run'] == 'celeb_frac0.2'][0]
    # recall by the fact's number of training templates, and the OOD predictions kept for selection
    by_n = final['acc_by_n_train_templates']
    assert sum(v['n'] for v in by_n['ood_test'].values()) == len(final['ood_correct']) == final['n_examples']['ood']
    assert set(by_n['id_test']) <= {'1', '2'} and by_n['id_test']
    # the dataset's MI equals a direct count on its training split
    cfg = json.load(open(os.path.join(tiny_exp, 'celeb_frac0.2', 'config.json')))
    split = data_gen.load_split(cfg['dataset_path'], 'train')
    by = [(e['lang'], e['attribute']) for e in split if e['fact_type'] == 'birth_city']
    joint = np.zeros((2, 10))
    vals = sorted({a for _, a in by})
    for l, a in by:
        joint[l, vals.index(a)] += 1
    assert final['mi_lang_attr']['birth_city'] == pytest.approx(data_gen.mutual_information(joint))
    assert set(out['selection']) >= {'id_test', 'ood_1pct', 'ood_10pct', 'unification', 'unif_x_id', 'oracle'}
    cs = out['ckpt_selection']['celeb_frac0.2']
    assert set(cs) == {*analyze.CKPT_RULES, 'last_best_ood', 'last_best_id', 'oracle', 'final'}
    assert cs['last_best_ood']['ood'] == cs['oracle'] and out['ckpt_selection']['celeb_frac0.0']['unification'] is None
    # one headline score, the paper's ratio beside it; the unscored run (no parallel data) is ranked, not dropped
    assert 'better_variant' not in out and set(out['correlations']) == set(metrics.VARIANTS)
    assert 'unification_paper' in out['selection'] and out['selection']['unification_paper'] is not None
    assert 'selection_scored' in out                                  # None here: fewer than 3 runs with a score
    # similarity matrices only for the figures' runs and checkpoints: upper triangles as uint8 codes
    with np.load(os.path.join(tiny_exp, 'similarity.npz')) as z:
        assert {k.split('|')[0] for k in z.files} == set(RUNS) and all(z[k].dtype == np.uint8 for k in z.files)
        assert len({tuple(k.split('|')[:2]) for k in z.files}) == 3 * 3
        m = plots.square(z[z.files[0]])                           # back to a symmetric matrix of cosines
        assert np.allclose(m, m.T) and np.allclose(np.diag(m), 1, atol=0.01) and m.min() >= -1


def flat(x, key=''):
    """Every number of a nested record, by path."""
    if isinstance(x, dict):
        return {k: v for kk, vv in x.items() for k, v in flat(vv, f'{key}/{kk}').items()}
    return {key: x} if isinstance(x, (int, float)) and not isinstance(x, bool) else {}


@pytest.mark.slow                                        # end to end
def test_batched_pass_equals_per_run(tiny_exp, tmp_path):
    """Runs analysed together in one batched pass give the numbers of each run analysed alone."""
    together = analyze.analyze(tiny_cfg(tiny_exp, run_batch=3, figures=False))['records']
    alone = analyze.analyze(tiny_cfg(tiny_exp, run_batch=1, figures=False))['records']
    assert [(r['run'], r['iter']) for r in together] == [(r['run'], r['iter']) for r in alone]
    for a, b in zip(together, alone):
        fa, fb = flat(a), flat(b)
        assert fa.keys() == fb.keys()
        for k in fa:
            assert fa[k] == pytest.approx(fb[k], abs=1e-5, rel=1e-4), (a['run'], a['iter'], k)
        assert a['ood_correct'] == b['ood_correct'] if a['final'] else True


def test_teacher_forced_accuracy_equals_greedy_decoding(tiny_exp):
    """train.evaluate (one forward pass, teacher forcing) and represent.predict (greedy decoding) agree
    on every example of every split."""
    run = os.path.join(tiny_exp, 'celeb_frac0.2')
    cfg = json.load(open(os.path.join(run, 'config.json')))
    meta = data_gen.load_meta(cfg['dataset_path'])
    model, _ = load_checkpoint(os.path.join(run, 'ckpt_60.pt'), vocab=meta['vocab'])
    for split in data_gen.SPLITS:
        exs = data_gen.load_split(cfg['dataset_path'], split)
        data = train.stack_splits([exs], [meta], 'cpu')
        forced = train.evaluate(model, data, autocast('cpu', 'float32'))[0][0].numpy()
        max_attr = max(len(records.attribute_tokens(e)) for e in exs)
        greedy = represent.decoded_correct(represent.predict(model, [exs], max_attr)[0], exs)
        assert forced.tolist() == greedy.tolist() and 0 < greedy.mean() < 1


@pytest.mark.slow                                        # end to end
def test_trackstar_option(tiny_exp):
    out = analyze.analyze(tiny_cfg(tiny_exp, grad_precond='trackstar', figures=False, max_ckpts=2))
    final = [r for r in out['records'] if r['final'] and r['unification']]
    assert final and all(math.isfinite(v) for r in final for v in r['unification']['same_fact']['grad'].values())
    assert out['settings']['grad_precond'] == 'trackstar'


@pytest.mark.slow                                        # end to end
def test_unreadable_checkpoint_is_skipped_up_front(tiny_exp, tmp_path, capsys):
    exp = str(tmp_path / 'exp')
    shutil.copytree(tiny_exp, exp, ignore=shutil.ignore_patterns('figures'))
    path = os.path.join(exp, 'celeb_frac0.2', 'ckpt_5.pt')
    open(path, 'wb').write(open(path, 'rb').read()[:1000])                    # torn
    out = analyze.analyze(tiny_cfg(exp, figures=False))
    assert 'skipping 1 unreadable checkpoint' in capsys.readouterr().out
    assert ('celeb_frac0.2', 5) not in {(r['run'], r['iter']) for r in out['records']}
    assert any('ckpt_5.pt' in n for n in out['notes']) and len(out['records']) > 3


def test_missing_or_partial_experiment(tiny_exp, tmp_path):
    with pytest.raises(ValueError, match='experiment directory not found'):
        analyze.analyze(tiny_cfg(str(tmp_path / 'nope')))
    with pytest.raises(ValueError, match='no runs in'):
        analyze.analyze(tiny_cfg(str(tmp_path)))
    part = str(tmp_path / 'part')
    shutil.copytree(tiny_exp, part, ignore=shutil.ignore_patterns('*.pt', 'figures'))
    shutil.copy(os.path.join(tiny_exp, 'celeb_frac0.0', 'ckpt_0.pt'), os.path.join(part, 'celeb_frac0.0'))
    with pytest.raises(ValueError, match=r'missing or unreadable final checkpoint .*ckpt_60\.pt'):
        analyze.analyze(tiny_cfg(part))
    os.remove(os.path.join(part, 'celeb_frac0.0', 'log.jsonl'))
    with pytest.raises(ValueError, match=r'missing .*celeb_frac0\.0.log\.jsonl'):
        analyze.analyze(tiny_cfg(part))


@pytest.fixture
def read_only(tmp_path):
    """-> make(path): the folder turns read-only (a read-only bind mount as root, whom file modes do
    not stop; chmod otherwise), undone at teardown; skipped where neither works."""
    undo = []

    def make(path):
        if os.geteuid() == 0:
            if subprocess.run(['mount', '--bind', path, path], capture_output=True).returncode:
                pytest.skip('cannot bind-mount here')
            undo.append(['umount', path])
            subprocess.run(['mount', '-o', 'remount,bind,ro', path], check=True)
        else:
            os.chmod(path, 0o555)
            undo.append(lambda: os.chmod(path, 0o755))
    yield make
    for u in reversed(undo):
        subprocess.run(u) if isinstance(u, list) else u()


def test_read_only_output_fails_at_the_start(tiny_exp, tmp_path, read_only, monkeypatch):
    """analyze.py into a folder it cannot write: a one-line error naming analysis.json, before any work."""
    exp = str(tmp_path / 'exp')
    shutil.copytree(tiny_exp, exp, ignore=shutil.ignore_patterns('figures', 'analysis.json', 'similarity.npz'))
    read_only(exp)
    monkeypatch.setattr(analyze, 'prepare_run', lambda *a: pytest.fail('the analysis started'))
    with pytest.raises(OSError, match=r'^write error: cannot write .*exp/analysis\.json: \S') as e:
        analyze.analyze(tiny_cfg(exp))
    assert '\n' not in str(e.value)


def test_laptop_settings_are_picked_by_device():
    cfg, line = analyze.pick_settings(analyze.DEFAULTS, 'cpu')
    assert cfg['proj_kind'] == 'sketch' and cfg['proj_dim'] == 512 and cfg['max_ckpts'] == 8
    assert 'proj_kind=sketch' in line
    gpu, _ = analyze.pick_settings(analyze.DEFAULTS, 'cuda')
    assert gpu['proj_kind'] == 'gaussian' and gpu['proj_dim'] == 4096 and gpu['max_ckpts'] == 0
    mine, _ = analyze.pick_settings(dict(analyze.DEFAULTS, proj_dim=64, max_ckpts=0), 'cpu')
    assert mine['proj_dim'] == 64 and mine['max_ckpts'] == 0               # what the user set stays


@pytest.mark.slow                                        # end to end
def test_command_line():
    cfg = analyze.parse_args(['out/some_exp', '--proj_dim=64'])
    assert cfg['exp_dir'] == 'out/some_exp' and cfg['proj_dim'] == 64
    run = subprocess.run([sys.executable, 'analyze.py', '--help'], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and '--grad_precond=' in run.stdout and "one of 'adam', 'trackstar'" in run.stdout
    run = subprocess.run([sys.executable, 'analyze.py', 'out/does_not_exist'], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 1 and run.stderr.strip() == "analyze: experiment directory not found: 'out/does_not_exist'"


def test_checkpoint_selection_primary_and_variants():
    """The candidates are the checkpoints from the first whose ID accuracy reaches ckpt_min_id x the
    run's best; the primary rule picks the highest unification x ID among them, the rule before them
    (unification_any) the highest unification after initialisation; the reference is the last best-ID
    checkpoint."""
    def rec(it, idacc, ood, u, paper=None):
        return dict(run='r', iter=it, acc={'id_test': {'all': idacc}, 'ood_test': {'all': ood}},
                    unification={'normalized': {'act': {'concat': u}}, 'same_fact': {'act': {'concat': paper}}})
    recs = [rec(0, 0.0, 0.0, 1.5, 2.0), rec(100, 0.5, 0.4, 1.02, 0.9), rec(200, 0.92, 0.90, 0.990, 0.5),
            rec(400, 0.99, 0.97, 0.985), rec(800, 0.80, 0.70, 0.999), rec(900, 1.0, 0.96, None)]
    cfg = dict(analyze.DEFAULTS)
    sel, summary = analyze.checkpoint_selection(recs, cfg)
    r = sel['r']
    assert r['unification_any']['iter'] == 100             # plain argmax; iteration 0 (random weights) is no candidate
    assert r['unification']['iter'] == 800                 # candidates from iter 200 (ID 0.92 >= 0.9 x 1.0), even past a dip
    assert r['unification_plus']['iter'] == 400            # 0.985 x 0.99 beats 0.990 x 0.92 and 0.999 x 0.80
    assert r['unification_paper']['iter'] == 200           # its only score among the candidates
    assert r['last_best_id']['iter'] == 900 and r['last_best_ood']['iter'] == 400 and r['oracle'] == 0.97
    s = summary['unification_plus']
    assert s['n_runs'] == 1 and s['ood'] == 0.97 and s['last_best_id'] == 0.96 and s['earlier'] == 0.0
    # ID saturating only at the last checkpoint: the one candidate has no score, so no pick (not a random one)
    assert analyze.checkpoint_selection(recs, dict(cfg, ckpt_min_id=0.999))[0]['r']['unification_plus'] is None
    # a run without any score: no pick, and no summary for the rule
    bare = [dict(rr, unification=None) for rr in recs]
    sel, summary = analyze.checkpoint_selection(bare, cfg)
    assert sel['r']['unification_plus'] is None and sel['r']['unification_any'] is None and summary['unification_plus'] is None


def test_footprint_peak_is_after_initialisation():
    """A footprint that only falls from its random start: the initial value is the baseline, the peak
    is the largest value after it (here the first trained checkpoint), the final value the last."""
    c = analyze.footprint_course([0, 10, 100, 1000], [0.05, 0.03, 0.02, 0.01])
    assert c == dict(init=0.05, peak=0.03, peak_iter=10, final=0.01)
    c = analyze.footprint_course([0, 10, 100], [0.01, 0.02, None])
    assert c == dict(init=0.01, peak=0.02, peak_iter=10, final=0.02)
    assert analyze.footprint_course([0], [0.3]) == dict(init=0.3, peak=None, peak_iter=None, final=None)


def test_summaries_need_three_runs():
    recs = [dict(run=n, iter=10, final=True, acc={'id_test': {'all': 1.0}, 'ood_test': {'all': 0.5}}, unification=None)
            for n in ('a', 'b')]
    notes = []
    out = analyze.summarise(recs, dict(analyze.DEFAULTS), notes)
    assert out['selection'] is None and out['correlations'] is None
    assert out['selection_table'] == notes and 'cross-run measures need >= 3 runs' in notes[0]


@pytest.fixture(scope='module')
def one_run_exp(tiny_exp, tmp_path_factory):
    """An experiment of one run (a copy of tiny_exp's celeb_frac0.2), analysed: -> (exp, analysis, output)."""
    exp = str(tmp_path_factory.mktemp('one') / 'exp')
    shutil.copytree(os.path.join(tiny_exp, 'celeb_frac0.2'), os.path.join(exp, 'celeb_frac0.2'))
    run = subprocess.run([sys.executable, 'analyze.py', exp, '--device=cpu', '--proj_dim=128', '--max_examples=200',
                          '--max_celeb_facts=20', '--ood_sample=200', '--sim_ckpts=2', '--max_ckpts=0'],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return exp, json.load(open(os.path.join(exp, 'analysis.json'))), run.stdout


@pytest.mark.slow                                        # end to end
def test_one_run_says_cross_run_measures_need_three(one_run_exp):
    """One run: no selection table or correlations (one number each, noise), but a line that says why;
    no figure across runs; the per-run figures are drawn."""
    exp, a, out = one_run_exp
    assert out.count('cross-run measures need >= 3 runs (got 1)') == 1            # said once
    assert 'run selection over' not in out and 'pearson' not in out
    assert a['selection'] is None and a['correlations'] is None
    figs = set(os.listdir(os.path.join(exp, 'figures')))
    assert {'acc_curves.png', 'selection.png', 'sim_act_celeb_frac0.2.png'} <= figs
    assert not figs & {'unif_vs_ood.png', 'mi_vs_footprint.png', 'extract_vs_footprint.png', 'acc_vs_knobs.png'}


@pytest.mark.slow                                        # end to end
def test_similarity_storage_is_bounded_for_a_32_run_sweep(one_run_exp):
    """Only sim_runs x sim_ckpts (run, checkpoint) pairs keep matrices, whatever the sweep's size; and
    what analyze.py writes per matrix (measured in its similarity.npz: one byte per cosine of the upper
    triangle) keeps a sweep at the defaults (400 examples, 2 kinds x 4 layer groups) under 12.8 MB before
    compression."""
    runs = [dict(name=f'r{i}', ckpts={it: '' for it in checkpoints.ckpt_iters(12000, 20)}, cfg={'model_args': {}},
                 log={12000: {'ood_test': {'all': i / 32}}}) for i in range(32)]
    rds = {r['name']: {'meta': {'vocab': []}} for r in runs}
    keep, batches = analyze.plan(runs, rds, dict(analyze.DEFAULTS, run_batch=16))
    assert len(keep) == analyze.DEFAULTS['sim_runs'] * analyze.DEFAULTS['sim_ckpts'] == 20
    assert {name for name, _ in keep} == {'r0', 'r10', 'r21', 'r31'}          # spread over final OOD
    assert len(batches) == 21 * 2 and all(len(b) == 16 for b in batches)   # 21 iterations x 2 passes of 16 runs
    exp, a, _ = one_run_exp
    with np.load(os.path.join(exp, 'similarity.npz')) as z:
        stored = {k: z[k] for k in z.files}
    pairs = {tuple(k.split('|')[:2]) for k in stored}
    assert len(pairs) == 2                                                   # sim_ckpts=2 checkpoints of one run
    per_pair = {p: [v for k, v in stored.items() if tuple(k.split('|')[:2]) == p] for p in pairs}
    n = int(round((math.sqrt(8 * stored[next(iter(stored))].size + 1) - 1) / 2))   # examples per matrix
    bytes_per_cosine = max(v.nbytes for v in stored.values()) / (n * (n + 1) / 2)
    matrices_per_pair = max(len(v) for v in per_pair.values())              # kinds x layer groups
    assert n > 10 and matrices_per_pair <= 2 * 4
    n_default = analyze.DEFAULTS['sim_values_per_type'] * 4 * analyze.DEFAULTS['sim_per_value']
    assert len(keep) * 2 * 4 * bytes_per_cosine * n_default * (n_default + 1) / 2 <= 12.9e6


def test_unification_times_id_rises_with_both_also_below_zero():
    """Known by construction: at equal unification the more accurate run scores higher, at equal ID the
    more unified one, whether unification is positive or negative; NaN stays NaN."""
    u = np.array([0.5, 0.5, -0.2, -0.2, -0.4, np.nan])
    ids = np.array([1.0, 0.5, 1.0, 0.5, 1.0, 1.0])
    s = analyze.unif_x_id(u, ids)
    assert s[0] > s[1] and s[2] > s[3] and s[2] > s[4] and s[1] > s[2] and np.isnan(s[5])
    assert s[0] == 0.5 and s[1] == 0.25 and s[3] == pytest.approx(-0.4)
