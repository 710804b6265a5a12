"""Invariants of the generated datasets (docs/method.md sections 2-5), on small populations."""
import collections
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import data_gen  # noqa: E402

SPLITS = data_gen.SPLITS


def make(tmp_path, **kw):
    cfg = dict(data_gen.DATA_DEFAULTS, data_dir=str(tmp_path / 'data'), n_people=200)
    cfg.update(kw)
    path = data_gen.build(cfg)
    return data_gen.load_meta(path), {s: data_gen.load_split(path, s) for s in SPLITS}


def key(x):
    return (x['person'], x['fact_type'], x['lang'], x['template'])


def fillers(meta):
    """{lang: [[filler words of one template], ...]}"""
    return {lg: [[w for w in t.split() if w not in ('{subject}', '{attr}')] for ts in by_ft.values() for t in ts]
            for lg, by_ft in meta['templates'].items()}


def test_train_size_constant_and_family_shared(tmp_path):
    metas, datas = zip(*[make(tmp_path / str(c), celeb_frac=c) for c in (0.0, 0.1, 0.2, 0.3)])
    T = 5
    assert {m['splits']['train'] for m in metas} == {4 * 200 * (T - 1)}
    assert all(m['people'] == metas[0]['people'] and m['templates'] == metas[0]['templates'] for m in metas)
    celebs = [{tuple(e) for e in m['celebrity_events']} for m in metas]
    assert [len(c) for c in celebs] == [0, 40, 80, 120]
    assert celebs[0] <= celebs[1] <= celebs[2] <= celebs[3]            # nested as celeb_frac grows
    for ev in ('birth', 'death'):                                       # an event keeps its language
        a, b = metas[1]['event_lang'][ev], metas[3]['event_lang'][ev]
        assert all(x == y for x, y in zip(a, b) if x >= 0 and y >= 0)
    # surplus left proportionally: non-celebrity training examples per (fact type, language) cell
    data = datas[3]
    nc = [x for x in data['train'] if not x['celebrity']]
    facts = {(x['person'], x['fact_type'], x['lang']) for x in nc}
    per_cell = collections.Counter((x['fact_type'], x['lang']) for x in nc)
    facts_cell = collections.Counter((f, l) for _, f, l in facts)
    for c, n in per_cell.items():
        assert abs(n - len(nc) * facts_cell[c] / len(facts)) <= 1


def test_every_fact_has_a_training_example(tmp_path):
    for kw in (dict(celeb_frac=0.3, lang_ratio=20.0), dict(celeb_frac=0.02, variant='balanced')):
        meta, data = make(tmp_path / kw.get('variant', 'src'), **kw)
        trained = {(x['person'], x['fact_type']) for x in data['train']}
        base = {(p['id'], ft) for p in meta['people'] if not p['extra'] for ft in meta['fact_types']}
        assert base <= trained
        seen = {(x['person'], x['fact_type']) for s in SPLITS for x in data[s]}
        assert seen == trained                                         # also every verbalized new fact


def test_id_test_held_out_from_train(tmp_path):
    meta, data = make(tmp_path, celeb_frac=0.2)
    train = {key(x) for x in data['train']}
    assert not train & {key(x) for x in data['id_test']}
    nc_facts = {(x['person'], x['fact_type']) for x in data['train'] if not x['celebrity']}
    assert nc_facts == {(x['person'], x['fact_type']) for x in data['id_test']}   # >= 1 held out per fact
    assert not any(x['celebrity'] for s in ('id_test', 'ood_test') for x in data[s])
    assert meta['splits']['id_test'] == len(data['id_test']) > len(nc_facts)      # surplus moved there


def test_celebrity_facts_in_train_with_every_template(tmp_path):
    meta, data = make(tmp_path, celeb_frac=0.15)
    train = {key(x) for x in data['train']}
    L, T = len(meta['languages']), len(meta['templates']['lang0']['birth_year'])
    events = meta['celebrity_events']
    assert len(events) == 60
    for p, ev in events:
        for ft in (f'{ev}_year', f'{ev}_city'):
            assert all((p, ft, l, t) in train for l in range(L) for t in range(T))
    flagged = {(x['person'], x['fact_type'].split('_')[0]) for x in data['train'] if x['celebrity']}
    assert flagged == {tuple(e) for e in events}


