import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import plots

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FACT_TYPES = ['birth_year', 'birth_city', 'death_year', 'death_city']
VARIANTS = ['normalized', 'same_fact', 'distinct_fact']
MAX_PNG = 400_000                                                    # bytes per figure


def fake_sim(rng, n, unif, noise=0.12):
    """(n, n) float16 cosine similarities of examples ordered by fact type > value > language:
    blocks per value (4 per fact type: 2 values x 2 languages), cross-language blocks at
    `unif` x the same-language level, plus symmetric noise (the worst case for PNG size)."""
    block = np.arange(n) * 16 // n                                     # 16 sub-blocks: 4 types x 2 values x 2 langs
    ftype, value, lang = block // 4, block // 2, block % 2
    same_v = value[:, None] == value[None]
    m = np.where(same_v, np.where(lang[:, None] == lang[None], 0.7, 0.7 * unif), 0.0)
    m += 0.2 * ((ftype[:, None] == ftype[None]) & ~same_v)
    e = rng.normal(0, noise, (n, n))
    m = np.clip(m + (e + e.T) / 2 ** 0.5, -1, 1)
    np.fill_diagonal(m, 1.0)
    return m.astype(np.float16)


def layer_vals(rng, kind, lo, hi):
    layers = ['emb', 'L1', 'L2', 'L3', 'L4', 'concat'] + (['head'] if kind == 'grad' else [])
    return {l: float(rng.uniform(lo, hi)) for l in layers}


def fake_record(rng, name, knobs, it, final, ood, templates):
    """One analysis record of the schema analyze.py writes (and the fields it is gaining)."""
    acc = {s: {'all': a, **{ft: float(np.clip(a + rng.normal(0, 0.03), 0, 1)) for ft in FACT_TYPES}}
           for s, a in (('train', 1.0), ('id_test', 0.9), ('ood_test', ood))}
    unif = None if knobs['celeb_frac'] == 0 else {
        v: {k: layer_vals(rng, k, 0.2, 1.0) for k in ('act', 'grad')} for v in VARIANTS}
    if unif:
        unif['distinct_fact']['grad']['L1'] = None                     # a layer without a score
    rec = dict(run=name, iter=it, final=final, knobs=knobs, eval_iter=it, acc=acc, unification=unif,
               footprint={'lang': {k: layer_vals(rng, k, 0, 0.3) for k in ('act', 'grad')},
                          'fact': {k: layer_vals(rng, k, 0, 0.9) for k in ('act', 'grad')}, 'fact_chance': 0.1},
               name_confusion={'share': None if it == 0 else float(rng.uniform(0, 0.4)), 'n_errors': 100,
                               'chance': float(rng.uniform(0, 0.1))},
               mi_lang_attr={ft: float(rng.uniform(0, 0.1)) for ft in FACT_TYPES + ['mean']},
               mi_token_lang=float(rng.uniform(0.5, 1)), ood_acc_sample=ood)
    if final and templates:                                            # 6 templates: no test fact, no accuracy
        by_n = lambda: {**{str(n): {'acc': float(rng.uniform(0.3, 1)), 'n': 50} for n in range(1, 6)},
                        '6': {'acc': None, 'n': 0}}
        rec['acc_by_n_train_templates'] = {'id_test': by_n(), 'ood_test': by_n()}
    return rec


