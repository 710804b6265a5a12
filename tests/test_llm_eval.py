"""llm_eval.py on tiny random Gemma-2 and GPT-NeoX models built locally (no hub access), a small
ECLeKTic-format fixture, and statistics on inputs whose answers are known."""
import json
import os

import numpy as np
import pytest
import torch

import llm_eval

FIX = os.path.join(os.path.dirname(__file__), 'fixtures')
DATA = os.path.join(FIX, 'eclektic_tiny.jsonl')
PARA = os.path.join(FIX, 'eclektic_tiny_paraphrases.jsonl')
LANGS = 'de,en,fr'


def cfg_for(tmp_path, model_dir, **kw):
    return dict(llm_eval.DEFAULTS, model=str(model_dir), data=DATA, languages=LANGS, out_dir=str(tmp_path / 'out'),
                device='cpu', dtype='float32', max_new_tokens=4, batch_size=5, **kw)


@pytest.fixture(scope='module')
def tiny_models(tmp_path_factory):
    """A byte-level BPE tokenizer trained on the fixture text, and a tiny random Gemma-2 and
    GPT-NeoX (2 layers, d=32) saved with it."""
    transformers = pytest.importorskip('transformers')
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    texts = [v for line in open(DATA, encoding='utf-8') for v in json.loads(line).values() if isinstance(v, str)]
    texts += [q for line in open(PARA, encoding='utf-8') for q in json.loads(line)['questions']]
    bpe = Tokenizer(models.BPE(unk_token='<unk>'))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=['<pad>', '<bos>', '<eos>', '<unk>'],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(texts, trainer)
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token='<pad>', bos_token='<bos>',
                                               eos_token='<eos>', unk_token='<unk>')
    V, ids = bpe.get_vocab_size(), dict(pad_token_id=0, bos_token_id=1, eos_token_id=2)
    configs = {
        'gemma2': transformers.Gemma2Config(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                            num_attention_heads=2, num_key_value_heads=1, head_dim=16, **ids),
        'neox': transformers.GPTNeoXConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                           num_attention_heads=2, **ids)}
    root, out = tmp_path_factory.mktemp('models'), {}
    for name, c in configs.items():
        torch.manual_seed(0)
        transformers.AutoModelForCausalLM.from_config(c).save_pretrained(root / name)
        tok.save_pretrained(root / name)
        out[name] = root / name
    return out


# ---------------------------------------------------------------- statistics with known answers

def test_roc_auc_known_and_bruteforce():
    assert llm_eval.roc_auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert llm_eval.roc_auc([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 0.0
    assert llm_eval.roc_auc([0.5] * 4, [0, 1, 0, 1]) == 0.5
    assert np.isnan(llm_eval.roc_auc([0.1, 0.2], [1, 1]))
    rng = np.random.default_rng(0)
    s, y = rng.integers(0, 5, 60).astype(float), rng.random(60) < 0.4  # many ties
    pos, neg = s[y], s[~y]
    brute = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg))
    assert llm_eval.roc_auc(s, y) == pytest.approx(brute)


def test_separation_stats_bonferroni():
    stats = pytest.importorskip('scipy.stats')
    rng = np.random.default_rng(0)
    y = np.array([1] * 20 + [0] * 20, bool)
    S = rng.normal(size=(40, 3))
    S[:, 1] = np.where(y, 2.0, -2.0) + 0.1 * rng.normal(size=40)  # layer 1 separates perfectly
    res = llm_eval.separation_stats(S, y, 0.05)
    assert len(res) == 3 and res[1]['auc'] == 1.0 and res[1]['significant']
    for k, r in enumerate(res):
        p = stats.ttest_ind(S[y, k], S[~y, k], equal_var=False).pvalue
        assert r['p'] == pytest.approx(p) and r['p_bonferroni'] == pytest.approx(min(1.0, 3 * p))
    assert res[1]['n_correct'] == 20 and res[1]['mean_correct'] > res[1]['mean_incorrect']
    # 1-D input: one test, no correction
    one = llm_eval.separation_stats(np.where(y, 1.0, 0.0) + 0.01 * rng.normal(size=40), y, 0.05)
    assert len(one) == 1 and one[0]['auc'] == 1.0