@pytest.mark.parametrize('n_langs', [2, 3])
def test_ood_test_is_every_template_of_the_other_languages(tmp_path, n_langs):
    meta, data = make(tmp_path, n_langs=n_langs, celeb_frac=0.1)
    T = len(meta['templates']['lang0']['birth_year'])
    lang = {(x['person'], x['fact_type']): x['lang'] for x in data['train'] if not x['celebrity']}
    want = {(p, ft, l, t) for (p, ft), l0 in lang.items() for l in range(n_langs) if l != l0 for t in range(T)}
    got = [key(x) for x in data['ood_test']]
    assert len(got) == len(set(got)) and set(got) == want
    assert all(x['attribute'] == meta['people'][x['person']][x['fact_type']] for x in data['ood_test'])


def test_shared_token_frac(tmp_path):
    meta, _ = make(tmp_path / 'a', shared_token_frac=0.0)
    words = [w for ts in fillers(meta).values() for t in ts for w in t]
    assert len(words) == len(set(words))                                # no word in two templates or languages
    frac = 0.25
    meta, _ = make(tmp_path / 'b', shared_token_frac=frac)
    f = fillers(meta)
    per_lang = {lg: [w for t in ts for w in t] for lg, ts in f.items()}
    S = {len(ws) for ws in per_lang.values()}
    assert len(S) == 1
    S = S.pop()
    for lg, ws in per_lang.items():
        others = {w for o, wo in per_lang.items() if o != lg for w in wo}
        share = sum(w in others for w in ws) / S
        assert 0 < share and abs(share - frac) <= 0.5 / S + 1e-12
        assert len(ws) == len(set(ws))                                  # still no word in two templates of a language


@pytest.mark.parametrize('ratio', [1.0, 20.0])
def test_lang_ratio(tmp_path, ratio):
    meta, data = make(tmp_path, lang_ratio=ratio, celeb_frac=0.1)
    langs = [l for ev in ('birth', 'death') for l in meta['event_lang'][ev] if l >= 0]
    n0, n1 = langs.count(0), langs.count(1)
    assert n0 + n1 == 400 - 40
    assert abs(n1 - (n0 + n1) / (ratio + 1)) <= 1
    ex = collections.Counter(x['lang'] for x in data['train'] if not x['celebrity'])
    assert abs(ex[0] / ex[1] - ratio) < 0.1 * ratio


def test_balanced_and_imbalanced(tmp_path):
    kw = dict(n_people=300, celeb_frac=0.02)
    src, bal, imb = [make(tmp_path / v, variant=v, **kw) for v in ('src', 'balanced', 'imbalanced')]
    counts = collections.Counter((x['fact_type'], x['attribute'], x['lang']) for x in bal[1]['train'])
    for (ft, a, l), n in counts.items():
        assert counts[(ft, a, 1 - l)] == n                              # language says nothing about the value
    assert bal[0]['mi_lang_attr']['mean'] < 1e-12
    assert bal[0]['splits'] == imb[0]['splits'] and bal[0]['splits']['train'] > src[0]['splits']['train']
    for ft in src[0]['fact_types'] + ['mean']:
        assert imb[0]['mi_lang_attr'][ft] > src[0]['mi_lang_attr'][ft]
    # parallel data and the base population unchanged; the same new events, languages flipped
    par = [sorted(x['text'] for x in d[1]['train'] if x['celebrity']) for d in (src, bal, imb)]
    assert par[0] == par[1] == par[2] and par[0]
    base = [sorted(x['text'] for x in d[1]['train'] if x['person'] < 300) for d in (src, bal, imb)]
    assert base[0] == base[1] == base[2]
    assert [[p, e] for p, e, _ in bal[0]['extra_events']] == [[p, e] for p, e, _ in imb[0]['extra_events']]
    assert all(a[2] == 1 - b[2] for a, b in zip(bal[0]['extra_events'], imb[0]['extra_events']))
    assert bal[0]['extra_events'] and bal[0]['people'] == imb[0]['people']


