"""
The records the stages exchange through files: the examples of a dataset (data/<dataset>/*.jsonl,
written by data_gen.py), log.jsonl (one JSON record per line, appended by train.py) and the run records
of analysis.json (analyze.py), with the few numbers read off them. No torch: plots.py redraws figures
from these files anywhere.

    encode_examples    examples -> padded arrays (the one place where examples become tensors)
    attribute_targets  the attribute's span of an example, as a mask over next-token targets
    attribute_tokens   the attribute's token ids of one example
    sample_facts, parallel_sample, live_sample   whole facts drawn at random; the parallel examples whose unification
                  train.py (live) and analyze.py (at checkpoints) measure: the same examples in both
    live_unification, stopped   a run's live unification over training and its stop mark, off log.jsonl
    live_score, prune_choice    the runs train.py's prune_at keeps, by their live scores
    eval_records  one run's evaluation -> its log.jsonl records
    read_records  log.jsonl -> records; a torn last line is dropped, a bad line elsewhere is an error
    dig, acc_of   a value of an analysis.json record, None where the schema lacks it
    final_ood     a run's final OOD accuracy
    pearson       a correlation over runs, None where it is undefined
    spread        n items evenly spaced over a list (runs and checkpoints the figures show)
    sim_layers    the layer groups the similarity figures show
"""
import json

import numpy as np


def encode_examples(examples, meta=None, T=None):
    """Examples as right-padded numpy arrays, the one place where examples become tensors:
    tokens (N, T) (0 = <pad>; T = the longest example unless given), prompt_len (N,), length (N,),
    template (N,), person (N,), and with a dataset's meta group (N,) = fact type * n_langs + lang."""
    meta = meta or {'fact_types': [], 'languages': []}
    ft_index = {ft: i for i, ft in enumerate(meta['fact_types'])}
    T = T or max(len(e['tokens']) for e in examples)
    tok = np.zeros((len(examples), T), np.int64)
    for i, e in enumerate(examples):
        tok[i, :len(e['tokens'])] = e['tokens']
    col = lambda f: np.array([f(e) for e in examples], np.int64).reshape(-1)
    return dict(tokens=tok, prompt_len=col(lambda e: e['prompt_len']), length=col(lambda e: len(e['tokens'])),
                group=col(lambda e: ft_index.get(e['fact_type'], -1) * len(meta['languages']) + e['lang']),
                template=col(lambda e: e['template']), person=col(lambda e: e['person']))


def attribute_targets(pos, prompt_len, length):
    """True where the next-token target at position `pos` (an index into tokens) is a token of the
    attribute: prompt_len <= pos < length - 1 (the EOS after it is not part of it). The one
    definition of the attribute span; broadcasts over numpy arrays and torch tensors alike."""
    return (pos >= prompt_len) & (pos < length - 1)


def attribute_tokens(example):
    """The attribute's token ids of one example: tokens[prompt_len : -1]."""
    return example['tokens'][example['prompt_len']:-1]


PARALLEL_FACTS = (100, 50)  # parallel facts per run whose unification is measured, on cuda / elsewhere (train.py, analyze.py)
PARALLEL_SEED = 0           # their draw (analyze.py's default seed): train.py's live sample is analyze.py's
NO_PARALLEL = 'no celebrity (parallel) facts in the training set'


def sample_facts(examples, idxs, rng, max_examples=None, max_facts=None):
    """Whole facts (person x fact type) of idxs, drawn at random until either cap: list of indices."""
    facts = {}
    for i in idxs:
        facts.setdefault((examples[i]['person'], examples[i]['fact_type']), []).append(i)
    keys, out = list(facts), []
    for n, j in enumerate(rng.permutation(len(keys))):
        if max_facts is not None and n >= max_facts or max_examples is not None and len(out) >= max_examples:
            break
        out += facts[keys[j]]
    return out


def parallel_sample(examples, rng, max_facts):
    """The parallel (celebrity) training examples whose unification is measured: up to max_facts whole
    facts drawn by rng. analyze.py draws them first from default_rng(its seed), train.py from
    default_rng(PARALLEL_SEED): at the same max_facts the same examples. -> indices into examples."""
    return sample_facts(examples, [i for i, e in enumerate(examples) if e['celebrity']], rng, max_facts=max_facts)


def live_sample(examples, max_facts):
    """train.py's live sample of a run's training examples: analyze.py's parallel sample at its default seed."""
    return [examples[i] for i in parallel_sample(examples, np.random.default_rng(PARALLEL_SEED), max_facts)]


def live_unification(recs, variant='normalized'):
    """A run's live unification (train.py) off its log.jsonl records: (iters, values; None where there was
    no score), or None for a run that logged none (live_unif off, or no parallel data)."""
    pts = {r['iter']: r['unification'] for r in recs if r.get('split') == 'train' and 'unification' in r}
    if not any(pts.values()):
        return None
    its = sorted(pts)
    return its, [(pts[i] or {}).get(variant) for i in its]


