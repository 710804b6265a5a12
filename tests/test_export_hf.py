"""export_hf.py: exported checkpoints load in transformers with model.py's logits, data_gen's token
ids and the greedy answers that train.py's evaluation scores; errors are one line."""
import json
import os
import re
import runpy
import subprocess
import sys

import pytest
import torch

import checkpoints
import data_gen
import export_hf
import model as M
import train

transformers = pytest.importorskip('transformers')
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = dict(n_people=60, n_first_names=20, n_last_names=20, n_cities=10, n_templates=3, celeb_frac=0.2)


@pytest.fixture(scope='module')
def datasets(tmp_path_factory):
    """{tokenizer: (meta, {split: examples})} of three small datasets."""
    root = tmp_path_factory.mktemp('data')
    out = {}
    for tk in data_gen.TOKENIZERS:
        path = data_gen.build(dict(data_gen.DATA_DEFAULTS, data_dir=str(root), tokenizer=tk, **SMALL))
        out[tk] = (data_gen.load_meta(path), {s: data_gen.load_split(path, s) for s in data_gen.SPLITS})
    return out


def random_gpt(cfg, seed=0):
    """Our model with random weights everywhere (norms and biases too), large enough that every
    path matters, the embeddings smaller than the blocks so that greedy continuations depend on
    the context (with the seeds used here the smallest gap between the top two logits of a greedy
    step is 7e-5, 30x the export's logit error: no near-ties)."""
    m = M.GPT(cfg).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in m.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if n.endswith('_w'):                # norm weights: LayerNorm around 1, Gemma's (1 + w) around 0
                p.copy_((1.0 if cfg.block == 'pythia' else 0.0) + 0.1 * noise)
            elif p.dim() == 2:                 # biases
                p.copy_(0.1 * noise)
            elif n in ('wte', 'lm_head'):      # small next to the blocks, so that the context matters
                p.copy_(0.1 * noise)
            else:
                p.copy_(0.5 * noise)
    return m