def test_char_tokenizers(tmp_path):
    word, _ = make(tmp_path / 'w', tokenizer='word')
    letters = {}
    for tok in ('char_low', 'char_cased'):
        meta, data = make(tmp_path / tok, tokenizer=tok)
        assert meta['people'] == word['people']                          # names and attributes spelled the same
        f = fillers(meta)
        letters[tok] = [set(''.join(w for t in f[lg] for w in t)) for lg in meta['languages']]
        vocab = meta['vocab']
        for x in data['train'][:300] + data['ood_test'][:300]:
            assert all(len(vocab[t]) == 1 for t in x['tokens'][1:-1])    # one token per character
            assert ''.join(vocab[t] for t in x['tokens'][1:-1]) == x['text']
            assert vocab[x['tokens'][x['prompt_len'] - 1]] == ' '        # prompt ends with the space
            assert ''.join(vocab[t] for t in x['tokens'][x['prompt_len']:-1]) == x['attribute']
            assert data_gen.encode(meta, x['text']) == x['tokens'][1:-1]
    assert letters['char_low'][0] & letters['char_low'][1]
    assert not letters['char_cased'][0] & letters['char_cased'][1]
    assert all(c.isalpha() for ls in letters.values() for s in ls for c in s)


@pytest.mark.slow
def test_block_size_shared_by_family(tmp_path):
    for tok in ('word', 'char_low'):
        runs = [make(tmp_path / f'{tok}{c}', tokenizer=tok, celeb_frac=c) for c in (0.0, 0.3)]
        runs.append(make(tmp_path / f'{tok}b', tokenizer=tok, celeb_frac=0.02, variant='balanced'))
        assert len({m['block_size'] for m, _ in runs}) == 1 and all(m['vocab'] == runs[0][0]['vocab'] for m, _ in runs)
        longest = max(len(x['tokens']) for _, d in runs for s in SPLITS for x in d[s])
        assert longest <= runs[0][0]['block_size'] <= longest + 6
        if tok == 'word':
            assert longest == runs[0][0]['block_size']


def test_word_tokens(tmp_path):
    meta, data = make(tmp_path)
    vocab = meta['vocab']
    assert vocab[:3] == ['<pad>', '<bos>', '<eos>'] and len(set(vocab)) == len(vocab)
    for s in SPLITS:
        for x in data[s]:
            t = x['tokens']
            assert t[0] == 1 and t[-1] == 2 and len(t) == x['prompt_len'] + 2   # one attribute token
            assert [vocab[i] for i in t[1:-1]] == x['text'].split()
            assert vocab[t[x['prompt_len']]] == x['attribute']
            assert ' '.join(vocab[i] for i in t[1:x['prompt_len']]).count(x['subject']) == 1
    assert all(len(p['name'].split()) == 2 for p in meta['people'])
    firsts = collections.Counter(p['first'] for p in meta['people'])
    assert max(firsts.values()) > 1 and len({p['name'] for p in meta['people']}) == len(meta['people'])


def test_mi_statistics(tmp_path):
    assert data_gen.mutual_information([[5, 0], [0, 5]]) == pytest.approx(1.0)
    assert data_gen.mutual_information([[3, 3], [1, 1]]) == pytest.approx(0.0, abs=1e-12)
    meta, data = make(tmp_path, lang_ratio=3.0)

    def mi(pairs):  # I(X; Y) in bits, straight from the definition
        n, pxy = len(pairs), collections.Counter(pairs)
        px, py = collections.Counter(a for a, _ in pairs), collections.Counter(b for _, b in pairs)
        return sum(c / n * np.log2(c * n / (px[a] * py[b])) for (a, b), c in pxy.items())
    for ft in meta['fact_types']:
        pairs = [(x['lang'], x['attribute']) for x in data['train'] if x['fact_type'] == ft]
        assert meta['mi_lang_attr'][ft] == pytest.approx(mi(pairs), abs=1e-9)
    toks = [(t, x['lang']) for x in data['train'] for t in x['tokens'][1:x['prompt_len']]]
    assert meta['mi_token_lang'] == pytest.approx(mi(toks), abs=1e-9) and meta['mi_token_lang'] > 0.3
    low, _ = make(tmp_path / 'c', tokenizer='char_low', lang_ratio=3.0)
    assert low['mi_token_lang'] < 0.1 * meta['mi_token_lang']           # shared letters hide the language


def test_determinism_and_split_seed(tmp_path):
    cfg = dict(data_gen.DATA_DEFAULTS, data_dir=str(tmp_path), n_people=200, celeb_frac=0.1)
    path = data_gen.build(cfg)
    files = sorted(os.listdir(path))
    first = {f: open(os.path.join(path, f), 'rb').read() for f in files}
    assert data_gen.build(cfg) == path and sorted(os.listdir(path)) == files
    assert all(open(os.path.join(path, f), 'rb').read() == b for f, b in first.items())
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(path)]     # no temporary folders left
    other = data_gen.build(dict(cfg, split_seed=1))
    a, b = data_gen.load_meta(path), data_gen.load_meta(other)
    assert other != path and a['people'] == b['people'] and a['templates'] == b['templates']
    assert a['vocab'] == b['vocab']
    assert {key(x) for x in data_gen.load_split(path, 'train')} != {key(x) for x in data_gen.load_split(other, 'train')}


