"""results.py: summaries of an analyzed experiment, merging shards, staleness, importing archives,
summarising again; report.py: the tables of README, docs and each result's README rewritten from assets/
(the real ones must match the real assets/) and the verdict rules of docs/verdicts.md."""
import glob
import gzip
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

import analyze
import data_gen
import metrics
import plots
from dev import report, results, verdicts
import train
from configurator import configure

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(n_people=60, n_first_names=20, n_last_names=20, n_cities=10, n_layer=1, n_head=2, n_embd=16,
            batch_size=16, max_iters=6, n_ckpts=1, eval_interval=6, eval_max=40, device='cpu', compile=False)
SWEEP = {'celeb_frac': [0.1, 0.3], 'seed': [0, 1]}
# the config-changing arguments that make config/sweep_celeb.py this miniature (as gpu_queue.py --tiny=True)
ARGS = [f'--{k}={v!r}' for k, v in TINY.items() if k not in results.MACHINE_KEYS] + [f'--sweep={SWEEP!r}']
ANALYSIS = dict(analyze.DEFAULTS, device='cpu', proj_dim=32, max_examples=60, max_celeb_facts=8, ood_sample=40,
                figures=False)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """A 4-run miniature of sweep_celeb, analyzed whole and as its two shards (runs[i::2])."""
    tmp = tmp_path_factory.mktemp('report')
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                                         # tiny tensors: threads only wait on a busy machine
    cfg = configure(train.DEFAULTS, [os.path.join(ROOT, 'config', 'sweep_celeb.py'), *ARGS])
    cfg.update(TINY, out_dir=str(tmp / 'all'), data_dir=str(tmp / 'data'))
    exp = train.train(cfg)
    names = [n for n, _ in train.expand_sweep(cfg)]
    for i in range(2):                                               # the shards' directories: the same runs
        for n in names[i::2]:
            shutil.copytree(os.path.join(exp, n), tmp / f'shard{i}' / n)
    for d in ('all', 'shard0', 'shard1'):
        analyze.analyze(dict(ANALYSIS, exp_dir=str(tmp / d)))
    prov = dict(device='cpu', torch='test', commit='test', date='2026-01-01', train_s=1.0, analyze_s=1.0)
    stages = {}
    for d, shard in (('all', ''), ('shard0', '0/2'), ('shard1', '1/2')):
        results.stage_experiment(str(tmp / d), 'sweep_celeb', shard, prov, ARGS, str(tmp / 'stage' / d))
        stages[d] = str(tmp / 'stage' / d)
    torch.set_num_threads(threads)
    return tmp, stages


def summary(path):
    return results.read_json(os.path.join(path, 'summary.json'))


@pytest.mark.slow
def test_summary_holds_what_the_readme_cites(tiny):
    _, stages = tiny
    s = summary(stages['shard0'])
    assert s['exp'] == 'sweep_celeb' and s['scale'] == 'paper' and s['data_version'] == data_gen.VERSION
    assert s['shards'] == dict(n=2, done=[0])
    prov = s['provenance'][0]
    assert {'device', 'torch', 'commit', 'date', 'train_s', 'analyze_s', 'data_version', 'E', 'n_ckpts'} <= set(prov)
    assert sorted(s['runs_missing']) == ['celeb_frac0.1-seed1', 'celeb_frac0.3-seed1']
    run = s['runs'][0]
    assert run['knobs'] == {'celeb_frac': 0.1, 'seed': 0}
    for split in ('id_test', 'ood_test'):                             # accuracy and probability by fact type and language
        assert set(run['final'][split]) >= {'all', *data_gen.FACT_TYPES}
        assert set(run['final'][split]['all']) >= {'all', 'lang0', 'lang1'} and len(run['final'][split]['all']['all']) == 3
    assert {'correlations', 'selection'} <= set(s) and 'same_fact' in run['unification']
    assert set(run['lang_footprint']) == {'init', 'peak', 'peak_iter', 'final'} and run['lang_footprint']['peak_iter'] > 0
    assert {'unification', 'unification_paper'} <= set(run['trajectory'])
    assert set(run['grad_share']) == {'raw', 'adam'} and set(run['grad_share']['adam']) >= {'emb', 'L1', 'head'}
    assert "the input embeddings' share of an example's squared gradient (language 0 / 1, mean over 2 runs)" in \
        verdicts.checks5(dict(s, _scale='paper', _stale=[]))[0][1]
    assert os.path.getsize(os.path.join(stages['shard0'], 'summary.json')) <= results.max_summary_kb * 1000
    assert report.missing_text(s) == '2 runs (seed=1)'


