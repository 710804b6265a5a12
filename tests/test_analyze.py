import json
import math
import os
import shutil

import numpy as np
import pytest
import torch

import analyze
import data_gen
import plots
from model import GPT, GPTConfig


def orthonormal(n, d, seed=0):
    q, _ = torch.linalg.qr(torch.randn(d, n, generator=torch.Generator().manual_seed(seed)))
    return q.T                                                       # (n, d) orthonormal rows


def parallel_reps(alpha, n_facts=6, n_tmpl=4, noise=0.0, seed=0):
    """Celebrity examples: rep = fact base + alpha * language direction (+ template noise)."""
    basis = orthonormal(n_facts + 2, 64, seed)
    fact = torch.arange(n_facts).repeat_interleave(2 * n_tmpl)
    lang = torch.arange(2).repeat_interleave(n_tmpl).repeat(n_facts)
    reps = basis[fact] + alpha * basis[n_facts + lang]
    reps = reps + noise * torch.randn(reps.shape, generator=torch.Generator().manual_seed(seed + 1))
    return reps, fact, lang, fact % 2


def brute_unification(reps, fact, lang, ftype):
    u = analyze.unit(reps)
    same, dist = [], []
    for f in fact.unique():
        X, Y = u[(fact == f) & (lang == 0)], u[(fact == f) & (lang == 1)]
        O = u[(fact != f) & (lang == 0) & (ftype == ftype[fact == f][0])]
        xx = X @ X.T
        sxx = (xx.sum() - xx.diagonal().sum()) / (len(X) * (len(X) - 1))
        sxy = (X @ Y.T).mean()
        same.append(sxy / sxx)
        dist.append(sxy / (X @ O.T).mean())
    return float(torch.stack(same).mean()), float(torch.stack(dist).mean())


def test_unification_known_answers():
    reps, fact, lang, ft = parallel_reps(0.0)
    res, why = analyze.unification(reps, fact, lang, ft)
    assert why is None and res['same_fact'] == pytest.approx(1.0, abs=1e-6)
    # languages separate along orthogonal directions: cos(X, Y) = 1 / (1 + alpha^2), cos(X, X) = 1
    scores = [analyze.unification(*parallel_reps(a))[0]['same_fact'] for a in (0.25, 0.5, 1.0, 2.0, 4.0)]
    assert scores == pytest.approx([1 / (1 + a * a) for a in (0.25, 0.5, 1.0, 2.0, 4.0)], abs=1e-5)
    assert all(a > b for a, b in zip(scores, scores[1:])) and scores[-1] < 0.1
    # the vectorised form equals a direct loop, both baselines, with template noise
    reps, fact, lang, ft = parallel_reps(0.7, noise=0.3, seed=3)
    res, _ = analyze.unification(reps + 0.5, fact, lang, ft)
    assert (res['same_fact'], res['distinct_fact']) == pytest.approx(brute_unification(reps + 0.5, fact, lang, ft), rel=1e-4)


def test_unification_null_reasons():
    reps, fact, lang, ft = parallel_reps(0.0)
    res, why = analyze.unification(reps, fact, torch.zeros_like(lang), ft)
    assert res is None and 'one language' in why