def fake_experiment(exp, n_runs=32, n_ckpts=21, n_sim=400, sim_runs=4, sim_ckpts=5, draw_runs=None, templates=True):
    """Writes exp/analysis.json and exp/similarity.npz of a sweep of the size of a paper run:
    celeb_frac x lr x seed, log-spaced checkpoints, similarity matrices of sim_runs runs spread over
    final OOD accuracy (sim_ckpts checkpoints each), of which the figures show draw_runs."""
    rng = np.random.default_rng(0)
    iters = [0] + [int(round(10 * 1.4 ** k)) for k in range(n_ckpts - 1)]
    runs, records, sims, ood = [], [], {}, {}
    for i in range(n_runs):                                           # as train.py names a sweep's runs
        knobs = {'celeb_frac': [0.0, 0.02, 0.04, 0.08, 0.12, 0.16, 0.2, 0.3][i % 8],
                 'learning_rate': [1e-3, 3e-4][i // 8 % 2], 'seed': i // 16}
        name = '-'.join(f'{k}{v}' for k, v in knobs.items())
        curve = 1 - np.exp(-np.array(iters) / rng.uniform(200, 2000))
        gain, floor = rng.uniform(0.7, 0.95), rng.uniform(0.01, 0.05)  # distinct final OOD accuracies
        oods = [float((knobs['celeb_frac'] / 0.3) ** 0.5 * gain * c + floor) for c in curve]
        ood[name] = oods[-1]
        log = {str(it): {s: {ft: float(a * c) for ft in ['all'] + FACT_TYPES}
                         for s, a in (('train', 1.0), ('id_test', 0.9), ('ood_test', o))}
               for it, c, o in zip(iters, curve, oods)}
        runs.append(dict(name=name, cfg=dict(knobs, n_layer=4, max_iters=iters[-1]), ckpts=iters, n_layer=4, log=log,
                         fact_types=FACT_TYPES, sim_values=[f'{ft}={v}' for ft in FACT_TYPES for v in 'ab'],
                         sim_bounds=[n_sim * k // 8 for k in range(1, 8)]))
        records += [fake_record(rng, name, knobs, it, it == iters[-1], o, templates) for it, o in zip(iters, oods)]
    for name in plots.spread(sorted(ood, key=ood.get), sim_runs):    # as analyze.py: unification grows in training
        for j, it in enumerate(plots.spread(iters, sim_ckpts)):
            sims[(name, it)] = {k: {l: fake_sim(rng, n_sim, j / sim_ckpts) for l in ('L1', 'L2', 'L4', 'concat')}
                                for k in ('act', 'grad')}
    final = [r for r in records if r['final']]
    settings = dict(exp_dir=exp, sim_runs=draw_runs or sim_runs, sim_ckpts=sim_ckpts, unif_rep='act',
                    unif_layer='concat', footprint_at='peak', seed=0)
    corr = {v: {k: layer_vals(rng, k, -1, 1) for k in ('act', 'grad')} for v in VARIANTS}
    sel = {k: float(rng.uniform(0.3, 0.9)) for k in ('id_test', 'ood_1pct', 'unification', 'oracle', 'random')}
    ckpt_sel = {r['run']: dict(last_best_ood={'iter': r['iter'], 'ood': r['ood_acc_sample']},
                               last_best_id={'iter': r['iter'], 'ood': r['ood_acc_sample'] * 0.9},
                               unification=None if r['unification'] is None else {'iter': 100, 'ood': 0.5},
                               unification_plus=None if r['unification'] is None else {'iter': r['iter'], 'ood': 0.6},
                               oracle=r['ood_acc_sample'], final=r['ood_acc_sample']) for r in final}
    out = dict(exp_dir=exp, settings=settings, varying_knobs=['celeb_frac', 'learning_rate', 'seed'], notes=[],
               correlations=corr, selection=sel, ckpt_selection=ckpt_sel, selection_table=[], records=records,
               runs=runs)
    os.makedirs(exp, exist_ok=True)
    with open(os.path.join(exp, 'analysis.json'), 'w') as f:
        json.dump(out, f)
    np.savez(os.path.join(exp, 'similarity.npz'), **{f'{r}|{it}|{k}|{l}': m for (r, it), ks in sims.items()
                                                      for k, ls in ks.items() for l, m in ls.items()})
    return out


def edit_analysis(exp, change):
    """Rewrites exp/analysis.json through change(analysis dict) (the schema is a moving target)."""
    path = os.path.join(exp, 'analysis.json')
    with open(path) as f:
        a = json.load(f)
    change(a)
    with open(path, 'w') as f:
        json.dump(a, f)


def pngs(exp):
    d = os.path.join(exp, 'figures')
    return {f: os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)} if os.path.isdir(d) else {}


COMMON = {'acc_vs_knobs.png', 'unif_vs_ood.png', 'mi_vs_footprint.png', 'extract_vs_footprint.png',
          'footprint_early.png', 'acc_curves.png', 'name_confusion.png', 'selection.png'}


def test_imports_no_project_module():
    # analyze.py imports plots: plots must not import analyze (a cycle) nor torch
    code = "import sys, plots; bad = {'analyze', 'torch', 'model', 'train'} & set(sys.modules); assert not bad, bad"
    subprocess.run([sys.executable, '-c', code], cwd=ROOT, check=True)


@pytest.fixture(scope='module')
def sweep(tmp_path_factory):
    """A 32-run sweep with 21 checkpoints per run and 400 x 400 similarity matrices of 4 runs x 5
    checkpoints x 2 kinds x 4 layers, drawn once. Only one run's similarity figures are drawn: each is
    the same 5 x 4 grid (drawing all four runs' takes ~7 s instead of ~4 s)."""
    exp = str(tmp_path_factory.mktemp('plots') / 'sweep')
    a = fake_experiment(exp, draw_runs=1)
    return exp, a, plots.plot(exp)


@pytest.mark.slow                                        # end to end
def test_sweep_figures_exist_and_are_light(sweep):
    exp, a, written = sweep
    with np.load(os.path.join(exp, 'similarity.npz')) as z:
        stored = {k.split('|')[0] for k in z.files}
    ood = {r['run']: r['acc']['ood_test']['all'] for r in a['records'] if r['final']}
    drawn = min(stored, key=ood.get)                                   # spread over OOD accuracy: the lowest first
    assert len(stored) == 4
    expected = COMMON | {'acc_by_n_templates.png', f'sim_act_{drawn}.png', f'sim_grad_{drawn}.png', 'contrast.png'}
    sizes = pngs(exp)
    assert set(sizes) == expected and sorted(map(os.path.basename, written)) == sorted(expected)
    assert all(s <= MAX_PNG for s in sizes.values()), {f: s for f, s in sizes.items() if s > MAX_PNG}
    from PIL import Image
    with Image.open(os.path.join(exp, 'figures', f'sim_act_{drawn}.png')) as im:
        assert im.width >= 900 and im.height >= 800                    # 5 x 4 panels of ~170 px: still readable


@pytest.mark.slow                                        # end to end
def test_sweep_rows_follow_the_analysis(sweep):
    exp, a, _ = sweep
    with np.load(os.path.join(exp, 'similarity.npz')) as z:
        view = plots.experiment(a, plots.sim_index(z), exp)
        (run, its), = plots.sim_runs(view)
        fig = plots.fig_similarity(view, run, its, 'act')
    panels = np.array(fig.axes[:-1]).reshape(4, 5)                    # the last axes: the colour bar
    # read without the title: checkpoints head the columns, layer groups name the rows, the axes are
    # labelled with the attribute values (rows) and the fact types (columns) of the examples
    assert [ax.get_title().split('\n')[0] for ax in panels[0]] == [f'iter {it}' for it in its]
    assert [ax.get_ylabel() for ax in panels[:, 0]] == ['layer 1', 'layer 2', 'layer 4', 'all layers']
    assert [t.get_text() for t in panels[0, 0].get_yticklabels()] == [v.split('=')[1] for v in run['sim_values']]
    assert [t.get_text().replace('\n', '_') for t in panels[-1, 2].get_xticklabels()] == FACT_TYPES
    assert not panels[1, 1].get_xticklabels() and not panels[1, 1].get_yticklabels()   # inner panels: none
    assert 'language 0, then 1' in panels[-1, 2].get_xlabel()
    fig = plots.fig_unif_vs_ood(view)                                  # one row of three panels per variant
    titles = [ax.get_title() for ax in fig.axes]
    assert len(fig.axes) == 3 * len(VARIANTS) and titles[0].startswith('normalized (headline)')
    assert [t.split(':')[0] for t in titles[::3]] == ['normalized (headline)', 'same_fact', 'distinct_fact']
    fig = plots.fig_selection(view)
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == [
        'last best ID (the reference)', 'unification x ID (the rule)', 'max unification', 'best checkpoint (oracle)']
    plots.pyplot().close('all')


@pytest.mark.slow                                        # end to end
def test_accuracy_curves_tell_id_from_ood(sweep, tmp_path):
    """One legend for every panel: OOD and ID in two line styles (and, for one run, two colours); the
    many runs of a sweep are coloured by final OOD accuracy (a colour bar)."""
    exp, a, _ = sweep
    view = plots.experiment(a, {}, exp)
    fig = plots.fig_acc_curves(view)
    (legend,) = fig.legends                                            # on the figure, not on one panel
    styles = {t.get_text().split(':')[0]: h.get_linestyle() for t, h in zip(legend.get_texts(), legend.legend_handles)}
    assert styles == {'OOD': '-', 'ID': '--'}
    assert not any(ax.get_legend() for ax in fig.axes) and fig.axes[-1].get_ylabel() == 'final OOD accuracy of the run'
    panel = fig.axes[0]
    assert {l.get_linestyle() for l in panel.get_lines()} == {'-', '--'}
    one = dict(a, runs=a['runs'][:1], records=[r for r in a['records'] if r['run'] == a['runs'][0]['name']])
    fig = plots.fig_acc_curves(plots.experiment(one, {}, exp))
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2 and lines[0].get_color() != lines[1].get_color()
    assert [t.get_text().split(':')[0] for t in fig.legends[0].get_texts()] == ['OOD', 'ID']
    plots.pyplot().close('all')


@pytest.mark.slow                                        # end to end
def test_older_and_partial_schema(tmp_path):
    """Two variants, no Unification+ checkpoint pick, no per-template accuracy, no similarity.npz: draws what is there."""
    exp = str(tmp_path / 'small')
    fake_experiment(exp, n_runs=3, n_ckpts=4, n_sim=40, sim_runs=2, sim_ckpts=2, draw_runs=1, templates=False)

    def older(a):
        for r in a['records']:
            if r['unification']:
                del r['unification']['normalized']
        del a['correlations']['normalized']
        a['settings']['unif_variant'] = 'same_fact'
        for d in a['ckpt_selection'].values():
            del d['unification_plus']                                  # analysed before change C3
    edit_analysis(exp, older)
    plots.plot(exp)
    assert set(pngs(exp)) == COMMON | {f'sim_{k}_celeb_frac0.0-learning_rate0.001-seed0.png' for k in ('act', 'grad')} | {
        'contrast.png'}                                                # two runs with matrices: a pair to contrast
    a, _ = plots.load(exp)
    e = plots.experiment(a, {}, exp)
    assert len(plots.fig_unif_vs_ood(e).axes) == 6
    assert len(plots.fig_selection(e).axes[1].get_legend().get_texts()) == 3
    plots.pyplot().close('all')
    os.remove(os.path.join(exp, 'similarity.npz'))
    edit_analysis(exp, lambda a: a['settings'].pop('sim_runs'))        # a setting it reads is missing: its default
    assert {os.path.basename(p) for p in plots.plot(exp)} == COMMON


SIM_LAYERS = ('L1', 'L2', 'L4', 'concat')


def block_score(unif):
    """block_unification of fake_sim(..., unif, noise=0): within 0.7, cross 0.7 unif, base 0.2 (other value)."""
    return (0.7 * unif - 0.2) / (0.7 - 0.2)


def test_block_unification_known_answers():
    rng = np.random.default_rng(0)
    run = dict(sim_bounds=[50 * k for k in range(1, 8)], sim_values=[f'{ft}={v}' for ft in FACT_TYPES for v in 'ab'],
               cfg={'n_langs': 2})
    for u in (0.0, 0.4, 1.0):
        m = fake_sim(rng, 400, u, noise=0).astype(np.float32)
        assert plots.block_unification(m, plots.lang_groups(run, 400, 50)) == pytest.approx(block_score(u), abs=0.01)
    groups = plots.lang_groups(run, 400, 40)                           # blocks of 50 are not 2 x 40 // 2: unsplittable
    assert groups == [] and plots.block_unification(m, groups) is None
    stored = dict(run, sim_lang_bounds=[25 + 50 * k for k in range(8)])   # stored language bounds win over sizes
    ft, (lang0, lang1) = plots.lang_groups(stored, 400, 40)[0]
    assert ft == 'birth_year' and list(lang0) == list(range(25)) and list(lang1) == list(range(25, 50))


def contrast_experiment(exp, unif, celeb_fracs, oods):
    """A 3-run analysis whose act similarity matrices have known unification: unif(run index, checkpoint
    index, layer)."""
    fake_experiment(exp, n_runs=3, n_ckpts=4, n_sim=192, sim_runs=3, sim_ckpts=4, draw_runs=1, templates=False)
    rng = np.random.default_rng(1)

    def known(a):
        a['settings']['sim_per_value'] = 24                            # value blocks of 192 / 8: 12 per language
        for i, (run, frac, ood) in enumerate(zip(a['runs'], celeb_fracs, oods)):
            run['cfg']['celeb_frac'] = frac
            for r in a['records']:
                if r['run'] == run['name']:
                    r['acc']['ood_test']['all'] = r['ood_acc_sample'] = ood
    edit_analysis(exp, known)
    a, _ = plots.load(exp)
    iters = a['runs'][0]['ckpts']
    np.savez(os.path.join(exp, 'similarity.npz'), **{
        f"{run['name']}|{it}|act|{l}": fake_sim(rng, 192, unif(i, k, l), noise=0.05)
        for i, run in enumerate(a['runs']) for k, it in enumerate(iters) for l in SIM_LAYERS})
    return a, iters


@pytest.mark.slow
def test_contrast_shows_least_and_most_parallel_where_they_differ_most(tmp_path):
    """The no-parallel run against the most-parallel one (not the best OOD), at the layer and checkpoint of
    the largest gap in unification (language_gap: within - cross language similarity, 0.7 (1 - unif) here): layer 2
    at the third checkpoint, neither the last nor the headline
    layer; a middle run that unifies more does not enter."""
    exp = str(tmp_path / 'contrast')
    peak = lambda k, l: 0.9 if (k, l) == (2, 'L2') else 0.5 if k == 3 else 0.3
    unif = lambda i, k, l: [0.1, 1.0, peak(k, l)][i]
    a, iters = contrast_experiment(exp, unif, celeb_fracs=[0.0, 0.1, 0.3], oods=[0.4, 0.95, 0.9])
    written = {os.path.basename(p) for p in plots.plot(exp)}
    assert 'contrast.png' in written and 'acc_curves.png' in written
    with np.load(os.path.join(exp, 'similarity.npz')) as z:
        view = plots.experiment(a, plots.sim_index(z), exp)
        low, high = plots.contrast_runs(view)
        layer, it, s_low, s_high = plots.contrast_point(view, low, high, 'act')
        fig = plots.fig_contrast(view)
    assert (low['name'], high['name']) == (a['runs'][0]['name'], a['runs'][2]['name'])
    assert (layer, it) == ('L2', iters[2])
    assert s_low == pytest.approx(0.7 * (1 - 0.1), abs=0.01) and s_high == pytest.approx(0.7 * (1 - 0.9), abs=0.01)
    titles = [ax.get_title() for ax in fig.axes[:2]]
    assert titles[0].startswith(low['name']) and 'celeb_frac 0.0, OOD 0.40' in titles[0]
    assert titles[1].startswith(high['name']) and 'celeb_frac 0.3, OOD 0.90' in titles[1]
    assert all(f'layer 2, iter {iters[2]}: language gap' in t for t in titles)
    plots.pyplot().close('all')


def test_contrast_by_ood_when_celeb_frac_is_one_value(tmp_path):
    """One celeb_frac for all runs (e.g. a sweep of seeds): the runs of the lowest and highest final OOD."""
    exp = str(tmp_path / 'seeds')
    unif = lambda i, k, l: [0.5, 0.2, 0.8][i] if l == 'concat' and k == 3 else 0.4
    a, iters = contrast_experiment(exp, unif, celeb_fracs=[0.1, 0.1, 0.1], oods=[0.6, 0.3, 0.9])
    with np.load(os.path.join(exp, 'similarity.npz')) as z:
        view = plots.experiment(a, plots.sim_index(z), exp)
        low, high = plots.contrast_runs(view)
        assert (low['name'], high['name']) == (a['runs'][1]['name'], a['runs'][2]['name'])
        assert plots.contrast_point(view, low, high, 'act')[:2] == ('concat', iters[-1])
        one = dict(view, sims={k: v for k, v in view['sims'].items() if k[0] == low['name']})
        assert plots.contrast_runs(one) is None and plots.fig_contrast(one) is None   # one run: no pair


def test_size_cap_lowers_the_resolution(tmp_path):
    plt = plots.pyplot()
    fig, ax = plt.subplots(figsize=(8, 8))
    ax.imshow(np.random.default_rng(0).random((600, 600)), cmap='RdBu_r')   # pure noise: the worst case for PNG
    path = plots.save(fig, str(tmp_path / 'noise.png'), max_bytes=60_000)
    from PIL import Image
    with Image.open(path) as im:
        assert os.path.getsize(path) <= 60_000 and 200 < im.width < 600   # drawn with fewer pixels, not blank


def run_cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, os.path.join(ROOT, 'plots.py'), *args], cwd=cwd, capture_output=True,
                          text=True)


def test_command_line(tmp_path):
    for flag in ('--help', '-h'):
        p = run_cli(flag)
        assert p.returncode == 0 and 'analysis.json' in p.stdout and 'figures' in p.stdout and not p.stderr
    for args in ((), ('a', 'b'), ('--dpi=3',)):
        p = run_cli(*args)
        assert p.returncode != 0 and p.stderr.count('\n') == 1 and 'help' in p.stderr and not p.stdout
    p = run_cli(str(tmp_path))
    assert p.returncode != 0 and p.stderr == f"plots: no {tmp_path}/analysis.json; run analyze.py {tmp_path} first\n"
    with pytest.raises(ValueError, match='no .*analysis.json'):
        plots.plot(str(tmp_path))
    (tmp_path / 'analysis.json').write_text('{"records": [')
    p = run_cli(str(tmp_path))
    assert p.returncode != 0 and p.stderr.count('\n') == 1 and 'is not valid JSON' in p.stderr
    (tmp_path / 'analysis.json').write_text('{"records": []}')
    with pytest.raises(ValueError, match='no runs, settings section'):
        plots.plot(str(tmp_path))


def schema(x, runs, path=''):
    """{path: leaf types} of a nested analysis: data keys (run names, iterations, counts, layers) become
    placeholders, list items share one path, None goes with any type."""
    if isinstance(x, dict):
        out = {}
        for k, v in x.items():
            k = ('<run>' if k in runs else '<n>' if str(k).isdigit() else
                 '<layer>' if re.fullmatch(r'L\d+', str(k)) else k)
            for p, t in schema(v, runs, f'{path}/{k}').items():
                out.setdefault(p, set()).update(t)
        return out
    if isinstance(x, list) and x and isinstance(x[0], (dict, list)):
        out = {}
        for v in x:
            for p, t in schema(v, runs, f'{path}[]').items():
                out.setdefault(p, set()).update(t)
        return out
    kind = 'number' if isinstance(x, (int, float)) and not isinstance(x, bool) else type(x).__name__
    return {path: set() if x is None else {kind}}


@pytest.mark.slow
def test_fake_analysis_has_the_schema_analyze_writes(tmp_path):
    """The hand-made analysis these tests draw is checked against one analyze.py writes for a tiny sweep
    over the same knobs: every field of the fake exists there with the same type, run names are made
    the same way, and the knobs are train.py's."""
    import analyze
    import train
    cfg = dict(train.DEFAULTS, out_dir=str(tmp_path / 'real'), data_dir=str(tmp_path / 'data'), n_people=60,
               n_first_names=20, n_last_names=20, n_cities=10, n_templates=3, n_layer=2, n_head=2, n_embd=32,
               batch_size=32, max_iters=30, warmup_iters=5, eval_interval=15, n_ckpts=2, ckpt_first=5, log_interval=10,
               eval_max=100, device='cpu', compile=False, threads=1,
               sweep={'celeb_frac': [0.0, 0.2], 'learning_rate': [1e-3, 1e-2], 'seed': [0]})
    real = analyze.analyze(dict(analyze.DEFAULTS, exp_dir=train.train(cfg), device='cpu', proj_dim=64,
                                max_examples=100, max_celeb_facts=10, ood_sample=100, select_repeats=10, sim_ckpts=2,
                                max_ckpts=0, figures=False))
    fake = fake_experiment(str(tmp_path / 'fake'), n_runs=16, n_ckpts=3, n_sim=40, sim_runs=2, sim_ckpts=2)
    names = lambda a: {r['name'] for r in a['runs']}
    real_schema, fake_schema = schema(real, names(real)), schema(fake, names(fake))
    none = {p for p, t in real_schema.items() if not t}                # null there: any structure fits
    missing = sorted(p for p in fake_schema if p not in real_schema
                     and not any(p.startswith(q + '/') or p.startswith(q + '[]') for q in none))
    assert not missing, f"fields of the fake that analyze.py does not write: {missing}"
    wrong = {p: (t, real_schema[p]) for p, t in fake_schema.items() if real_schema.get(p) and not t <= real_schema[p]}
    assert not wrong, f"fields of another type than analyze.py's: {wrong}"
    assert {tuple(n.split('-')) for n in names(real)} == {('celeb_frac0.0', 'learning_rate0.001', 'seed0'),
                                                          ('celeb_frac0.0', 'learning_rate0.01', 'seed0'),
                                                          ('celeb_frac0.2', 'learning_rate0.001', 'seed0'),
                                                          ('celeb_frac0.2', 'learning_rate0.01', 'seed0')}
    for a in (real, fake):
        for r in a['records']:
            assert r['run'] == '-'.join(f"{k}{r['knobs'][k]}" for k in ('celeb_frac', 'learning_rate', 'seed'))
            assert set(r['knobs']) <= set(train.DEFAULTS) and 0 <= r['knobs']['celeb_frac'] <= 0.3
    with np.load(os.path.join(real['exp_dir'], 'similarity.npz')) as z:
        real_keys = {tuple(k.split('|')[2:]) for k in z.files}
    with np.load(os.path.join(str(tmp_path / 'fake'), 'similarity.npz')) as z:
        fake_keys = {tuple(k.split('|')[2:]) for k in z.files}
    assert {k for k, _ in fake_keys} == {k for k, _ in real_keys} == {'act', 'grad'}
    assert {l for _, l in fake_keys} - {'L4'} <= {l for _, l in real_keys}     # a 2-layer run has no L4