def close(a, b, path=''):
    """Nested dicts/lists equal, numbers within the rounding of summary.json."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            close(a[k], b[k], f'{path}.{k}')
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            close(x, y, f'{path}[{i}]')
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-3, abs=1e-4), path
    else:
        assert a == b, path


@pytest.mark.slow
def test_merged_shards_equal_one_analysis(tiny, tmp_path):
    tmp, stages = tiny
    assets = str(tmp_path / 'assets')
    assert 'shards 0 of 2' in results.import_stage(stages['shard0'], assets)
    assert 'merged, shards 0,1 of 2' in results.import_stage(stages['shard1'], assets)
    merged, whole = summary(os.path.join(assets, 'sweep_celeb')), summary(stages['all'])
    assert merged['shards'] == dict(n=2, done=[0, 1]) and merged['runs_missing'] == []
    assert [p['shard'] for p in merged['provenance']] == ['0/2', '1/2']
    for key in ('correlations', 'selection', 'selection_scored', 'ckpt_selection_summary', 'runs'):
        close(merged[key], whole[key], key)
    assert 'better_variant' not in merged
    # importing shard 0 again replaces its runs: still the same numbers
    results.import_stage(stages['shard0'], assets)
    close(summary(os.path.join(assets, 'sweep_celeb'))['selection'], whole['selection'])


@pytest.mark.slow
def test_shards_analysed_in_other_dtypes_merge(tiny, tmp_path):
    """Shards analysed on machines that picked other dtypes (bfloat16 on a CPU that multiplies it natively), or by
    an older analyze.py (a knob it lacked, one retired since), merge, and the merged settings name both; a
    setting of what is measured (proj_dim) still refuses."""
    tmp, stages = tiny
    def restaged(name, **changes):                   # shard 1 as another machine (or setting) would stage it
        d = str(tmp_path / name)
        shutil.copytree(stages['shard1'], d)
        s, a = summary(d), results.read_json(os.path.join(d, 'analysis.json.gz'))
        for settings in (s['analysis_settings'], a['settings']):
            settings.update({k: v for k, v in changes.items() if v is not None})
            for k in [k for k, v in changes.items() if v is None]:    # a knob that analysis did not have
                settings.pop(k)
        results.write_json_gz(a, os.path.join(d, 'analysis.json.gz'))
        with open(os.path.join(d, 'summary.json'), 'w') as f:
            json.dump(s, f)
        return d
    assets = str(tmp_path / 'assets')
    results.import_stage(stages['shard0'], assets)
    other = {'float32': 'bfloat16', 'bfloat16': 'float32'}[summary(stages['shard0'])['analysis_settings']['dtype']]
    with pytest.raises(ValueError, match='do not merge'):
        results.import_stage(restaged('other_proj', proj_dim=64, dtype=other), assets)
    older = restaged('older', dtype=other, grad_impl=None, retired={'proj_chunk': 4096})
    assert 'merged, shards 0,1 of 2' in results.import_stage(older, assets)
    settings = summary(os.path.join(assets, 'sweep_celeb'))['analysis_settings']
    assert settings['dtype'] == 'bfloat16 / float32' and settings['grad_impl'] == 'not recorded / runs'
    assert settings['retired'] == {'proj_chunk': 4096} and settings['proj_dim'] == ANALYSIS['proj_dim']
    # a third shard: each value once
    assert results.merged_settings(settings, dict(settings, dtype='float32', grad_impl='runs'))['grad_impl'] == 'not recorded / runs'


@pytest.mark.slow
def test_resummarise_under_current_rules(tiny, tmp_path):
    """A result summarised again in place: the same numbers when the rules have not changed; from an
    older analysis (no normalized score, settings renamed since) what the records lack stays missing
    and the retired settings are kept apart."""
    _, stages = tiny
    d = str(tmp_path / 'sweep_celeb')
    shutil.copytree(stages['all'], d)
    before = summary(d)
    assert 'summarised again' in results.resummarise_dir(d)
    for key in ('correlations', 'selection', 'selection_scored', 'ckpt_selection_summary', 'runs'):
        close(summary(d)[key], before[key], key)
    a = results.read_json(os.path.join(d, 'analysis.json.gz'))
    for r in a['records']:
        r.pop('ood_correct', None)
        if r['unification']:
            del r['unification']['normalized']
    a.update(settings=dict(a['settings'], unif_variant='same_fact', footprint_at='max'))
    results.write_json_gz(a, os.path.join(d, 'analysis.json.gz'))
    results.resummarise_dir(d)
    s = summary(d)
    assert 'unif_variant' not in s['analysis_settings']
    assert s['analysis_settings']['retired'] == {'unif_variant': 'same_fact'}   # no knob now, but how it was made
    assert s['analysis_settings']['footprint_at'] == 'peak' and s['scale'] == 'paper'
    assert s['selection']['unification'] is None and s['selection']['unification_paper'] is not None
    assert all(r['trajectory']['unification'] == [None] * len(r['trajectory']['iter']) for r in s['runs'])


@pytest.mark.slow
def test_stale_results_are_marked_and_never_merged(tiny, tmp_path, monkeypatch):
    tmp, stages = tiny
    assets = str(tmp_path / 'assets')
    results.import_stage(stages['shard0'], assets)
    s = summary(os.path.join(assets, 'sweep_celeb'))
    assert results.stale_reasons(s) == []
    monkeypatch.setattr(data_gen, 'VERSION', data_gen.VERSION + 1)   # the generator changed
    why = results.stale_reasons(s)
    assert why == [f"made on data v{data_gen.VERSION - 1}, now v{data_gen.VERSION}"]
    st = report.load_state(assets, str(tmp_path / 'README.md'))
    older = 'made on an older version of the dataset'
    assert older in report.block_experiments(st) and older in report.result_readme(st['results'][('sweep_celeb', 'paper')])
    assert verdicts.finding1(st, 'paper')[0] == f'not judged: {older}; to be re-run on a GPU'
    # results of the new version replace the old ones instead of merging with them
    new = str(tmp_path / 'new')
    shutil.copytree(stages['shard1'], new)
    s1 = summary(new)
    s1['data_version'] = data_gen.VERSION
    with open(os.path.join(new, 'summary.json'), 'w') as f:
        f.write(results.dumps(s1))
    msg = results.import_stage(new, assets)
    assert 'merged' not in msg and summary(os.path.join(assets, 'sweep_celeb'))['shards']['done'] == [1]
    # stale results do not replace current ones unless forced
    with pytest.raises(ValueError, match='stale'):
        results.import_stage(stages['shard0'], assets)


@pytest.mark.slow
def test_stale_results_stay_beside_partial_current_ones(tiny, tmp_path):
    """Current shards that replace a stale result keep it in stale/ (shown beside them, 'beside it: ...')
    until the current results hold every run; summarising again keeps it too."""
    _, stages = tiny
    assets, old = str(tmp_path / 'assets'), str(tmp_path / 'old')
    shutil.copytree(stages['all'], old)
    s = summary(old)
    with open(os.path.join(old, 'summary.json'), 'w') as f:
        f.write(results.dumps(dict(s, data_version=data_gen.VERSION - 1)))
    results.import_stage(old, assets)
    dest = os.path.join(assets, 'sweep_celeb')
    assert 'stale/' in results.import_stage(stages['shard0'], assets)
    assert summary(os.path.join(dest, 'stale'))['data_version'] == data_gen.VERSION - 1
    assert summary(dest)['shards']['done'] == [0] and not os.path.isdir(os.path.join(dest, 'stale', 'stale'))
    results.resummarise_dir(dest)
    st = report.load_state(assets, str(tmp_path / 'README.md'))
    text = verdicts.finding1(st, 'paper')[1]
    assert '2 of 4 runs' in text and 'beside it: `sweep_celeb` (paper scale), 4 of 4 runs' in text
    assert 'made on an older version of the dataset' in text.split('beside it:')[1]
    assert 'merged' in results.import_stage(stages['shard1'], assets)        # every run in: the stale one goes
    assert summary(dest)['shards']['done'] == [0, 1] and not os.path.exists(os.path.join(dest, 'stale'))


@pytest.mark.slow
def test_results_of_a_sweep_that_grew_take_the_other_seeds_in(tiny, tmp_path):
    """Seed 0 alone, made when the sweep had no seeds (runs named celeb_frac0.1, ...), is stale only by its
    sweep; --regrow=2 makes it shard 0 of 2 of the grown sweep under the grown names, and shard 1 (seed 1)
    then merges into it: the same numbers as the four runs analyzed at once."""
    _, stages = tiny
    old, assets = str(tmp_path / 'old'), str(tmp_path / 'assets')
    shutil.copytree(stages['shard0'], old)                            # runs[0::2]: celeb_frac 0.1 and 0.3, seed 0
    s, a = summary(old), results.read_json(os.path.join(old, 'analysis.json.gz'))
    short = {r['name']: r['name'].split('-')[0] for r in s['runs']}
    s = dict(s, config=dict(s['config'], sweep={'celeb_frac': [0.1, 0.3]}), config_version='before', runs_missing=[],
             shards=dict(n=1, done=[0]), provenance=[dict(p, shard='0/1') for p in s['provenance']],
             runs=[dict(r, name=short[r['name']]) for r in s['runs']])
    a['records'] = [dict(r, run=short[r['run']]) for r in a['records']]
    with open(os.path.join(old, 'summary.json'), 'w') as f:
        f.write(results.dumps(s))
    with gzip.open(os.path.join(old, 'analysis.json.gz'), 'wt') as f:
        json.dump(a, f)
    assert results.stale_reasons(s) == ['config changed: sweep']
    results.import_stage(old, assets)
    dest = os.path.join(assets, 'sweep_celeb')
    with pytest.raises(ValueError, match='no shard of 1'):            # the one shard holds seed 1 too
        results.regrown(s, 1)
    assert results.regrown(s, 4)[0]['shards'] == dict(n=4, done=[0, 2])   # a run per shard: seed 0's are 0 and 2
    with pytest.raises(ValueError, match='only change is a grown sweep'):
        results.regrown(dict(s, data_version=data_gen.VERSION - 1), 2)
    results.resummarise_dir(dest, regrow=2)
    grown = summary(dest)
    assert results.stale_reasons(grown) == [] and grown['shards'] == dict(n=2, done=[0])
    assert [r['name'] for r in grown['runs']] == ['celeb_frac0.1-seed0', 'celeb_frac0.3-seed0']
    assert grown['runs_missing'] == ['celeb_frac0.1-seed1', 'celeb_frac0.3-seed1']
    assert 'merged, shards 0,1 of 2' in results.import_stage(stages['shard1'], assets)
    merged, whole = summary(dest), summary(stages['all'])
    assert merged['runs_missing'] == [] and [p['shard'] for p in merged['provenance']] == ['0/2', '1/2']
    for key in ('correlations', 'selection', 'runs'):
        close(merged[key], whole[key], key)


@pytest.mark.slow
def test_config_edit_makes_results_stale(tiny):
    _, stages = tiny
    s = summary(stages['all'])
    s['config']['learning_rate'] = 1.0                               # as if config/sweep_celeb.py had changed since
    s['config_version'] = 'other'
    assert results.stale_reasons(s) == ['config changed: learning_rate']
    s['config'].pop('learning_rate')                                 # a knob added since does not count
    assert results.stale_reasons(s) == []
    s['config'].update(overwrite=True, reuse_dir='out/laptop', threads=1)   # how reproduce.sh ran it: the same results
    assert results.stale_reasons(s) == []


@pytest.mark.slow
def test_archive_roundtrip_and_bad_input(tiny, tmp_path):
    import tarfile
    _, stages = tiny
    path = str(tmp_path / 'x.tgz')
    with tarfile.open(path, 'w:gz') as tar:
        for name in os.listdir(stages['all']):
            tar.add(os.path.join(stages['all'], name), arcname=name)
    assert 'shards 0 of 1' in results.import_archive(path, str(tmp_path / 'assets'))
    with pytest.raises(ValueError, match='no archive'):
        results.import_archive(str(tmp_path / 'missing.tgz'), str(tmp_path / 'assets'))
    r = subprocess.run([sys.executable, '-m', 'dev.report', f'--import={tmp_path}/missing.tgz', f'--assets={tmp_path}/a'],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.strip().count('\n') == 0 and r.stderr.startswith('results error: no archive')
    r = subprocess.run([sys.executable, '-m', 'dev.results'], cwd=ROOT, capture_output=True, text=True)     # nothing to do
    assert r.returncode == 1 and r.stderr.startswith('results error: nothing to do') and r.stderr.count('\n') == 1


def test_rewrite_and_check(tmp_path):
    blocks = {'a': '| x |\n|---|\n| 1 |', 'b': 'text'}
    text = 'intro\n<!-- report:a -->\nold\n<!-- /report:a -->\nmiddle\n<!-- report:b -->\n<!-- /report:b -->\nend\n'
    new, changed, _ = report.rewrite(text, blocks)
    assert changed == ['a', 'b'] and new.startswith('intro\n<!-- report:a -->\n| x |') and new.endswith('middle\n'
           '<!-- report:b -->\ntext\n<!-- /report:b -->\nend\n')
    assert report.rewrite(new, blocks)[:2] == (new, []) and report.rewrite('no markers\n', blocks)[:2] == ('no markers\n', [])
    # every block rendered from an empty assets/: --check fails until the tables are rewritten
    readme = tmp_path / 'README.md'
    readme.write_text(''.join(f'<!-- report:{b} -->\n<!-- /report:{b} -->\n' for b in report.RENDER))
    cfg = dict(report.DEFAULTS, readme=str(readme), assets=str(tmp_path / 'assets'), check=True)
    assert report.main(cfg) == 1
    assert report.main(dict(cfg, check=False)) == 0 and report.main(cfg) == 0
    assert 'The GPU bench has not run yet.' in readme.read_text()
    readme.write_text(readme.read_text().replace('<!-- report:toy -->', ''))
    with pytest.raises(ValueError, match='report:toy'):
        report.main(cfg)


@pytest.mark.slow
def test_real_tables_match_and_a_changed_number_is_caught(tmp_path):
    """The real README's, docs' and results' tables against a copy of the real assets: matching, then one
    number changed in a marked block and in a result's README (generated whole)."""
    readme = tmp_path / 'README.md'
    shutil.copyfile(os.path.join(ROOT, 'README.md'), readme)
    shutil.copytree(os.path.join(ROOT, 'docs'), tmp_path / 'docs')
    shutil.copytree(os.path.join(ROOT, 'assets'), tmp_path / 'assets')   # figure paths are relative to the file
    cfg = dict(report.DEFAULTS, readme=str(readme), assets=str(tmp_path / 'assets'), check=True)
    (tmp_path / 'docs' / 'extra.md').write_text('no markers here\n')  # a file without markers is left alone
    assert report.main(cfg) == 0
    before = {}
    for path, mark in ((tmp_path / 'docs' / 'findings.md', '<!-- report:evidence -->'),
                       (tmp_path / 'assets' / 'laptop' / 'sweep_celeb' / 'README.md', '| 0.0 |')):
        before[path] = text = path.read_text()
        j = text.index('0.9', text.index(mark))
        path.write_text(text[:j] + '0.1' + text[j + 3:])
    assert report.main(cfg) == 1
    assert report.main(dict(cfg, check=False)) == 0 and report.main(cfg) == 0
    assert all(path.read_text() == text for path, text in before.items())