def test_r2_footprint():
    g = torch.arange(500) % 5
    means = torch.randn(5, 16, generator=torch.Generator().manual_seed(0))
    assert analyze.r2(means[g], g) == pytest.approx(1.0, abs=1e-6)
    x = torch.randn(2000, 16, generator=torch.Generator().manual_seed(1))
    assert analyze.r2(x, torch.randint(0, 2, (2000,), generator=torch.Generator().manual_seed(2))) < 0.01
    # equals the R^2 of a least-squares fit on the one-hot feature (intercept included)
    x = means[g] + torch.randn(500, 16, generator=torch.Generator().manual_seed(3))
    onehot = torch.nn.functional.one_hot(g).double()
    fit = onehot @ torch.linalg.lstsq(onehot, x.double()).solution
    ref = 1 - ((x - fit) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    assert analyze.r2(x, g) == pytest.approx(float(ref), abs=1e-5)


def test_mutual_information_known_answers():
    # the dataset's MI (mi_lang_attr, mi_token_lang) comes from data_gen.mutual_information(joint counts)
    mi = data_gen.mutual_information
    assert mi(np.full((3, 4), 7)) == pytest.approx(0.0, abs=1e-12)  # independent
    assert mi(np.diag([5, 5, 5, 5])) == pytest.approx(2.0)          # identical, uniform over 4: H = 2 bits
    table = np.array([[10, 5, 1], [2, 8, 14]])                      # direct count on a toy table
    xs = np.repeat([0, 0, 0, 1, 1, 1], table.ravel())
    ys = np.repeat([0, 1, 2, 0, 1, 2], table.ravel())
    n = len(xs)
    ref = sum((c := ((xs == i) & (ys == j)).sum()) / n * math.log2(c * n / (xs == i).sum() / (ys == j).sum())
              for i in range(2) for j in range(3))
    assert mi(table) == pytest.approx(ref)


@pytest.mark.parametrize('block', ['pythia', 'gemma2'])
def test_per_example_grads_match_autograd(block):
    torch.manual_seed(0)
    model = GPT(GPTConfig(block=block, n_layer=2, n_head=2, n_embd=16, vocab_size=23, block_size=12), seeds=[5])
    lens, plens = [9, 7, 12], [6, 4, 8]
    seqs = [torch.randint(3, 23, (n,)) for n in lens]
    idx = torch.zeros(3, 12, dtype=torch.long)
    for i, s in enumerate(seqs):
        idx[i, :len(s)] = s
    G = analyze.per_example_grads(model, idx, torch.tensor(plens), torch.tensor(lens))
    for i, (s, pl) in enumerate(zip(seqs, plens)):
        model.zero_grad()
        logits = model(s[None, None, :-1])[0, 0]
        # attribute loss: summed CE of tokens[pl : len-1] (the last token is <eos>)
        torch.nn.functional.cross_entropy(logits[pl - 1:-1], s[pl:-1], reduction='sum').backward()
        for n, p in model.named_parameters():
            torch.testing.assert_close(G[n][i], p.grad, atol=1e-5, rtol=1e-4)


def test_projection_preserves_cosines_within_jl():
    n, P, k = 20, 3000, 1024
    x = torch.randn(n, P, generator=torch.Generator().manual_seed(0))
    x[1:5] += 2 * x[0]                                               # a few strongly related vectors
    blocks = analyze.projection_blocks('w', P, k, seed=7, chunk=1000, dev='cpu', cache_bytes=0)
    y = sum(x[:, s:s + len(R)] @ R for s, R in blocks)
    cos = analyze.unit(x) @ analyze.unit(x).T
    cos_p = analyze.unit(y) @ analyze.unit(y).T
    # JL (Dasgupta-Gupta): k >= 4 ln(m) / (eps^2/2 - eps^3/3) keeps m points' norms within 1 +- eps;
    # inner products of unit vectors follow from the norms of their n^2 sums and differences
    m = 2 * n * n
    eps = next(e for e in np.linspace(0.01, 1, 1000) if k >= 4 * math.log(m) / (e * e / 2 - e ** 3 / 3))
    assert (cos - cos_p).abs().max() < eps
    again = analyze.projection_blocks('w', P, k, seed=7, chunk=1000, dev='cpu', cache_bytes=0)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(blocks, again))   # fixed given the seed
    other = analyze.projection_blocks('w', P, k, seed=8, chunk=1000, dev='cpu', cache_bytes=0)
    assert not torch.equal(blocks[0][1], other[0][1])


def test_selection_picks_the_oracle():
    target = np.random.default_rng(0).random(16)
    sel = analyze.select_runs({'ood_itself': target, 'noise': np.random.default_rng(1).random(16),
                               'nothing': np.full(16, np.nan)}, target, 300, 1 / 3)
    assert sel['ood_itself'] == sel['oracle']
    assert sel['nothing'] == pytest.approx(sel['random']) and sel['oracle'] > sel['random']


def test_language_probe():
    g = torch.Generator().manual_seed(0)
    lang = torch.arange(400) % 2
    x = torch.randn(400, 32, generator=g)
    train = torch.rand(400, generator=g) < 0.5
    assert analyze.lang_probe(x + 3 * lang[:, None], lang, train) == 1.0
    assert abs(analyze.lang_probe(x, lang, train) - 0.5) < 0.12


def test_name_confusion_counts_namesake_errors():
    # word tokens: attribute ids 10 (person 0's city), 11 (namesake person 1's), 12 (a stranger's); 2 = <eos>
    rd = {'namesake': {(0, 'birth_city'): {'B', 'A'}}, 'n_values': {'birth_city': 3},
          'attr_map': {('birth_city', (10,)): 'A', ('birth_city', (11,)): 'B', ('birth_city', (12,)): 'C'}}
    ex = {'tokens': [1, 5, 6, 10, 2], 'prompt_len': 3, 'person': 0, 'fact_type': 'birth_city', 'attribute': 'A'}
    pred = torch.tensor([[10, 2], [11, 2], [12, 2], [11, 2]])
    correct, nc = analyze.name_confusion(pred, [ex] * 4, rd)
    assert correct.tolist() == [True, False, False, False]
    assert nc['n_errors'] == 3 and nc['share'] == pytest.approx(2 / 3) and nc['chance'] == pytest.approx(0.5)


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope='module')
def tiny_exp(tmp_path_factory):
    import train
    root = tmp_path_factory.mktemp('analyze')
    cfg = dict(train.DEFAULTS, out_dir=str(root / 'out' / 'exp'), data_dir=str(root / 'data'), n_people=60,
               n_first_names=20, n_last_names=20, n_cities=10, n_templates=3, n_layer=2, n_head=2, n_embd=32,
               batch_size=32, max_iters=60, warmup_iters=5, eval_interval=30, n_ckpts=3, log_interval=10,
               eval_max=200, device='cpu', compile=False, sweep={'celeb_frac': [0.0, 0.2]})
    return train.train(cfg)