def live_score(u):
    """A run's live headline unification from its log fields (represent.live_unification), or None."""
    return (u['unification'] or {}).get('normalized')     # metrics.HEADLINE


def prune_choice(unif, names, cfg, it):
    """Which runs train on after train.py's prune_at, from their live unification fields: the prune_keep
    runs with parallel data of highest live score (no score yet: last), and with prune_controls those
    without parallel data. -> (kept indices in run order, {stopped index: its log.jsonl record})"""
    par = [r for r, u in enumerate(unif) if u.get('unification_null_reason') != NO_PARALLEL]
    ranked = sorted(par, key=lambda r: (live_score(unif[r]) is None, -(live_score(unif[r]) or 0.0)))
    keep = sorted(ranked[:cfg['prune_keep']] + [r for r in range(len(names)) if r not in par] * cfg['prune_controls'])
    why = (f"prune_at={cfg['prune_at']}: kept the {min(cfg['prune_keep'], len(par))} of {len(par)} runs with parallel "
           f"data of highest live unification{' and the runs without' * cfg['prune_controls']}")
    return keep, {r: dict(iter=it, split='stopped', reason=why, unification=live_score(unif[r]),
                          rank=ranked.index(r) + 1 if r in par else None, kept=[names[k] for k in keep])
                  for r in range(len(names)) if r not in keep}


def stopped(recs):
    """The record that marks a run stopped early by train.py's prune_at, or None."""
    return next((r for r in recs if r.get('split') == 'stopped'), None)


def read_records(path):
    """-> the records of a JSONL log, in order. A crash can cut the last line (an append in flight):
    it is dropped. An unreadable line anywhere else is damage, not a crash: a ValueError naming the
    file and line, so that resuming or analysing never drops records without a word."""
    with open(path, encoding='utf-8') as f:
        lines = f.readlines()
    out = []
    for i, line in enumerate(lines):
        try:
            out.append(json.loads(line))
        except ValueError:
            if i == len(lines) - 1:
                break                                # torn by a crash mid-append
            raise ValueError(f"log error: {path} line {i + 1} is not a JSON record ({line.strip()[:60]!r}); "
                             "repair or delete that line") from None
    return out


def acc_of(rec, split, ft='all'):
    return (rec.get('acc') or {}).get(split, {}).get(ft)


def pearson(x, y):
    """Pearson's r over the pairs where both are finite; None for fewer than 3 or a constant side."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or x[ok].std() == 0 or y[ok].std() == 0:
        return None
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def spread(items, n):
    """n items evenly spaced over a list (first and last included)."""
    return [items[i] for i in sorted(set(np.linspace(0, len(items) - 1, min(n, len(items))).round().astype(int)))]


def sim_layers(n_layer):
    """Layer groups shown in the similarity figures: first, middle and last block, all layers."""
    return list(dict.fromkeys(['L1', f'L{(n_layer + 1) // 2}', f'L{n_layer}', 'concat']))


def eval_records(it, split_name, correct, prob, group, template, meta):
    """One run's results (numpy (n,) arrays) -> log.jsonl records: aggregates by fact type x
    language ('all' = every value), and one record per (fact type, language, template) cell."""
    langs, fts = meta['languages'], meta['fact_types']
    F_, L, T = len(fts), len(langs), meta['config']['n_templates']
    cell = group * T + template
    n, c, p = (np.bincount(cell, weights=w, minlength=F_ * L * T).reshape(F_, L, T)
               for w in (None, correct.astype(float), prob))
    recs = []

    def add(sel, **key):
        k = int(n[sel].sum())
        if k:
            recs.append(dict(iter=it, split=split_name, **key, acc=round(float(c[sel].sum()) / k, 6),
                             prob=round(float(p[sel].sum()) / k, 6), n=k))
    for fi, ft in [(slice(None), 'all')] + list(enumerate(fts)):
        for li, lang in [(slice(None), 'all')] + list(enumerate(langs)):
            add((fi, li), fact_type=ft, lang=lang)
    for fi, ft in enumerate(fts):
        for li, lang in enumerate(langs):
            for t in range(T):
                add((fi, li, t), fact_type=ft, lang=lang, template=t)
    return recs


def dig(d, *keys):
    """d[k1][k2]... or None where a level is missing or None (the schema of analysis.json grows)."""
    for k in keys:
        if not isinstance(d, dict) or d.get(k) is None:
            return None
        d = d[k]
    return d


def final_ood(rec):
    """Final OOD accuracy of a run: the logged full-test accuracy, else analyze.py's prediction sample."""
    acc = acc_of(rec, 'ood_test')
    return acc if acc is not None else rec.get('ood_acc_sample')