@pytest.mark.slow
def test_readme_matches_assets():
    """python -m dev.report --check on the repo: the README's and docs' tables are what assets/ gives."""
    r = subprocess.run([sys.executable, '-m', 'dev.report', '--check'], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_assets_within_limits():
    for path in glob.glob(os.path.join(ROOT, 'assets', '*', 'summary.json')):
        assert os.path.getsize(path) <= results.max_summary_kb * 1000, path
        s = results.read_json(path)
        for f in s.get('figures', {}).get('files', []):
            assert os.path.getsize(os.path.join(os.path.dirname(path), 'figures', f)) <= plots.MAX_BYTES, f


def test_bench_summary_and_table(tmp_path):
    """The staged bench keeps the speed candidates and the sweep row's fields; the README's bench
    block shows them, and says 'not yet measured' where a bench lacks them."""
    raw = tmp_path / 'raw'
    os.makedirs(raw)
    row = lambda name, E, v: dict(row=name, E=E, seconds_per_step=E / v, peak_mem_gb=1.0, run_steps_per_s=v, tokens_per_s=1.0)
    sweep = dict(row('sweep (16 runs x 3000 steps)', 16, 900.0), iters=3000, train_s=80.0, step_s=40.0, first_step_s=5.0,
                 eval_s=20.0, ckpt_s=3.0, outside_steps_frac=0.44, analyze_s=120.0, n_ckpts=336, ckpts_per_s=2.8)
    benches = {'bench_compile.json': (dict(candidates=True), [row('plain loop', 1, 100.0), row('lockstep E=16', 16, 900.0),
                                                              row('lockstep E=16 ce_loss', 16, 950.0)]),
               'bench_graph.json': (dict(cuda_graph=True, sweep=True), [row('lockstep E=16', 16, 1500.0), sweep])}
    for name, (cfg, rows) in benches.items():
        with open(raw / name, 'w') as f:
            json.dump(dict(device='cuda', device_name='GPU', torch='x', config=cfg, rows=rows), f)
    prov = dict(device='GPU', command=['python bench.py --candidates=True'], failed=['python bench.py ran out of time'])
    s = results.stage_bench(str(raw), prov, str(tmp_path / 'b'))
    assert s['modes']['compile']['rows']['lockstep E=16 ce_loss']['value'] == 950.0
    assert s['modes']['graph']['rows']['sweep (16 runs x 3000 steps)']['outside_steps_frac'] == 0.44
    block = report.block_bench(dict(bench=s))
    assert '| lockstep E=16 ce_loss (run-steps/s) | 950.0 | – |' in block and 'not yet measured' not in block
    assert '| sweep (16 runs x 3000 steps) | torch.compile + CUDA graph | 80.0 | 40.0 | 44% | 120.0 | 2.80 |' in block
    assert 'Not measured: python bench.py ran out of time.' in block
    for mode in s['modes'].values():                                  # an older bench: neither measured
        mode['rows'] = {k: v for k, v in mode['rows'].items() if k in ('plain loop', 'lockstep E=16')}
    block = report.block_bench(dict(bench=s))
    assert '| speed candidates at the largest E (run-steps/s) | not yet measured | – |' in block
    assert '| not yet measured | – | – | – | – | – | – |' in block


def same_science_log(root, folder, name, id_acc, ood_acc):
    """A training log in root/bench/<folder>/<name> whose last evaluation (step 3000) has these ID and
    OOD accuracies; an earlier one (step 1500, half of each) must be ignored by the report."""
    os.makedirs(root / 'bench' / folder, exist_ok=True)
    with open(root / 'bench' / folder / name, 'w') as f:
        for it, scale in ((1500, 0.5), (3000, 1.0)):
            for split, a in (('id_test', id_acc), ('ood_test', ood_acc)):
                f.write(json.dumps(dict(iter=it, split=split, fact_type='all', lang='all', acc=a * scale, n=100)) + '\n')


def test_bf16_shift_pools_both_sets_seed_by_seed(tmp_path):
    """docs/speed.md's paragraph: the default's mean OOD gap to float32 over the seeds of both folders that ran
    both ways (a seed run one way only is left out), its standard error, and float32's own seed sd."""
    for folder, seed, f32, pick in ((report.SHIFT_SETS[0], 0, 0.40, 0.46), (report.SHIFT_SETS[1], 12, 0.50, 0.52)):
        same_science_log(tmp_path, folder, f'float32_cf0_seed{seed}.jsonl', 1.0, f32)
        same_science_log(tmp_path, folder, f'pick_cf0_seed{seed}.jsonl', 1.0, pick)
        same_science_log(tmp_path, folder, f'float32_cf0.3_seed{seed}.jsonl', 0.98, 0.96)
        same_science_log(tmp_path, folder, f'pick_cf0.3_seed{seed}.jsonl', 0.97, 0.97)
    same_science_log(tmp_path, report.SHIFT_SETS[1], 'pick_cf0_seed13.jsonl', 1.0, 0.9)      # no float32 twin
    text = report.block_bf16_shift(dict(shift=report.shift_runs(str(tmp_path))))
    assert 'at celeb_frac 0 +0.040 ± 0.020 over 2 seeds, over half of float32\'s own seed-to-seed sd (0.071)' in text
    assert 'at celeb_frac 0.3 +0.010 ± 0.000 over 2 seeds; ID seed means within 0.010; the OOD order of celeb_frac the same' in text
    for folder, seed in ((report.SHIFT_SETS[0], 0), (report.SHIFT_SETS[1], 12)):   # parallel data no longer helps
        same_science_log(tmp_path, folder, f'pick_cf0.3_seed{seed}.jsonl', 0.97, 0.30)
    assert 'the OOD order of celeb_frac not the same' in report.block_bf16_shift(dict(shift=report.shift_runs(str(tmp_path))))
    assert report.block_bf16_shift(dict(shift={})) == 'The float32 comparison has not run yet.'


@pytest.mark.slow
def test_help_prints_the_knobs_of_both_scripts():
    r = subprocess.run([sys.executable, '-m', 'dev.report', '--help'], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and '--check=False' in r.stdout and '--summarise=' in r.stdout and not r.stderr
    r = subprocess.run([sys.executable, '-m', 'dev.results', '--help'], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and 'python -m dev.results' in r.stdout and '--imports=' in r.stdout and '--check' not in r.stdout


def fake_summary(name, runs, scale='paper', stale=(), missing=(), **extra):
    """A summary of `name` at `scale` whose runs have these knobs and final OOD accuracy: [(knobs, ood)]
    or [(knobs, ood, {fact_type: ood}, id)]; current and complete unless told otherwise."""
    out = []
    for i, (knobs, ood, *more) in enumerate(runs):
        by_ft, idacc = (more + [{}, 0.99])[:2] if more else ({}, 0.99)
        final = {'ood_test': {ft: {'all': [o, o, 100]} for ft, o in {'all': ood, **by_ft}.items()},
                 'id_test': {'all': {'all': [idacc, idacc, 100]}}}
        out.append(dict(name=f'r{i}', knobs=knobs, iter=1000, final=final, **extra.pop(f'run{i}', {})))
    return dict(exp=name, data_version=data_gen.VERSION - bool(stale), provenance=[dict(device='GPU')], _stale=list(stale),
                _dir=f'assets/{name}', _scale=scale, runs=out, runs_missing=list(missing), analysis_settings={},
                config=dict(sweep={}), **extra)


def sweep_summary(ood0=0.4, **kw):
    """sweep_celeb with 16 celeb_frac values: OOD rising from ood0 to 0.95, ID 0.99, years above cities at 0."""
    cfs = [round(0.02 * i, 2) for i in range(16)]
    ood = lambda c: ood0 + (0.95 - ood0) * min(1.0, c / 0.2)
    by_ft = lambda c: dict(birth_year=ood(c) + 0.2, death_year=ood(c) + 0.15, birth_city=ood(c) - 0.2, death_city=ood(c) - 0.15)
    s = fake_summary('sweep_celeb', [({'celeb_frac': c}, ood(c), by_ft(c), 0.99) for c in cfs], **kw)
    s['config'] = dict(sweep={'celeb_frac': cfs})
    return s


def state_of(*summaries):
    return dict(results={(s['exp'], s['_scale']): s for s in summaries}, toy=None, llm=None, vocab=None, bench=None,
                standin=None, standin_prov=None, findings='docs/findings.md')


def test_verdicts_need_current_complete_results_in_the_right_regime():
    """Findings 1 and 2 on made-up sweeps: reproduced only when the result is current, complete and
    leaves parallel data room to show; a stale, an incomplete and a ceiling result each say so."""
    good = state_of(sweep_summary())
    assert verdicts.finding1(good, 'paper')[0] == verdicts.finding2(good, 'paper')[0] == 'reproduced'
    assert verdicts.finding1(good, 'laptop')[0] == 'not run'            # each scale judged on its own results
    assert verdicts.finding2(good, 'paper')[2] == 'mean OOD 0.40 without parallel data, 0.95 with the most'
    stale = state_of(sweep_summary(stale=['made on data v1, now v2']))
    assert verdicts.finding1(stale, 'paper')[0] == verdicts.finding2(stale, 'paper')[0] == \
        'not judged: made on an older version of the dataset; to be re-run on a GPU'
    assert verdicts.finding2(stale, 'paper')[2] == ''                   # no number beside a result not judged
    part = sweep_summary()
    part['runs_missing'] = [r['name'] for r in part['runs'][8:]]
    part['runs'] = part['runs'][:8]
    assert verdicts.finding1(state_of(part), 'paper')[0] == 'provisional: 8 of 16 runs'
    ceiling = state_of(sweep_summary(ood0=0.9))
    status, text, _ = verdicts.finding1(ceiling, 'paper')
    assert status.startswith('not judged: the setting cannot show it (OOD at celeb_frac 0 is 0.90 >= 0.85') and '[holds]' in text
    for st in (stale, state_of(part), ceiling):
        assert 'reproduced' not in report.block_findings(st).split('\n')[2].split('|')[4]
    # ID that predicts OOD fails finding 1; a flat OOD fails finding 2
    bad = sweep_summary()
    for r in bad['runs']:
        r['final']['id_test']['all']['all'][0] = 0.9 + 0.1 * r['final']['ood_test']['all']['all'][0]
    assert verdicts.finding1(state_of(bad), 'paper')[0] == 'mixed'


def test_finding5_is_judged_on_the_selection_experiment():
    corr = {'normalized': {'act': {'concat': 0.9}, 'grad': {'concat': 0.8}}, 'same_fact': {'act': {'concat': 0.95}}}
    sel = dict(id_test=0.5, ood_1pct=0.9, unification=0.89, unification_paper=0.88, oracle=0.92, random=0.7)
    ckpt = dict(unification_plus=dict(n_runs=20, ood=0.8, last_best_id=0.79, last_best_ood=0.82, oracle=0.82, final=0.8, earlier=0.4))
    runs = [({'celeb_frac': 0.02 * (i % 11), 'lang_ratio': 1 + i // 11}, 0.3 + 0.6 * (i % 11) / 10) for i in range(22)]
    unif = {f'run{i}': dict(unification={'normalized': {'act': 0.5}}) for i in range(22) if i % 11}
    s = fake_summary('selection', runs, correlations=corr, selection=sel, ckpt_selection_summary=ckpt, **unif)
    s['analysis_settings'] = dict(unif_layer='concat')
    status, text, key = verdicts.finding5(state_of(s, dict(s, exp='selection_long')), 'paper')   # its checkpoints: C10
    assert status == 'reproduced' and "the paper's ratio: 0.95" in text and key == 'r(unification, final OOD) = 0.90; checkpoints it picks reach OOD 0.80, those picked by ID 0.79'
    sweep = dict(s, exp='sweep_celeb')
    assert verdicts.finding5(state_of(dict(sweep, _scale='laptop')), 'laptop')[0] == \
        'provisional: `selection` not run (`sweep_celeb`: reproduced)'
    assert verdicts.finding5(state_of(sweep), 'paper')[0] == 'reproduced, on `sweep_celeb`'   # C8: no GPU for selection
    flat = dict(s, runs=[dict(r, final={**r['final'], 'ood_test': {'all': {'all': [0.95, 0.95, 100]}}}) for r in s['runs']])
    assert verdicts.finding5(state_of(flat), 'paper')[0].startswith('not judged: the setting cannot show it (OOD of the runs with parallel data')
    assert verdicts.finding5(state_of(dict(s, selection=dict(sel, unification=0.75)), dict(s, exp='selection_long')),
                             'paper')[0] == 'mixed'


def test_scales_side_by_side_from_made_up_sweeps():
    """block_scales: a column per scale, and one for the stale result kept beside a partial current one;
    each cell read from the summaries (known here by construction), '–' where a measure is missing."""
    shape = dict(n_layer=6, n_embd=128, n_people=1000, batch_size=256, max_iters=12000)
    paper, laptop, old = sweep_summary(), sweep_summary(ood0=0.5, scale='laptop'), sweep_summary(ood0=0.3, stale=['made on data v1, now v2'])
    for s in (paper, laptop, old):
        s['config'].update(shape)
    for r in laptop['runs']:                 # early unification (at 5% of 1,000 steps) = final OOD: r = 1
        o = r['final']['ood_test']['all']['all'][0]
        r['trajectory'] = {'iter': [0, 50, 1000], 'unification': [0.0, o, o], 'lang_footprint': [0.5, 1 - o, 1 - o]}
    laptop['correlations'] = {metrics.HEADLINE: {'act': {'concat': 0.91}, 'grad': {'concat': 0.6, 'no_emb': 0.88}}}
    for r, emb in zip(laptop['runs'], (0.2, 0.4)):          # only two runs measured the shares: their mean
        r['grad_share'] = {'raw': {'emb': [0.01, 0.03], 'L1': [0.99, 0.97]}, 'adam': {'emb': [emb, emb + 0.2], 'L1': [1 - emb, 0.8 - emb]}}
    paper['runs'], paper['runs_missing'] = paper['runs'][:8], [r['name'] for r in paper['runs'][8:]]
    paper['_beside'] = old
    lines = report.block_scales(state_of(paper, laptop)).split('\n')
    assert lines[0] == '| `sweep_celeb` | laptop scale | paper scale | paper scale: the result kept beside it |'
    cells = {line.split(' | ')[0][2:]: line.split(' | ')[1:] for line in lines[2:]}
    assert cells['model, data, training'][0] == '6 layers x 128, 1,000 people, batch 256, 12,000 steps'
    assert cells['runs, machine'][1] == '8 of 16, GPU' and 'made on an older version of the dataset' in cells['runs, machine'][2]
    assert cells['final ID: mean (range)'][0] == '0.99 (0.99-0.99)'
    assert cells['mean final OOD at celeb_frac 0, by fact type'][1] == \
        'all 0.40, birth_year 0.60, birth_city 0.20, death_year 0.55, death_city 0.25'
    assert cells['mean final OOD by celeb_frac'][2].startswith('0: 0.30, 0.02: 0.36, 0.04: 0.43,')
    assert cells[f'r(unification, final OOD), activations ({metrics.HEADLINE})'][0].startswith('0.91')
    assert cells['r(unification, final OOD), gradients'][0] == "0.60; without the input embeddings 0.88; the input embeddings' " \
        "share of an example's squared gradient (language 0 / 1, mean over 2 runs): 0.01 / 0.03 as it is, 0.30 / 0.50 after Adam's division"
    assert cells['early r: unification; language footprint (finding 3)'][0] == '1.00; footprint -1.00'
    assert cells['early r: unification; language footprint (finding 3)'][1] == '–; footprint –'
    assert cells['checkpoint picks: the rule / last best ID / oracle'][1] == '–'


def test_emb_share_by_lang_ratio():
    """Where the runs vary lang_ratio, the input embeddings' gradient share is shown per ratio (the mean of its
    runs, known here by construction); with one ratio, one mean over every run; without the measure, nothing."""
    def run(ratio, raw, adam):
        return dict(knobs=dict(celeb_frac=0.0, lang_ratio=ratio),
                    grad_share=dict(raw=dict(emb=raw, L1=[1 - x for x in raw]), adam=dict(emb=adam, L1=[1 - x for x in adam])))
    runs = [run(1.0, [0.3, 0.3], [0.4, 0.4]), run(1.0, [0.5, 0.3], [0.2, 0.4]), run(20.0, [0.3, 0.4], [0.2, 0.9])]
    assert verdicts.emb_share(dict(runs=runs)) == (
        "; the input embeddings' share of an example's squared gradient (language 0 / 1, as it is -> after Adam's "
        "division, mean over the runs of each lang_ratio): lang_ratio 1: 0.40 / 0.30 -> 0.30 / 0.40, "
        "lang_ratio 20: 0.30 / 0.40 -> 0.20 / 0.90")
    assert verdicts.emb_share(dict(runs=runs[:2])) == (
        "; the input embeddings' share of an example's squared gradient (language 0 / 1, mean over 2 runs): "
        "0.40 / 0.30 as it is, 0.30 / 0.40 after Adam's division")
    assert verdicts.emb_share(dict(runs=[dict(knobs={}, grad_share=None)])) == ''


def test_finding4_from_made_up_results():
    """Finding 4's checks at celeb_frac 0: each holds, then one fails, then one experiment is missing,
    then one is stale."""
    cfs = [0.0, 0.3]
    S = [fake_summary('balance', [({'variant': v, 'celeb_frac': c}, o if c == 0 else 0.95) for v, o in
                                  (('balanced', 0.7), ('src', 0.5), ('imbalanced', 0.3)) for c in cfs]),
         fake_summary('shared_tokens', [({'shared_token_frac': f, 'celeb_frac': c}, 0.4 + 0.2 * f if c == 0 else 0.95)
                                        for f in (0.0, 0.5, 1.0) for c in cfs]),
         fake_summary('shared_tokens_role', [({'shared_token_frac': f, 'celeb_frac': c}, 0.4 + 0.3 * f if c == 0 else 0.95)
                                             for f in (0.0, 0.5, 1.0) for c in cfs]),
         fake_summary('char_low', [({'celeb_frac': c}, 0.7) for c in cfs]),
         fake_summary('char_cased', [({'celeb_frac': c}, 0.5) for c in cfs])]
    for n, o in (('templates_02', 0.45), ('templates_10', 0.7), ('templates_20', 0.75), ('people_10x', 0.6),
                 ('steps_10x', 0.62)):
        S.append(fake_summary(n, [({'celeb_frac': c}, o) for c in cfs]))
    by = {s['exp']: s for s in S}
    status, text, key = verdicts.finding4(state_of(*S), 'paper')
    assert status == 'reproduced' and 'mean OOD 2: 0.45, 5: 0.60, 10: 0.70, 20: 0.75' in text and key == '6 of 6 judged checks hold'
    # the shared-words check reads the variant that keeps a word's role; random slots are shown beside it
    assert ('shared filler words that keep their role: mean OOD 0.0: 0.40, 0.5: 0.55, 1.0: 0.70' in text
            and 'beside it, in random slots: 0.0: 0.40, 0.5: 0.50, 1.0: 0.60' in text)
    falls = dict(by, shared_tokens_role=fake_summary('shared_tokens_role', [({'shared_token_frac': f, 'celeb_frac': 0.0},
                                                                              0.5 - 0.2 * f) for f in (0.0, 0.5, 1.0)]))
    assert verdicts.finding4(state_of(*falls.values()), 'paper')[2] == '5 of 6 judged checks hold (not: shared filler words that keep their role)'
    assert verdicts.finding4(state_of(*S), 'laptop')[0] == 'not run'
    no_recall = dict(by, people_10x=fake_summary('people_10x', [({'celeb_frac': c}, 0.03, {}, 0.04) for c in cfs]))
    status, text, _ = verdicts.finding4(state_of(*no_recall.values()), 'paper')   # no in-language recall: no verdict from it
    assert status == 'reproduced (1 of 6 checks: the setting cannot show it)'
    assert ('control: OOD people_10x 0.03 vs 0.60 (rule: <= +0.05) (the setting cannot show it: people_10x ID 0.04 at '
            'celeb_frac 0 < 0.95)') in text
    by['people_10x'] = fake_summary('people_10x', [({'celeb_frac': c}, 0.8) for c in cfs])   # 10x events did help
    assert verdicts.finding4(state_of(*by.values()), 'paper')[::2] == ('mixed', '5 of 6 judged checks hold (not: control)')
    del by['char_low']
    assert verdicts.finding4(state_of(*by.values()), 'paper')[0] == 'provisional: 5 of 6 checks judged'
    stale = [fake_summary(s['exp'], [(r['knobs'], r['final']['ood_test']['all']['all'][0]) for r in s['runs']],
                          stale=['made on data v1, now v2']) for s in S]
    assert verdicts.finding4(state_of(*stale), 'paper')[0] == 'not judged: made on an older version of the dataset (6 of 6 checks)'


def test_finding6_shows_the_standin_llm_beside_the_toy_never_in_the_paper_column():
    """A made-up toy that holds every check and a stand-in LLM whose unification separates transfers in
    3 of 4 layers (1-3; not in the embeddings) and whose overlap explains less than celebrity: the laptop
    column keeps the toy's verdict and names the stand-in's own; the paper column waits for Gemma-2-2B."""
    toy = dict(table=[dict(lang_var=0.0, cross_acc=0.99, same_acc=0.99, seeds=[0, 1]),
                      dict(lang_var=0.1, cross_acc=0.7, same_acc=0.95, seeds=[0, 1])],
               scale_table=[dict(lang_var=0.1, lang_scale=0.01, cross_acc=0.97)])
    layer = lambda auc, sig: dict(auc=auc, significant=sig, mw_p=0.01, mw_significant=sig)
    llm = dict(per_layer=[layer(0.45, False), layer(0.6, True), layer(0.7, True), layer(0.65, True)], n_items=300,
               model='x.gguf', overlap=dict(variance_explained_sources=dict(r2_overlap=0.1, r2_celebrity=0.3)))
    state = dict(state_of(), toy=toy, standin=llm, standin_prov=dict(model=dict(package='tiny-llm')))
    status, text, key = verdicts.finding6(state, 'laptop')
    assert status == 'reproduced (toy); stand-in LLM: mixed' and key.endswith('separates correct transfers in 3 of 4 layers')
    assert '3 of 4 layers (75%; layers 1-3)' in text and '[holds]' in text.split('<br>')[1] and 'tiny-llm' in text
    assert verdicts.finding6(state, 'paper')[0] == 'not run'
    llm['overlap']['variance_explained_sources'].update(r2_overlap=0.5)
    assert verdicts.finding6(state, 'laptop')[0] == 'reproduced (toy); stand-in LLM: reproduced'
    assert verdicts.finding6(dict(state, standin=None), 'laptop')[0] == 'reproduced'
    assert verdicts.finding6(dict(state, toy=None), 'laptop')[0] == 'toy not run; stand-in LLM: reproduced'


def test_spearman_at_a_rule_boundary_is_exact():
    """Four points with one swap have Spearman exactly 0.8 (1 - 6 * 2 / (4 * 15)); a trend check at rho
    0.8 holds, and one more swap (0.6) fails."""
    assert verdicts.spearman([2, 5, 10, 20], [0.10, 0.30, 0.78, 0.61]) == 0.8
    assert verdicts.trend(['x'], 'k', [(2, 0.10), (5, 0.30), (10, 0.78), (20, 0.61)])[2] is True
    assert verdicts.trend(['x'], 'k', [(2, 0.30), (5, 0.10), (10, 0.78), (20, 0.61)])[2] is False


def test_means_closer_than_gap_tie_in_trend_checks():
    """C9: 0.9280 and 0.9277 are tied (ranks 0, 1.5, 1.5: rho = sqrt(3)/2), so the role check's means hold;
    means further apart than `gap` keep their order, and tie=0 is the usual Spearman."""
    assert verdicts.spearman([0, 0.5, 1], [0.476, 0.9280, 0.9277]) == 0.5
    assert verdicts.spearman([0, 0.5, 1], [0.476, 0.9280, 0.9277], tie=0.05) == round(3 ** 0.5 / 2, 9)
    assert verdicts.trend(['x'], 'k', [(0, 0.476), (0.5, 0.9280), (1, 0.9277)])[2] is True
    assert verdicts.trend(['x'], 'k', [(0, 0.476), (0.5, 0.99), (1, 0.93)])[2] is False   # 0.06 apart: ordered
    assert verdicts.trend(['x'], 'k', [(0, 0.50), (0.5, 0.52), (1, 0.54)])[2] is False    # all tied, and no rise
    # a value tied with both neighbours that are not tied with each other
    assert verdicts.spearman([1, 2, 3], [0.10, 0.14, 0.18], tie=0.05) == 1.0


def test_runs_table_shows_footprint_peak_after_init():
    """A run whose language footprint only falls: its peak is after initialisation, never the start."""
    s = fake_summary('sweep_celeb', [({'celeb_frac': 0.1}, 0.5)],
                     run0=dict(lang_footprint=dict(init=0.05, peak=0.03, peak_iter=60, final=0.01)))
    s['analysis_settings'] = dict(unif_layer='concat')
    line = report.runs_table(s)[-1]
    assert line.endswith('| 0.050 | 0.030 (60) | 0.010 |')


def test_runs_table_shows_gradient_unification_without_the_input_embeddings():
    """Change C4: a run's gradient unification without the input embeddings beside the whole gradient's, '–' for a
    measure an analysis lacks (before C4: the whole gradient only; no gradients: neither)."""
    unif = [dict(act=0.9, grad=0.54, grad_no_emb=0.93), dict(act=0.9, grad=0.6), dict(act=0.9)]
    s = fake_summary('sweep_celeb', [({'celeb_frac': c}, 0.5) for c in (0.1, 0.2, 0.3)],
                     **{f'run{i}': dict(unification={metrics.HEADLINE: u}) for i, u in enumerate(unif)})
    s['analysis_settings'] = dict(unif_layer='concat')
    lines = report.runs_table(s)
    assert 'unification grad: without the input embeddings / whole' in lines[0]
    assert [line.split(' | ')[-5] for line in lines[2:]] == ['0.930 / 0.540', '– / 0.600', '–']


def test_verdict_rules_are_written_down():
    """Every number report.py judges by stands in docs/verdicts.md beside its name."""
    text = open(os.path.join(ROOT, 'docs', 'verdicts.md')).read()
    for k, v in verdicts.RULES.items():
        assert f'`{k}` | {v} |' in text, k