def save_ckpt(m, path, vocab, it=7):
    """A checkpoint as train.py writes one per run: weights without the run axis, model_args
    with n_runs=1, iter, vocab and Adam second moments."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sd = M.run_state_dict(m, 0)
    torch.save(dict(model=sd, model_args=M.model_args(m), iter=it, vocab=vocab, adam_step=it, adam_eps=1e-8,
                    adam_v={k: v.abs().to(torch.bfloat16) for k, v in sd.items()}), path)
    return str(path)


def cli(monkeypatch, *args):
    """`python export_hf.py *args`, run in this process (the imports are already paid for)."""
    monkeypatch.setattr(sys, 'argv', ['export_hf.py', *map(str, args)])
    runpy.run_path(os.path.join(ROOT, 'export_hf.py'), run_name='__main__')


def load_hf(d):
    hf = transformers.AutoModelForCausalLM.from_pretrained(d, attn_implementation='eager').eval()
    return hf, transformers.AutoTokenizer.from_pretrained(d)


def upto_eos(ids):
    return ids[:ids.index(2) + 1] if 2 in ids else ids


@torch.no_grad()
def hf_greedy(hf, prompts, n_new):
    """Hugging Face's greedy generate() on one left-padded batch of prompts (lists of ids): per
    prompt, its continuation of at most n_new tokens, up to and including EOS."""
    L = max(map(len, prompts))
    ids = torch.tensor([[0] * (L - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (L - len(p)) + [1] * len(p) for p in prompts])
    gen = hf.generate(ids, attention_mask=mask, max_new_tokens=n_new, do_sample=False, pad_token_id=0)
    return [upto_eos(g) for g in gen[:, L:].tolist()]


# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('block,kw', [
    ('pythia', dict(rotary_pct=0.5, rope_base=500.0, norm_eps=1e-3, mlp_ratio=2.0)),
    ('gemma2', dict(attn_softcap=2.0, final_softcap=1.5, query_pre_attn_scalar=20.0, rope_base=1000.0, mlp_ratio=3.0)),
])
def test_logits_and_hidden_states_match(tmp_path, datasets, block, kw):
    meta = datasets['word'][0]
    V, T = len(meta['vocab']), meta['block_size']
    m = random_gpt(M.GPTConfig(block=block, n_layer=2, n_head=4, n_embd=32, vocab_size=V, block_size=T, **kw))
    path = save_ckpt(m, tmp_path / 'exp' / 'run' / 'ckpt_7.pt', meta['vocab'])
    d = export_hf.export(path, str(tmp_path / 'hf'))
    assert {'config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'rosetta.json'} \
        <= set(os.listdir(d))
    hf, tok = load_hf(d)
    assert type(hf).__name__ == ('GPTNeoXForCausalLM' if block == 'pythia' else 'Gemma2ForCausalLM')
    assert isinstance(tok, transformers.PreTrainedTokenizerFast)
    assert (hf.config.pad_token_id, hf.config.bos_token_id, hf.config.eos_token_id) == (0, 1, 2)
    idx = torch.randint(0, V, (3, T), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = hf(idx, output_hidden_states=True)
        logits, hidden = m(idx[None], return_hidden=True)
    diff = (logits[0] - ref.logits).abs().max().item()
    print(f"\n{block} {kw}: max |logit diff| ours vs exported = {diff:.2e} "
          f"(logit scale {ref.logits.abs().max():.1f})")
    assert diff < 1e-4 and ref.logits.abs().max() > 1.0   # non-trivial logits, equal
    # hidden_states[l] is our residual stream after l blocks (the last one is after the final norm)
    for l in range(m.config.n_layer):
        assert (hidden[l, 0] - ref.hidden_states[l]).abs().max() < 1e-4, l
    info = json.load(open(os.path.join(d, 'rosetta.json')))
    assert info['iter'] == 7 and info['tokenizer'] == 'word' and info['model_args']['block'] == block


def test_tokenizer_ids_equal_data_gen(tmp_path, datasets):
    for tk, (meta, data) in datasets.items():
        m = M.GPT(M.GPTConfig(n_layer=1, n_head=2, n_embd=16, vocab_size=len(meta['vocab']),
                              block_size=meta['block_size']))
        # the kind comes from the vocabulary alone here: no config.json beside the checkpoint
        d = export_hf.export(save_ckpt(m, tmp_path / tk / 'ckpt_0.pt', meta['vocab']), str(tmp_path / f'hf_{tk}'))
        tok = transformers.AutoTokenizer.from_pretrained(d)
        assert isinstance(tok, transformers.PreTrainedTokenizerFast)
        for s, exs in data.items():
            texts = [x['text'] for x in exs]
            assert tok(texts).input_ids == [x['tokens'] for x in exs], (tk, s)
            cut = [len(x['text']) - len(x['attribute']) for x in exs]       # the prompt: text before the attribute
            prompts = tok([t[:c] for t, c in zip(texts, cut)]).input_ids
            assert [p[:-1] for p in prompts] == [x['tokens'][:x['prompt_len']] for x in exs], (tk, s)
            assert tok.batch_decode([x['tokens'] for x in exs], skip_special_tokens=True) == texts
        sep = ' ' if tk == 'word' else ''
        assert tok.decode(data['train'][0]['tokens']) == f"<bos>{sep}{data['train'][0]['text']}{sep}<eos>"
        # an out-of-vocabulary piece is <pad> (id 0), which no dataset text contains
        assert tok.unk_token_id == tok.pad_token_id == 0 and all(0 not in x['tokens'] for x in data['train'])
        oov = ('qqqq ' + data['train'][0]['text']) if tk == 'word' else ('#' + data['train'][0]['text'])
        assert tok(oov).input_ids == [1, 0] + data['train'][0]['tokens'][1:]
        if tk != 'word':   # a char tokenizer: spaces are tokens, so two spaces are two tokens
            assert tok(' a  b').input_ids[1:-1] == [meta['vocab'].index(c) for c in ' a  b']


@pytest.mark.slow                                        # end to end
def test_greedy_generation_matches_our_greedy_decoding(tmp_path, datasets):
    """Random weights, char_cased data (multi-token attributes): HF's generate(), on one
    left-padded batch, continues every prompt of a split with exactly the tokens of our own greedy
    argmax loop (the same function of the weights; says nothing about right answers)."""
    meta, data = datasets['char_cased']
    prompts = [x['tokens'][:x['prompt_len']] for x in data['id_test']]
    longest = max(map(len, prompts))
    n_new = min(max(len(x['tokens']) - x['prompt_len'] for x in data['id_test']),   # attribute + EOS
                meta['block_size'] - longest + 1)                                 # within our RoPE tables
    for block in ('pythia', 'gemma2'):
        m = random_gpt(M.GPTConfig(block=block, n_layer=2, n_head=2, n_embd=32, vocab_size=len(meta['vocab']),
                                   block_size=meta['block_size']), seed=3)
        d = export_hf.export(save_ckpt(m, tmp_path / block / 'ckpt_1.pt', meta['vocab']), str(tmp_path / f'hf_{block}'))
        hf, _ = load_hf(d)
        theirs = hf_greedy(hf, prompts, n_new)
        # ours on one right-padded batch: causal attention keeps the padding after a position
        # from changing its logits, so each step reads the logits at each prompt's own end
        n = torch.tensor([len(p) for p in prompts])
        seq = torch.zeros(len(prompts), longest + n_new, dtype=torch.long)
        for i, p in enumerate(prompts):
            seq[i, :len(p)] = torch.tensor(p)
        rows = torch.arange(len(prompts))
        with torch.no_grad():
            for k in range(n_new):
                seq[rows, n + k] = m(seq[None, :, :longest + k])[0][rows, n + k - 1].argmax(-1)
        ours = [upto_eos(seq[i, len(p):len(p) + n_new].tolist()) for i, p in enumerate(prompts)]
        assert theirs == ours, block
        assert len({tuple(t) for t in theirs}) > 10    # not one constant continuation


def test_trained_run_greedy_answers_are_the_ones_evaluation_counts(tmp_path, monkeypatch):
    """A tiny pythia run trained for 150 steps on CPU, exported through the command line: per
    example of every split, the exported tokenizer + greedy generate() + decode turn the prompt
    text into the attribute text exactly when train.py's evaluation counts the example correct,
    and the accuracies equal those in log.jsonl."""
    cfg = dict(train.DEFAULTS, out_dir=str(tmp_path / 'out'), data_dir=str(tmp_path / 'data'), **SMALL,
               n_layer=2, n_head=2, n_embd=32, batch_size=32, max_iters=150, learning_rate=1e-2, warmup_iters=5,
               eval_interval=150, n_ckpts=1, ckpt_first=1, log_interval=50, eval_max=0, device='cpu', compile=False,
               dtype='float32')                         # the logged accuracy is compared with float32 greedy answers
    exp = train.train(cfg)
    run, out = os.path.join(exp, 'main'), str(tmp_path / 'hf' / 'main')
    cli(monkeypatch, exp, tmp_path / 'hf', '--all')     # the last checkpoint of every run
    hf, tok = load_hf(out)
    rc = json.load(open(os.path.join(run, 'config.json')))
    info = json.load(open(os.path.join(out, 'rosetta.json')))
    assert info['iter'] == 150 and info['tokenizer'] == rc['tokenizer'] == 'word'
    meta = data_gen.load_meta(rc['dataset_path'])
    logged = {x['split']: x['acc'] for x in map(json.loads, open(os.path.join(run, 'log.jsonl')))
              if x['split'] != 'loss' and x['iter'] == 150 and x['fact_type'] == x['lang'] == 'all'}
    ours, _ = checkpoints.load_checkpoint(os.path.join(run, 'ckpt_150.pt'))
    for s in data_gen.SPLITS:
        exs = data_gen.load_split(rc['dataset_path'], s)
        split = train.stack_splits([exs], [meta], 'cpu')
        correct = train.evaluate(ours, split, torch.autocast('cpu', enabled=False))[0][0].tolist()
        prompts = [x['text'][:len(x['text']) - len(x['attribute'])] for x in exs]
        gen = hf_greedy(hf, [ids[:-1] for ids in tok(prompts).input_ids], 1)   # word attributes are one token
        hit = [a == x['attribute'] for a, x in zip(tok.batch_decode(gen, skip_special_tokens=True), exs)]
        assert hit == correct, s
        assert round(sum(hit) / len(hit), 6) == logged[s], s
        print(f"\n{s}: {sum(hit)}/{len(hit)} greedy answers correct in transformers, "
              f"log.jsonl acc {logged[s]}")
    assert logged['train'] > 0.1                        # some answers right, so both cases are checked


@pytest.mark.slow
def test_all_runs_vocab_from_dataset_and_errors(tmp_path, datasets, monkeypatch, capsys):
    meta, data = datasets['char_low']
    cfg = M.GPTConfig(block='gemma2', n_layer=1, n_head=2, n_embd=16, vocab_size=len(meta['vocab']),
                      block_size=meta['block_size'])
    exp = tmp_path / 'exp'
    for run, its in (('a', (0, 3, 20)), ('b', (5,))):
        for it in its:
            save_ckpt(M.GPT(cfg, seeds=[it]), exp / run / f'ckpt_{it}.pt', meta['vocab'], it=it)
    os.makedirs(exp / 'figures')                        # not a run
    (exp / 'resume.pt').write_bytes(b'')
    dirs = export_hf.export_all(str(exp), str(tmp_path / 'hf'))
    assert [os.path.basename(d) for d in dirs] == ['a', 'b']
    assert [json.load(open(os.path.join(d, 'rosetta.json')))['iter'] for d in dirs] == [20, 5]

    # a checkpoint without its vocabulary: found through the run's config.json -> the dataset's meta.json
    ck = torch.load(exp / 'b' / 'ckpt_5.pt', weights_only=True)
    del ck['vocab']
    torch.save(ck, exp / 'b' / 'ckpt_6.pt')
    with pytest.raises(ValueError, match='no vocabulary'):
        export_hf.export(str(exp / 'b' / 'ckpt_6.pt'), str(tmp_path / 'x'))
    path = os.path.join(meta['config']['data_dir'], meta['name'])
    (exp / 'b' / 'config.json').write_text(json.dumps({'tokenizer': 'char_low', 'dataset_path': path}))
    d = export_hf.export(str(exp / 'b' / 'ckpt_6.pt'), str(tmp_path / 'b6'))
    tok = transformers.AutoTokenizer.from_pretrained(d)
    assert tok(data['train'][0]['text']).input_ids == data['train'][0]['tokens']
    # a tokenizer that does not fit the vocabulary, an unknown one
    with pytest.raises(ValueError, match='does not fit'):
        export_hf.export(str(exp / 'b' / 'ckpt_5.pt'), str(tmp_path / 'y'), tokenizer='word')
    with pytest.raises(ValueError, match='not one of'):
        export_hf.export(str(exp / 'b' / 'ckpt_5.pt'), str(tmp_path / 'y'), tokenizer='bpe')
    # files that are not our checkpoints
    (tmp_path / 'junk.pt').write_bytes(b'this is not a checkpoint')
    torch.save({'state_dict': {}}, tmp_path / 'other.pt')
    broken = dict(ck, model={k: v for k, v in ck['model'].items() if k != 'wte'})
    torch.save(broken, tmp_path / 'broken.pt')
    for name, msg in (('junk.pt', 'not a checkpoint'), ('other.pt', 'not a checkpoint'),
                      ('missing.pt', 'not found'), ('broken.pt', 'wte')):
        with pytest.raises(ValueError, match=msg):
            export_hf.export(str(tmp_path / name), str(tmp_path / 'z'))
    with pytest.raises(ValueError, match='experiment directory'):
        export_hf.export_all(str(tmp_path / 'junk.pt'), str(tmp_path / 'z'))
    # the command line: one line on stderr, exit code 1
    r = subprocess.run([sys.executable, 'export_hf.py', tmp_path / 'junk.pt', tmp_path / 'z'],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.startswith('export_hf error: ') and r.stderr.count('\n') == 1, r.stderr
    for args, msg in (([exp, tmp_path / 'z'], 'export_hf error: .* is a directory'),   # an experiment, no --all_runs
                      ([tmp_path / 'junk.pt'], 'need a checkpoint and an output directory'),
                      ([exp, 'a', 'b'], 'unexpected argument'),
                      ([exp, tmp_path / 'z', '--all_run=True'], "unknown key 'all_run'")):
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            cli(monkeypatch, *args)
        err = capsys.readouterr().err
        assert e.value.code == 1 and re.search(msg, err) and err.count('\n') == 1, err


def test_output_directory_is_new_or_replaced_whole(tmp_path, datasets, monkeypatch, capsys):
    """An output directory that holds files is refused (nothing written); --overwrite=True replaces it
    whole, so no file of the old export is left; --all checks every run's directory before the first."""
    meta = datasets['word'][0]
    cfg = M.GPTConfig(n_layer=1, n_head=2, n_embd=16, vocab_size=len(meta['vocab']), block_size=meta['block_size'])
    exp = tmp_path / 'exp'
    for run, seed in (('a', 1), ('b', 2)):
        save_ckpt(M.GPT(cfg, seeds=[seed]), exp / run / 'ckpt_5.pt', meta['vocab'], it=5)
    out = tmp_path / 'hf'
    (out / 'b').mkdir(parents=True)
    (out / 'b' / 'notes.txt').write_text('mine')                     # a user's file where run b would go
    (out / 'b' / 'config.json').write_text('{}')
    with pytest.raises(SystemExit):
        cli(monkeypatch, exp, out, '--all')
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and re.match(r"export_hf error: out_dir .*hf/b is not empty \(2 entries, e\.g\. "
                                             r"config\.json\): choose a new directory, or replace it whole with "
                                             r"--overwrite=True", err), err
    assert sorted(os.listdir(out)) == ['b'] and (out / 'b' / 'config.json').read_text() == '{}'   # untouched
    cli(monkeypatch, exp, out, '--all', '--overwrite=True')
    assert not (out / 'b' / 'notes.txt').exists()                      # replaced whole: no mix
    assert json.load(open(out / 'b' / 'rosetta.json'))['checkpoint'].endswith('b/ckpt_5.pt')
    assert not [f for f in os.listdir(out) if f.startswith('.')]       # no temporary folder left
    with pytest.raises(ValueError, match='is not empty'):               # one checkpoint: the same rule
        export_hf.export(str(exp / 'a' / 'ckpt_5.pt'), str(out / 'b'))
    export_hf.export(str(exp / 'a' / 'ckpt_5.pt'), str(out / 'b'), overwrite=True)
    assert json.load(open(out / 'b' / 'rosetta.json'))['checkpoint'].endswith('a/ckpt_5.pt')
    (tmp_path / 'empty').mkdir()
    export_hf.export(str(exp / 'a' / 'ckpt_5.pt'), str(tmp_path / 'empty'))   # an empty directory is fine


def test_full_disk_during_export_is_named(tmp_path, datasets, monkeypatch):
    meta = datasets['word'][0]
    cfg = M.GPTConfig(n_layer=1, n_head=2, n_embd=16, vocab_size=len(meta['vocab']), block_size=meta['block_size'])
    path = save_ckpt(M.GPT(cfg), tmp_path / 'exp' / 'a' / 'ckpt_5.pt', meta['vocab'], it=5)

    def full(*a, **k):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(export_hf, 'make_tokenizer', lambda *a: type('T', (), {'save_pretrained': full})())
    with pytest.raises(OSError, match=r'^export_hf error: cannot write .*hf: no space left on device$'):
        export_hf.export(path, str(tmp_path / 'hf'))
    assert os.listdir(tmp_path) == ['exp']                            # nothing half-written, no temporary folder