def test_unification_score_by_hand():
    e = torch.eye(4)
    # 3 questions, 2 layers, d=4: layer 0 has X identical to Y; layer 1 has Y orthogonal to X
    H = torch.stack([torch.stack([e[0], e[0]]), torch.stack([e[0], e[0]]), torch.stack([e[0], e[1]])])
    H[1, 1] = torch.nn.functional.normalize(torch.tensor([1., 1., 0, 0]), dim=0)  # second source question, layer 1
    u, kind = llm_eval.unification(H, [0, 1], [2], [], 'cross')
    assert kind == 'ratio'
    # layer 0: sim(X,Y)=1, sim(X,X)=1 -> 1; layer 1: sim(X,Y)=(0+.7071)/2, sim(X,X)=.7071 -> 0.5
    assert u == pytest.approx([1.0, 0.5], abs=1e-6)
    u, kind = llm_eval.unification(H, [0], [2], [], 'cross')
    assert kind == 'cross' and u == pytest.approx([1.0, 0.0], abs=1e-6)
    u, kind = llm_eval.unification(H, [0], [2], [1], 'other')  # normalised by the cosine with another fact
    assert kind == 'ratio_other' and u == pytest.approx([1.0, 0.0], abs=1e-6)


def test_judge_match():
    assert llm_eval.judge_match('q', 'Paris', 'It is paris.', 'en')
    assert llm_eval.judge_match('q', 'Lübbenhof', 'LÜBBENHOF!', 'de')
    assert not llm_eval.judge_match('q', '18', '1872', 'en')  # word boundaries, not substrings
    assert llm_eval.judge_match('q', '東京', '東京都です', 'ja')   # no spaces in Japanese
    assert not llm_eval.judge_match('q', '', 'anything', 'en')


def test_overlap_analysis_known():
    pytest.importorskip('scipy')
    jac = {'en-fr': 0.3, 'en-de': 0.2, 'fr-en': 0.3, 'fr-de': 0.1, 'de-en': 0.2, 'de-fr': 0.1}
    pair = {k: (0.1 + 2 * v, 10) for k, v in jac.items()}  # accuracy linear in overlap
    res = llm_eval.overlap_analysis(pair, jac, {'en': 0.5, 'fr': 0.2, 'de': 0.9})
    assert res['pearson']['r'] == pytest.approx(1.0) and res['spearman']['rho'] == pytest.approx(1.0)
    assert res['variance_explained_pairs']['r2_overlap'] == pytest.approx(1.0)
    assert res['variance_explained_pairs']['r2_both'] == pytest.approx(1.0)
    assert 0 <= res['variance_explained_pairs']['r2_celebrity'] < 1
    assert llm_eval.r2([1.0, 2.0], [0.0, 1.0]) is None  # underdetermined


# ---------------------------------------------------------------- data checks and errors

def test_bad_inputs(tmp_path, tiny_models):
    rows = [json.loads(l) for l in open(DATA, encoding='utf-8')]
    p = tmp_path / 'd.jsonl'
    p.write_text('\n'.join(json.dumps({k: v for k, v in r.items() if k not in ('fr_a', 'answer')}) for r in rows))
    with pytest.raises(SystemExit, match='missing fields answer, fr_a'):
        llm_eval.load_items(dict(llm_eval.DEFAULTS, data=str(p), languages=LANGS))
    p.write_text('\n'.join(json.dumps(dict(r, de_q='', original_lang=r['original_lang'].replace('de', 'en')))
                           for r in rows))
    with pytest.raises(SystemExit, match="language 'de' has no questions"):
        llm_eval.load_items(dict(llm_eval.DEFAULTS, data=str(p), languages=LANGS))
    with pytest.raises(SystemExit, match='missing fields es_q, es_a'):
        llm_eval.load_items(dict(llm_eval.DEFAULTS, data=DATA, languages='en,es'))
    with pytest.raises(SystemExit, match=r"cannot load model .*pass a local directory"):
        llm_eval.load_model(str(tmp_path / 'no_such_model'), cfg_for(tmp_path, ''))
    items = llm_eval.load_items(dict(llm_eval.DEFAULTS, data=DATA, languages=LANGS))
    qs = llm_eval.build_questions(items, llm_eval.load_paraphrases(PARA, items), ['de', 'en', 'fr'])
    assert len(items) == 12 and len(qs) == 12 * 3 + 14


# ---------------------------------------------------------------- the whole pipeline