@pytest.mark.parametrize('knob,value', [
    ('celeb_frac', 1.5), ('celeb_frac', -0.1), ('celeb_frac', 0.5), ('n_templates', 1), ('lang_ratio', 0.5),
    ('tokenizer', 'bpe'), ('variant', 'both'), ('shared_token_mode', 'roles'), ('n_people', 50), ('n_people', 30000), ('data_dir', None)])
def test_bad_input(tmp_path, knob, value):
    data_dir = tmp_path / 'data'
    cfg = dict(data_gen.DATA_DEFAULTS, data_dir=str(data_dir), n_people=200)
    if knob == 'data_dir':                                             # a folder below a file: not writable
        (tmp_path / 'file').write_text('')
        data_dir = tmp_path / 'file' / 'data'
        value = str(data_dir)
    cfg[knob] = value
    with pytest.raises(ValueError, match='n_first_names' if knob == 'n_people' else knob) as e:
        data_gen.build(cfg)
    assert '\n' not in str(e.value)
    assert not data_dir.exists() or not os.listdir(data_dir)            # nothing half-written


def test_no_half_written_dataset(tmp_path, monkeypatch):
    cfg = dict(data_gen.DATA_DEFAULTS, data_dir=str(tmp_path), n_people=200, dataset='d')

    def fail(path, meta):
        raise OSError('disk full')
    monkeypatch.setattr(data_gen, 'write_meta', fail)
    with pytest.raises(OSError):
        data_gen.build(cfg)
    assert os.listdir(tmp_path) == []
    monkeypatch.undo()
    path = data_gen.build(cfg)
    before = open(os.path.join(path, 'train.jsonl')).read()
    monkeypatch.setattr(data_gen, 'write_meta', fail)
    with pytest.raises(OSError):
        data_gen.build(dict(cfg, split_seed=3))                          # a failed rebuild keeps the old dataset
    assert os.listdir(tmp_path) == ['d'] and open(os.path.join(path, 'train.jsonl')).read() == before


def test_prepare_reuses_matching_dataset(tmp_path, capsys):
    cfg = dict(data_gen.DATA_DEFAULTS, data_dir=str(tmp_path), n_people=200, dataset='d')
    path = data_gen.prepare(cfg)
    stamp = os.stat(os.path.join(path, 'train.jsonl')).st_mtime_ns
    assert 'building' in capsys.readouterr().out
    assert data_gen.prepare(dict(cfg, max_iters=5)) == path             # foreign (train) keys are ignored
    assert 'building' not in capsys.readouterr().out
    assert os.stat(os.path.join(path, 'train.jsonl')).st_mtime_ns == stamp
    data_gen.prepare(dict(cfg, celeb_frac=0.2))                         # same name, other knobs: rebuilt
    assert data_gen.load_meta(path)['config']['celeb_frac'] == 0.2
    with pytest.raises(ValueError, match='meta.json'):
        data_gen.load_meta(str(tmp_path / 'missing'))


def test_dataset_name():
    d = data_gen.DATA_DEFAULTS
    assert data_gen.dataset_name(d) == 'default'
    assert data_gen.dataset_name(dict(d, celeb_frac=0.08)) == 'celeb_frac0.08'
    name = data_gen.dataset_name(dict(d, tokenizer='char_low', lang_ratio=20.0))
    assert name == 'char_low-lang_ratio20.0'
    assert data_gen.dataset_name(dict(d, dataset='mine', celeb_frac=0.2)) == 'mine'
    long = data_gen.dataset_name({k: (v + 1 if type(v) is int else v) for k, v in d.items()})
    assert len(long) <= 80 and long == data_gen.dataset_name({k: (v + 1 if type(v) is int else v) for k, v in d.items()})