def tiny_cfg(exp, **kw):
    return dict(analyze.DEFAULTS, exp_dir=exp, device='cpu', proj_dim=128, max_examples=200, max_celeb_facts=20,
                ood_sample=200, select_repeats=50, sim_ckpts=3, **kw)


def test_end_to_end_tiny_run(tiny_exp):
    out = analyze.analyze(tiny_cfg(tiny_exp))
    with open(os.path.join(tiny_exp, 'analysis.json')) as f:
        assert json.load(f)['selection'] == out['selection']
    runs = ['celeb_frac0.0', 'celeb_frac0.2']
    figs = {'acc_vs_knobs', 'unif_vs_ood', 'mi_vs_footprint', 'extract_vs_footprint', 'footprint_early',
            'acc_curves', 'name_confusion', 'selection'} | {f'sim_{k}_{r}' for k in ('act', 'grad') for r in runs}
    assert set(os.listdir(os.path.join(tiny_exp, 'figures'))) == {f + '.png' for f in figs}
    shutil.rmtree(os.path.join(tiny_exp, 'figures'))             # the figures are redrawn from the files alone
    plots.plot(tiny_exp)
    assert set(os.listdir(os.path.join(tiny_exp, 'figures'))) == {f + '.png' for f in figs}
    recs = out['records']
    n_ckpts = sum(len([f for f in os.listdir(os.path.join(tiny_exp, r)) if f.startswith('ckpt_')]) for r in runs)
    assert len(recs) == n_ckpts and {r['run'] for r in recs} == set(runs)
    for r in recs:
        assert all(0 <= v <= 1 + 1e-6 for fp in r['footprint']['lang'].values() for v in fp.values())
        assert set(r['footprint']['lang']['grad']) == {'emb', 'L1', 'L2', 'head', 'concat'}
        if r['run'] == 'celeb_frac0.0':                          # no parallel data: explicit null with the reason
            assert r['unification'] is None and 'no celebrity' in r['unification_null_reason']
        else:
            assert set(r['unification']['same_fact']['act']) == {'emb', 'L1', 'L2', 'concat'}
            assert all(math.isfinite(v) for v in r['unification']['same_fact']['grad'].values())
            assert 0 <= r['lang_probe']['act']['concat'] <= 1
    final = [r for r in recs if r['final'] and r['run'] == 'celeb_frac0.2'][0]
    with open(os.path.join(tiny_exp, 'celeb_frac0.2', 'log.jsonl')) as f:
        log = [json.loads(l) for l in f]
    assert final['acc']['ood_test']['all'] == next(l['acc'] for l in log if l['iter'] == final['iter'] and
                                                   l['split'] == 'ood_test' and l['fact_type'] == 'all' and l['lang'] == 'all')
    # the dataset's MI equals a direct count on its training split
    train = data_gen.load_split(json.load(open(os.path.join(tiny_exp, 'celeb_frac0.2', 'config.json')))['dataset_path'], 'train')
    by = [(e['lang'], e['attribute']) for e in train if e['fact_type'] == 'birth_city']
    joint = np.zeros((2, 10))
    vals = sorted({a for _, a in by})
    for l, a in by:
        joint[l, vals.index(a)] += 1
    assert final['mi_lang_attr']['birth_city'] == pytest.approx(data_gen.mutual_information(joint))
    assert set(out['selection']) >= {'id_test', 'ood_1pct', 'ood_10pct', 'unification', 'unif_x_id', 'oracle'}


def test_missing_or_partial_experiment(tiny_exp, tmp_path):
    with pytest.raises(SystemExit, match='experiment directory not found'):
        analyze.analyze(tiny_cfg(str(tmp_path / 'nope')))
    with pytest.raises(SystemExit, match='no runs in'):
        analyze.analyze(tiny_cfg(str(tmp_path)))
    part = str(tmp_path / 'part')
    shutil.copytree(tiny_exp, part, ignore=shutil.ignore_patterns('*.pt', 'figures'))
    shutil.copy(os.path.join(tiny_exp, 'celeb_frac0.0', 'ckpt_0.pt'), os.path.join(part, 'celeb_frac0.0'))
    with pytest.raises(SystemExit, match=r'missing final checkpoint .*ckpt_60\.pt'):
        analyze.analyze(tiny_cfg(part))
    os.remove(os.path.join(part, 'celeb_frac0.0', 'log.jsonl'))
    with pytest.raises(SystemExit, match=r'missing .*celeb_frac0\.0.log\.jsonl'):
        analyze.analyze(tiny_cfg(part))


def test_command_line_takes_the_experiment_directory():
    cfg = analyze.parse_args(['out/some_exp', '--proj_dim=64'])
    assert cfg['exp_dir'] == 'out/some_exp' and cfg['proj_dim'] == 64