@pytest.mark.parametrize('arch', ['gemma2', 'neox'])
def test_pipeline(tmp_path, tiny_models, arch):
    pytest.importorskip('scipy')
    pytest.importorskip('wordfreq')
    good = {0, 1, 2, 5, 8, 9}  # a judge with known answers: these facts "transfer" in every language
    judge = lambda rows: [r['kind'] != 'target' or r['q_id'] in good for r in rows]
    cfg = cfg_for(tmp_path, tiny_models[arch], paraphrases=PARA)
    res, H = llm_eval.run(cfg, judge_fn=judge)
    out = tmp_path / 'out'
    for f in ['config.json', 'answers.jsonl', 'transfers.jsonl', 'results.json', 'vocab_overlap.json',
              'vocab_overlap.png', 'unification_auc.png']:
        assert (out / f).is_file(), f
    answers = [json.loads(l) for l in open(out / 'answers.jsonl', encoding='utf-8')]
    transfers = [json.loads(l) for l in open(out / 'transfers.jsonl', encoding='utf-8')]
    assert H.shape == (12 * 3 + 14, 3, 32) and len(answers) == H.shape[0]
    assert torch.allclose(H.norm(dim=-1), torch.ones(H.shape[:2]), atol=1e-5)
    assert len(transfers) == 24 and all(len(t['unification']) == 3 and t['unif_kind'] == 'ratio' for t in transfers)
    saved = json.load(open(out / 'results.json', encoding='utf-8'))
    assert saved['n_layers'] == 3 and len(saved['per_layer']) == 3 and saved['unif_kinds']['ratio'] == 24
    assert saved['per_layer'][0]['n_correct'] == 12 and saved['per_layer'][0]['n_incorrect'] == 12
    # the celebrity field is its own baseline: AUC from the known labels
    celeb = {json.loads(l)['q_id']: json.loads(l)['celebrity'] for l in open(DATA, encoding='utf-8')}
    expect = llm_eval.roc_auc([celeb[t['q_id']] for t in transfers], [t['q_id'] in good for t in transfers])
    assert saved['celebrity']['auc'] == pytest.approx(expect)
    langs = LANGS.split(',')
    assert set(saved['transfer_accuracy']) == {f'{a}-{b}' for a in langs for b in langs if a != b}
    assert saved['transfer_accuracy']['en-fr']['acc'] == pytest.approx(0.75)  # en items 0-3, good: 0, 1, 2
    assert saved['overlap']['variance_explained_sources']['n'] == 3
    # unification recomputed by hand for one transfer and layer
    i = [k for k, a in enumerate(answers) if a['q_id'] == 0 and a['kind'] != 'target']
    j = [k for k, a in enumerate(answers) if a['q_id'] == 0 and a['lang'] == transfers[0]['tgt']][0]
    X, y = H[i, 2], H[j, 2]
    xx = X @ X.T
    want = (X @ y).mean() / ((xx.sum() - xx.trace()) / (len(i) * (len(i) - 1)))
    assert transfers[0]['unification'][2] == pytest.approx(want.item(), rel=1e-4)


def test_batching_and_judges(tmp_path, tiny_models):
    """Left padding must not change the last-token representation; the default judges run."""
    pytest.importorskip('scipy')
    pytest.importorskip('wordfreq')
    lm, tok = llm_eval.load_model(str(tiny_models['gemma2']), cfg_for(tmp_path, ''))
    prompts = ['Q: Who founded the village of Velmar?\nA:', 'Q: Qui ?\nA:',
               'Q: Wie viele Türme hat die Burg Feldau?\nA:']
    t1, h1 = llm_eval.generate(lm, tok, prompts, 3, reps=True, bs=1)
    t3, h3 = llm_eval.generate(lm, tok, prompts, 3, reps=True, bs=3)
    assert torch.allclose(h1, h3, atol=1e-4) and t1 == t3 and h1.shape == (3, 3, 32)
    for judge in ['match', 'llm']:
        res, _ = llm_eval.run(cfg_for(tmp_path, tiny_models['neox'], judge=judge, condition_on_source=False,
                                      unif_fallback='other'))
        assert res['n_transfers'] == 24 and res['unif_kinds']['ratio_other'] == 24 and len(res['per_layer']) == 3


def test_vocab_overlap():
    pytest.importorskip('wordfreq')
    vo = llm_eval.vocab_overlap(['en', 'fr', 'de'], 50000)
    j = vo['jaccard']
    assert set(j) == {'en-fr', 'fr-en', 'en-de', 'de-en', 'fr-de', 'de-fr'} and j['en-fr'] == j['fr-en']
    assert all(0 < v < 1 for v in j.values()) and vo['n_words'] == {'en': 50000, 'fr': 50000, 'de': 50000}
    with pytest.raises(SystemExit, match='no .* word list for: xx'):
        llm_eval.vocab_overlap(['en', 'xx'])