def test_cli(tmp_path):
    cfg_file = tmp_path / 'tiny.py'
    cfg_file.write_text("# tiny\nn_people = 60\nn_first_names = 20\nn_last_names = 20\nout_dir = 'out/tiny'\n")
    run = subprocess.run([sys.executable, 'data_gen.py', str(cfg_file), f'--data_dir={tmp_path}', '--celeb_frac=0.2'],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert 'splits: train 960' in run.stdout and 'mi_token_lang' in run.stdout
    assert run.stdout.count(' train ') >= 3
    meta = data_gen.load_meta(str(tmp_path / 'n_people60-n_first_names20-n_last_names20-celeb_frac0.2'))
    assert meta['splits']['train'] == 960
    bad = subprocess.run([sys.executable, 'data_gen.py', '--celeb_frac=2', f'--data_dir={tmp_path / "x"}'],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and 'celeb_frac' in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / 'x').exists()
    typo = subprocess.run([sys.executable, 'data_gen.py', '--celeb_fract=0.1', f'--data_dir={tmp_path / "x"}'],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert typo.returncode != 0 and "did you mean 'celeb_frac'" in typo.stderr
    # same config in a fresh process (other hash seed) = byte-identical files
    path = tmp_path / 'n_people60-n_first_names20-n_last_names20-celeb_frac0.2'
    first = {f: (path / f).read_bytes() for f in os.listdir(path)}
    again = subprocess.run(run.args, cwd=ROOT, capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, PYTHONHASHSEED='123'))
    assert again.returncode == 0 and {f: (path / f).read_bytes() for f in os.listdir(path)} == first


def templates_per_fact(data, split='train'):
    """{(person, fact type, lang): number of templates} of the non-celebrity facts of a split."""
    return collections.Counter((x['person'], x['fact_type'], x['lang']) for x in data[split] if not x['celebrity'])


@pytest.mark.parametrize('celeb_frac', [0.0, 0.12, 0.3])
def test_drops_even_by_event(tmp_path, celeb_frac):
    """Under the constant training size every non-celebrity fact of a (fact type, language) cell
    keeps floor(b) or ceil(b) training templates, b = the cell's quota / its facts (docs/method.md section 4)."""
    meta, data = make(tmp_path, celeb_frac=celeb_frac)
    per_fact = templates_per_fact(data)
    cells = collections.defaultdict(list)
    for (p, ft, lang), n in per_fact.items():
        cells[(ft, lang)].append(n)
    for counts in cells.values():
        b = sum(counts) / len(counts)
        assert set(counts) <= {int(np.floor(b)), int(np.ceil(b))}, (b, collections.Counter(counts))
    if celeb_frac == 0.0:
        assert set(per_fact.values()) == {4}                              # T - 1 = 4: only the held-out one is left
    # the dropped verbalizations are in the ID test: train + ID = every template of the fact's language
    idt = templates_per_fact(data, 'id_test')
    assert all(per_fact[f] + idt[f] == 5 for f in per_fact)


def test_drops_nested_across_family(tmp_path):
    """A fact's training templates at a higher celeb_frac are a subset of those at a lower one."""
    _, lo = make(tmp_path / 'lo', celeb_frac=0.1)
    _, hi = make(tmp_path / 'hi', celeb_frac=0.2)
    lo_keys = {key(x) for x in lo['train']}
    hi_nc = [x for x in hi['train'] if not x['celebrity']]
    lo_celeb = {(x['person'], x['fact_type']) for x in lo['train'] if x['celebrity']}
    assert all(key(x) in lo_keys for x in hi_nc if (x['person'], x['fact_type']) not in lo_celeb)


@pytest.mark.parametrize('pos', ['not_last', 'first', 'any'])
def test_subject_position(tmp_path, pos):
    meta, _ = make(tmp_path, subject_pos=pos, n_templates=10, celeb_frac=0.0)
    before_attr, first = [], []
    for by_ft in meta['templates'].values():
        for ts in by_ft.values():
            for t in ts:
                w = t.split()
                before_attr.append(w[w.index('{attr}') - 1] == '{subject}')
                first.append(w[0] == '{subject}')
    if pos == 'not_last':
        assert not any(before_attr)                     # a template word always predicts the attribute
    elif pos == 'first':
        assert all(first) and not any(before_attr)
    else:
        assert any(before_attr)                         # 80 templates: some put the subject last


def test_truncated_split_is_named_and_rebuilt(tmp_path, capsys):
    cfg = dict(data_gen.DATA_DEFAULTS, data_dir=str(tmp_path), n_people=200, dataset='d')
    path = data_gen.prepare(cfg)
    file = os.path.join(path, 'train.jsonl')
    lines = open(file).readlines()
    open(file, 'w').writelines(lines[:len(lines) // 2])                    # cut at a line boundary
    with pytest.raises(ValueError, match=r'train.jsonl has 1600 examples, meta.json says 3200') as e:
        data_gen.load_split(path, 'train')
    assert '\n' not in str(e.value)
    open(file, 'w').writelines(lines[:10] + [lines[10][:25]])             # cut mid-line
    with pytest.raises(ValueError, match=r'train.jsonl line 11 is not valid JSON'):
        data_gen.load_split(path, 'train')
    capsys.readouterr()
    assert data_gen.prepare(cfg) == path                                   # prepare() notices and rebuilds
    assert 'train.jsonl is incomplete' in capsys.readouterr().out
    assert open(file).readlines() == lines


def test_help_lists_every_knob():
    run = subprocess.run([sys.executable, 'data_gen.py', '--help'], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0
    for k, v in data_gen.DATA_DEFAULTS.items():
        assert f'--{k}={v!r}' in run.stdout
    assert "one of 'not_last', 'any', 'first'" in run.stdout and 'out_dir' in run.stdout


def test_shared_token_family_shares_vocabulary(tmp_path):
    """shared_token_frac changes which filler words the languages share, not the vocabulary size or the
    sequence length, so its values can train in lockstep; at 1 no single token tells the language."""
    metas = [make(tmp_path / str(f), shared_token_frac=f)[0] for f in (0.0, 0.5, 1.0)]
    assert len({len(m['vocab']) for m in metas}) == 1 and len({m['block_size'] for m in metas}) == 1
    assert metas[0]['mi_token_lang'] > 0.5 > metas[1]['mi_token_lang'] > metas[2]['mi_token_lang']
    f0, f1 = fillers(metas[2]).values()
    assert {w for t in f0 for w in t} == {w for t in f1 for w in t}    # one pool for both languages


def test_temporary_folder_of_a_killed_build_is_removed_by_the_next(tmp_path):
    """kill -9 while a dataset is written leaves its hidden temporary folder; the next build removes
    it (its process is gone) and keeps the folder of a build still running (here: this process's)."""
    code = ("import os, signal, data_gen\n"
            "def die(path, meta): os.kill(os.getpid(), signal.SIGKILL)\n"
            "data_gen.write_meta = die\n"
            f"data_gen.build(dict(data_gen.DATA_DEFAULTS, data_dir={str(tmp_path)!r}, n_people=200, dataset='d'))\n")
    run = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, timeout=60)
    assert run.returncode == -9
    left = os.listdir(tmp_path)
    assert len(left) == 1 and left[0].startswith('.d.tmp.') and 'train.jsonl' in os.listdir(tmp_path / left[0])
    alive = tempfile.mkdtemp(prefix=data_gen.temp_name('tmp', str(tmp_path / 'e')), dir=tmp_path)
    data_gen.build(dict(data_gen.DATA_DEFAULTS, data_dir=str(tmp_path), n_people=200, dataset='d'))
    assert sorted(os.listdir(tmp_path)) == sorted(['d', os.path.basename(alive)])


def test_full_disk_is_named(tmp_path, monkeypatch):
    """A build on a full disk: a small filesystem where one can be mounted (root on Linux), else an
    injected ENOSPC. The error names the dataset and the full disk; the torn files go with their folder."""
    disk = tmp_path / 'disk'
    disk.mkdir()
    if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', str(disk)], capture_output=True).returncode:
        def full(path, rows):
            with open(path, 'w') as f:
                f.write('{"text": "half a li')
            raise OSError(28, 'No space left on device')
        monkeypatch.setattr(data_gen, 'write_jsonl', full)
    cfg = dict(data_gen.DATA_DEFAULTS, data_dir=str(disk), n_people=200, dataset='d')   # ~1.3 MB
    try:
        with pytest.raises(OSError, match=rf"^data_gen error: cannot write dataset {disk}/d: no space left on device$"):
            data_gen.build(cfg)
        assert os.listdir(disk) == []
    finally:
        subprocess.run(['umount', '-l', str(disk)], capture_output=True)


def placements(meta):
    """{lang: {shared word: (fact type, template length, its index among the template's fillers, the template's
    shared words with their indices)}} for the filler words common to all languages."""
    words = [{w.lower() for ts in by_ft.values() for t in ts for w in t.split()} for by_ft in meta['templates'].values()]
    common = set.intersection(*words) - {'{subject}', '{attr}'}
    out = {}
    for lg, by_ft in meta['templates'].items():
        out[lg] = {}
        for ft, ts in by_ft.items():
            for t in ts:
                ws = [w.lower() for w in t.split() if w not in ('{subject}', '{attr}')]
                group = frozenset((i, w) for i, w in enumerate(ws) if w in common)
                out[lg].update({w: (ft, len(ws), i, group) for i, w in group})
    return out


@pytest.mark.parametrize('frac', [0.5, 1.0])
def test_role_mode_keeps_every_shared_word_in_its_slot(tmp_path, frac):
    """shared_token_mode='role': every common word sits at the same index among the fillers of the same template
    (same fact type, same length, same other common words) in both languages; 'random' (the default) puts most of
    them elsewhere (false friends). Both modes share vocabulary, block size and template lengths, and no template
    is the same in two languages (its OOD examples would be training examples)."""
    role, _ = make(tmp_path / 'role', shared_token_frac=frac, shared_token_mode='role')
    rand, _ = make(tmp_path / 'rand', shared_token_frac=frac)
    p0, p1 = placements(role).values()
    S = sum(len(t) for t in fillers(role)['lang0'])
    assert len(p0) == int(np.floor(frac * S + 0.5)) and p0 == p1
    r0, r1 = placements(rand).values()
    assert len(r0) == len(p0) and sum(r0[w][0] != r1[w][0] for w in r0) > len(r0) / 2    # false friends: other fact type
    assert [len(t) for t in fillers(role)['lang1']] == [len(t) for t in fillers(rand)['lang1']]
    assert len(role['vocab']) == len(rand['vocab']) and role['block_size'] == rand['block_size']
    t0, t1 = ({t for ts in by_ft.values() for t in ts} for by_ft in role['templates'].values())
    assert not t0 & t1
    if frac == 1.0:                                    # one pool, same roles: only the subject's place tells the language
        f0, f1 = ([sorted(' '.join(w for w in t.split() if w != '{subject}') for t in ts) for ts in by_ft.values()]
                  for by_ft in role['templates'].values())
        assert f0 == f1
    with pytest.raises(ValueError, match="subject_pos='first'"):     # no room to move the subject
        make(tmp_path / 'first', shared_token_frac=1.0, shared_token_mode='role', subject_pos='first')


def test_role_mode_at_no_sharing_is_the_random_dataset(tmp_path):
    a, da = make(tmp_path / 'a', shared_token_frac=0.0, shared_token_mode='role')
    b, db = make(tmp_path / 'b', shared_token_frac=0.0)
    assert a['templates'] == b['templates'] and da == db and a['name'] != b['name']


def digest(path):
    """sha1 of a dataset's split files and meta.json, without the knobs that do not change the data."""
    h = hashlib.sha1()
    for s in SPLITS:
        with open(os.path.join(path, f'{s}.jsonl'), 'rb') as f:
            h.update(f.read())
    meta = data_gen.load_meta(path)
    for k in ('data_dir', 'shared_token_mode'):
        meta['config'].pop(k)
    return h.update((json.dumps(meta, indent=1) + '\n').encode()) or h.hexdigest()


def test_random_mode_is_todays_data(tmp_path):
    """shared_token_mode='random' (the default) writes byte for byte the datasets of data version 2 as built before
    the knob existed (tests/fixtures/data_v2_digests.json, the default config among them), so no result goes stale;
    a dataset built then is still found current by prepare()."""
    with open(os.path.join(ROOT, 'tests', 'fixtures', 'data_v2_digests.json')) as f:
        fixture = json.load(f)
    assert data_gen.VERSION == fixture['version']
    for d in fixture['datasets']:
        cfg = dict(data_gen.DATA_DEFAULTS, data_dir=str(tmp_path), **d['knobs'])
        path = data_gen.build(cfg)
        assert digest(path) == d['sha1'], f"{d['knobs']}: the generator's output changed: bump data_gen.VERSION"
    meta = data_gen.load_meta(path)
    del meta['config']['shared_token_mode']                              # as written before the knob existed
    data_gen.write_meta(os.path.join(path, 'meta.json'), meta)
    before = os.stat(os.path.join(path, 'train.jsonl')).st_mtime_ns
    assert data_gen.prepare(cfg) == path and os.stat(os.path.join(path, 'train.jsonl')).st_mtime_ns == before
