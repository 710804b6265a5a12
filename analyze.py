"""
Analyse every run and checkpoint of an experiment: activation and gradient representations of
training examples, cross-lingual unification, feature footprints, a language probe, name
confusion in OOD errors, and run / checkpoint selection. Writes out/<exp>/analysis.json (one
record per run and checkpoint, plus summaries) and PNG figures under out/<exp>/figures/.

    python analyze.py out/celeb_08
    python analyze.py out/sweep_celeb --proj_dim=1024 --device=cpu

Representations (layer keys: 'emb' = embedding output, 'L1'..'Ln' = after each block, 'head'
= final norm / unembedding parameters (gradients only), 'concat' = everything):
  act:  residual stream at the last prompt token (the position that predicts the attribute).
  grad: per-example gradient of the attribute loss (summed cross-entropy over the attribute
        tokens given the prompt), divided by sqrt(Adam second moment) + eps, projected by a
        fixed seeded Gaussian matrix to proj_dim dims per parameter group, unit-normalised.
"""
import glob
import json
import os
import sys
import zlib

import numpy as np
import torch
from torch.func import functional_call, grad, vmap
from tqdm import tqdm

import data_gen
import model as model_lib
from configurator import configure, config_keys

# -----------------------------------------------------------------------------
exp_dir = ''                # out/<exp> to analyse (or give it as the first argument)
device = 'auto'             # 'auto' = cuda, then mps, then cpu
max_examples = 1000         # training examples per run for footprints (whole facts, sampled)
max_celeb_facts = 100       # celebrity facts per run for unification and the probe (all their verbalizations)
proj_dim = 4096             # dims of a gradient representation after the random projection
proj_seed = 0               # seed of the fixed projection matrix (same seed + device -> same matrix)
proj_chunk = 32768          # parameter entries per generated block of projection-matrix rows
proj_cache_gb = 16.0        # keep the projection matrix on the device when it fits in this many GB
proj_dtype = 'auto'         # matmul dtype of the projection: 'auto' = bfloat16 on cuda, float32 elsewhere
grad_batch = 512            # examples per batched per-example-gradient call
act_batch = 1024            # examples per forward pass (activations, predictions)
ood_sample = 2000           # OOD test examples per checkpoint whose predictions we compute
probe_l2 = 1.0              # ridge penalty of the language probe, relative to the mean kernel diagonal
sim_values_per_type = 2     # attribute values per fact type in the similarity figures (most frequent in celebrity data)
sim_per_value = 50          # examples per attribute value in a similarity matrix (split over languages)
sim_ckpts = 5               # checkpoints per similarity figure (log-spaced over the run's checkpoints)
sim_runs = 4                # runs that get similarity figures (spread over final OOD accuracy)
unif_rep = 'act'            # headline unification for selection and figures: 'act' or 'grad'
unif_layer = 'concat'       # headline layer: 'concat', 'emb', 'L<i>'
unif_variant = 'same_fact'  # headline baseline: 'same_fact' or 'distinct_fact'
footprint_at = 'max'        # language footprint per run in the MI figures: 'max' over checkpoints or 'final'
select_repeats = 1000       # random subsets of runs in the selection experiment
select_frac = 0.333         # share of the runs in each subset
select_ks = [1, 5, 10]      # % of the OOD test available to the 'small OOD test' criterion
ckpt_min_id = 0.9           # checkpoint selection by unification only among checkpoints with ID acc >= this x the run's best
seed = 0                    # sampling of examples and subsets
figures = True              # write PNG figures
max_ckpts = 0               # analyse at most this many checkpoints per run, evenly spread (first and last kept); 0 = all
# -----------------------------------------------------------------------------
DEFAULTS = config_keys(globals())
SPLIT_KEYS = ('train', 'id_test', 'ood_test')
NOT_KNOBS = {'run', 'seed', 'out_dir', 'data_dir', 'dataset', 'dataset_path', 'model_args', 'sweep', 'shard',
             'resume', 'device', 'compile', 'dtype', 'wandb_log', 'wandb_project'}


# ----------------------------------------------------------------------------- metrics
def unit(x):
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def group_sums(x, g, n):
    """x (N, D), g (N,) ids in [0, n) -> per-group sums (n, D) and counts (n,)."""
    return x.new_zeros(n, x.shape[1]).index_add_(0, g, x), torch.bincount(g, minlength=n).to(x.dtype)


def unification(reps, fact, lang, ftype):
    """Unification over parallel facts. reps (N, D); fact, lang, ftype (N,) int ids.
    For fact f, X = its language-0 examples, Y = its language-l examples (l > 0):
      same_fact:     sim(X, Y) / sim(X, X)    (sim(X, X) off-diagonal)
      distinct_fact: sim(X, Y) / sim(X, X')   X' = language-0 examples of other facts of f's type
    sim = mean pairwise cosine = dot product of the mean unit vectors. Mean over facts and l.
    -> ({'same_fact': s, 'distinct_fact': s}, None) or (None, reason)."""
    u = unit(reps.float())
    nf, nl, nt = int(fact.max()) + 1, int(lang.max()) + 1, int(ftype.max()) + 1
    if nl < 2:
        return None, 'celebrity examples in one language only'
    S, C = group_sums(u, fact * nl + lang, nf * nl)
    S, C = S.view(nf, nl, -1), C.view(nf, nl)                        # (F, nl, D), (F, nl)
    M = S / C.clamp_min(1)[..., None]                                 # mean unit vector per fact x lang
    self0 = ((S[:, 0] ** 2).sum(-1) - C[:, 0]) / (C[:, 0] * (C[:, 0] - 1)).clamp_min(1)
    ft_of = torch.zeros(nf, dtype=torch.long, device=u.device).index_put_((fact,), ftype)
    T0 = group_sums(S[:, 0], ft_of, nt)[0]                           # lang-0 sums and counts per fact type
    CT0 = C.new_zeros(nt).index_add_(0, ft_of, C[:, 0])
    other0 = (T0[ft_of] - S[:, 0]) / (CT0[ft_of] - C[:, 0]).clamp_min(1)[:, None]
    dist0 = (M[:, 0] * other0).sum(-1)
    cross = (M[:, :1] * M[:, 1:]).sum(-1)                             # (F, nl-1)
    ok = (C[:, 0] >= 2)[:, None] & (C[:, 1:] >= 1)
    if not ok.any():
        return None, 'no celebrity fact has >= 2 language-0 and >= 1 other-language examples'
    ok_d = ok & ((CT0[ft_of] - C[:, 0]) > 0)[:, None]
    out = {'same_fact': float((cross / self0[:, None])[ok].mean()),
           'distinct_fact': float((cross / dist0[:, None])[ok_d].mean()) if ok_d.any() else None}
    return out, None


def r2(x, g):
    """Share of the variance of x (N, D) explained by a linear regression on the one-hot of the
    categorical feature g (N,): 1 - within-group / total sum of squares."""
    x = x.float()
    g = torch.unique(g, return_inverse=True)[1]
    S, C = group_sums(x, g, int(g.max()) + 1)
    within = (x - (S / C[:, None])[g]).pow(2).sum()
    return float(1 - within / (x - x.mean(0)).pow(2).sum().clamp_min(1e-30))


def lang_probe(x, lang, train_mask, l2=1.0):
    """Ridge-regression classifier (kernel form, exact) for language on standardised features:
    fit on train_mask, accuracy on the rest. x (N, D), lang (N,), train_mask (N,) bool."""
    x = x.float()
    mu, sd = x[train_mask].mean(0), x[train_mask].std(0).clamp_min(1e-6)
    xs = (x - mu) / sd
    xtr, xte = xs[train_mask], xs[~train_mask]
    y = torch.nn.functional.one_hot(lang[train_mask], int(lang.max()) + 1).float() * 2 - 1
    K = xtr @ xtr.T
    lam = l2 * K.diagonal().mean().clamp_min(1e-6)
    alpha = torch.linalg.solve(K + lam * torch.eye(len(K), device=x.device), y)
    return float(((xte @ xtr.T @ alpha).argmax(-1) == lang[~train_mask]).float().mean())


def pearson(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or x[ok].std() == 0 or y[ok].std() == 0:
        return None
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def select_runs(scores, target, n_repeats, frac, seed=0):
    """Run selection. scores {criterion: (R,) or (n_repeats, R)} (higher = better, NaN = cannot
    score); target (R,) the OOD accuracy. Each repeat samples a share `frac` of the runs (>= 2);
    each criterion picks its best run (a random one of the subset if none can be scored).
    -> {criterion: mean target of its pick, 'oracle': ..., 'random': ...}."""
    rng = np.random.default_rng(seed)
    target = np.asarray(target, float)
    R = len(target)
    m = min(R, max(2, round(frac * R)))
    sums = {k: 0.0 for k in [*scores, 'oracle', 'random']}
    for rep in range(n_repeats):
        sub = rng.permutation(R)[:m]                                   # random order: sub[0] is a random pick
        sums['oracle'] += target[sub].max()
        sums['random'] += target[sub[0]]
        for k, s in scores.items():
            s = np.asarray(s, float)
            s = (s[rep] if s.ndim == 2 else s)[sub]
            sums[k] += target[sub[np.nanargmax(s)] if np.isfinite(s).any() else sub[0]]
    return {k: v / n_repeats for k, v in sums.items()}


# ----------------------------------------------------------------------------- representations
def encode(examples, dev):
    """Right-padded token ids (N, T), prompt lengths (N,) and lengths (N,) on dev."""
    lens = [len(e['tokens']) for e in examples]
    idx = torch.zeros(len(examples), max(lens), dtype=torch.long)
    for i, e in enumerate(examples):
        idx[i, :lens[i]] = torch.tensor(e['tokens'])
    return idx.to(dev), torch.tensor([e['prompt_len'] for e in examples], device=dev), torch.tensor(lens, device=dev)


@torch.no_grad()
def activation_reps(model, examples, batch_size=1024):
    """Residual stream at the last prompt token of each example: (L+1, N, d), float32."""
    dev = next(model.parameters()).device
    idx, plen, _ = encode(examples, dev)
    out = []
    for s in range(0, len(examples), batch_size):
        pl = plen[s:s + batch_size]
        _, hidden = model(idx[None, s:s + batch_size, :int(pl.max())], return_hidden=True)  # (L+1, 1, B, T, d)
        out.append(hidden[:, 0, torch.arange(len(pl), device=dev), pl - 1].float())
    return torch.cat(out, 1)


def per_example_grads(model, idx, plen, tlen):
    """Gradient of each example's attribute loss (summed CE over the attribute tokens given the
    prompt), batched with torch.func. idx (B, T) -> {param name: (B, *param shape)}."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    pos = torch.arange(idx.shape[1] - 1, device=idx.device)

    def loss(p, ids, pl, tl):                                         # ids (T,) one example
        logits = functional_call(model, p, (ids[None, None, :-1],))[0, 0].float()  # (T-1, V)
        nll = -logits.log_softmax(-1).gather(-1, ids[1:, None]).squeeze(-1)
        return (nll * ((pos >= pl - 1) & (pos < tl - 2))).sum()       # targets tokens[pl : tl-1]

    sdpa, model.use_sdpa = model.use_sdpa, False                      # SDPA has no vmap batching rule
    try:
        return vmap(grad(loss), in_dims=(None, 0, 0, 0))(params, idx, plen, tlen)
    finally:
        model.use_sdpa = sdpa


_PROJ = {'bytes': 0}


def projection_blocks(name, numel, k, seed, chunk, dev, cache_bytes, dtype=torch.float32):
    """Rows of the fixed projection matrix for one parameter tensor, as (start, (rows, k)) blocks
    of N(0, 1/k) entries; block j is drawn on dev from a generator seeded by (seed, name, j), so
    the matrix depends only on these (and the device's generator), never on batch sizes or other
    parameters. Kept on the device while the cache has room, else redrawn at every call."""
    key = (name, numel, k, seed, chunk, str(dev), dtype)
    if key in _PROJ:
        return _PROJ[key]
    blocks = []
    for j, start in enumerate(range(0, numel, chunk)):
        gen = torch.Generator(device=dev).manual_seed((seed * 1_000_003 + zlib.crc32(name.encode()) * 7919 + j) % 2 ** 62)
        blocks.append((start, (torch.randn(min(chunk, numel - start), k, generator=gen, device=dev) / k ** 0.5).to(dtype)))
    size = numel * k * blocks[0][1].element_size()
    if _PROJ['bytes'] + size <= cache_bytes:
        _PROJ[key] = blocks
        _PROJ['bytes'] += size
    return blocks


def layer_group(name):
    """Parameter name -> layer key: 'h.<i>.*' -> 'L<i+1>', the token embedding -> 'emb', rest -> 'head'."""
    parts = name.split('.')
    if parts[0] == 'h' and parts[1].isdigit():
        return f'L{int(parts[1]) + 1}'
    return 'emb' if name == 'wte' else 'head'


def gradient_reps(model, ckpt, examples, proj_dim=4096, seed=0, batch_size=512, chunk=32768,
                  beta2=None, cache_gb=16.0, dtype=None):
    """Per-example attribute-loss gradients / (sqrt(Adam v) + eps), projected per layer group and
    unit-normalised: {layer key: (N, proj_dim)}, 'concat' = projection of the whole gradient.
    v is bias-corrected when beta2 is given; a checkpoint without Adam state (iter 0) uses the
    raw gradient. dtype: of the projection matmul (None: bfloat16 on cuda, float32 elsewhere)."""
    dev = next(model.parameters()).device
    dtype = dtype or (torch.bfloat16 if dev.type == 'cuda' else torch.float32)
    names = sorted(n for n, _ in model.named_parameters())
    shapes = dict(model.named_parameters())
    v, eps = ckpt.get('adam_v') or {}, float(ckpt.get('adam_eps', 1e-8))
    if v and set(v) != set(names):
        raise SystemExit(f"checkpoint iter {ckpt.get('iter')}: adam_v lacks {sorted(set(names) - set(v))[:3]}")
    bc = 1 - beta2 ** ckpt['adam_step'] if beta2 and ckpt.get('adam_step') else 1.0
    denom = {n: (v[n].to(dev).float().view_as(shapes[n]) / bc).sqrt() + eps for n in names} if v else None
    idx, plen, tlen = encode(examples, dev)
    out = {g: torch.zeros(len(examples), proj_dim, device=dev) for g in {layer_group(n) for n in names}}
    for s in range(0, len(examples), batch_size):
        sl = slice(s, s + batch_size)
        G = per_example_grads(model, idx[sl, :int(tlen[sl].max())], plen[sl], tlen[sl])
        for n in names:
            g = (G.pop(n) / denom[n] if denom else G.pop(n)).flatten(1).to(dtype)   # (B, numel)
            acc = out[layer_group(n)][sl]
            for start, R in projection_blocks(n, g.shape[1], proj_dim, seed, chunk, dev, cache_gb * 1e9, dtype):
                acc += (g[:, start:start + len(R)] @ R).float()
    out['concat'] = sum(out.values())                                  # = projection of the full gradient
    return {k: unit(x) for k, x in out.items()}


@torch.no_grad()
def predict(model, examples, max_len, block_size, batch_size=1024):
    """Greedy continuation of each prompt for up to max_len + 1 tokens: (N, max_len + 1) ids
    (0 where the sequence would pass block_size)."""
    dev = next(model.parameters()).device
    idx, plen, _ = encode(examples, dev)
    out = []
    for s in range(0, len(examples), batch_size):
        pl = plen[s:s + batch_size]
        T = min(block_size, int(pl.max()) + max_len + 1)
        x = torch.zeros(len(pl), T, dtype=torch.long, device=dev)
        x[:, :idx.shape[1]] = idx[s:s + batch_size, :T]
        x[torch.arange(T, device=dev)[None] >= pl[:, None]] = 0        # drop the true attribute
        b = torch.arange(len(pl), device=dev)
        for step in range(max_len + 1):
            at = pl - 1 + step                                         # position predicting token pl + step
            ok = at + 1 < T
            logits = model(x[None, :, :int(min(T, int(pl.max()) + step))])[0]
            nxt = logits[b, at.clamp(max=logits.shape[1] - 1)].argmax(-1)
            x[b[ok], (at + 1)[ok]] = nxt[ok]
        out.append(torch.stack([x[b, (pl + j).clamp(max=T - 1)] * (pl + j < T) for j in range(max_len + 1)], 1))
    return torch.cat(out).cpu()


# ----------------------------------------------------------------------------- experiment data
def find_runs(exp):
    """Run directories of an experiment with their checkpoints; one-line SystemExit naming what is missing."""
    if not exp or not os.path.isdir(exp):
        raise SystemExit(f"analyze: experiment directory not found: {exp!r}")
    runs = sorted(os.path.dirname(p) for p in glob.glob(os.path.join(exp, '*', 'config.json')))
    if not runs:
        raise SystemExit(f"analyze: no runs in {exp} (expected {exp}/<run>/config.json)")
    out = []
    for d in runs:
        ckpts = {int(os.path.basename(p)[5:-3]): p for p in glob.glob(os.path.join(d, 'ckpt_*.pt'))
                 if os.path.basename(p)[5:-3].isdigit()}
        if not os.path.isfile(os.path.join(d, 'log.jsonl')):
            raise SystemExit(f"analyze: missing {os.path.join(d, 'log.jsonl')}")
        if not ckpts:
            raise SystemExit(f"analyze: no checkpoints {os.path.join(d, 'ckpt_*.pt')}")
        with open(os.path.join(d, 'config.json')) as f:
            rc = json.load(f)
        if 'max_iters' in rc and rc['max_iters'] not in ckpts:
            raise SystemExit(f"analyze: missing final checkpoint {os.path.join(d, 'ckpt_%d.pt' % rc['max_iters'])}"
                             " (training unfinished?)")
        out.append(dict(name=os.path.basename(d), dir=d, cfg=rc, ckpts=dict(sorted(ckpts.items()))))
    return out


def read_log(path):
    """-> {iter: {split: {fact_type: acc}}} from the evaluation records (lang 'all' aggregates,
    else the n-weighted mean over languages)."""
    agg = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if r.get('split') not in SPLIT_KEYS:
                continue
            d = agg.setdefault(r['iter'], {}).setdefault(r['split'], {}).setdefault(r['fact_type'], {})
            d[r['lang']] = (r['acc'], r['n'])
    out = {}
    for it, splits in agg.items():
        for s, fts in splits.items():
            for ft, by_lang in fts.items():
                if 'all' in by_lang:
                    acc = by_lang['all'][0]
                else:
                    n = sum(v[1] for v in by_lang.values())
                    acc = sum(a * k for a, k in by_lang.values()) / max(n, 1)
                out.setdefault(it, {}).setdefault(s, {})[ft] = acc
    return dict(sorted(out.items()))


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


def prepare_run(run, cfg):
    """Dataset of a run and the example subsets analysed at every checkpoint."""
    path = run['cfg'].get('dataset_path') or data_gen.dataset_path(run['cfg'])
    meta = data_gen.load_meta(path)
    train, ood = data_gen.load_split(path, 'train'), data_gen.load_split(path, 'ood_test')
    rng = np.random.default_rng(cfg['seed'])
    celeb = [i for i, e in enumerate(train) if e['celebrity']]
    celeb_idx = sample_facts(train, celeb, rng, max_facts=cfg['max_celeb_facts'])
    gen_idx = sample_facts(train, range(len(train)), rng, max_examples=cfg['max_examples'])
    # similarity examples: the most frequent attribute values of each fact type in the celebrity data
    pool = celeb or range(len(train))
    sim_idx, sim_values = [], []
    for ft in meta['fact_types']:
        counts = {}
        for i in pool:
            if train[i]['fact_type'] == ft:
                counts[train[i]['attribute']] = counts.get(train[i]['attribute'], 0) + 1
        for val in sorted(counts, key=lambda a: (-counts[a], a))[:cfg['sim_values_per_type']]:
            sim_values.append(f'{ft}={val}')
            for lang in range(len(meta['languages'])):
                cand = [i for i, e in enumerate(train) if e['fact_type'] == ft and e['attribute'] == val and e['lang'] == lang]
                pick = rng.permutation(len(cand))[:cfg['sim_per_value'] // len(meta['languages'])]
                sim_idx += sorted((cand[j] for j in pick), key=lambda i: (train[i]['person'], train[i]['template']))
    keys = [(train[i]['fact_type'], train[i]['attribute']) for i in sim_idx]
    sim_bounds = [j for j in range(1, len(keys)) if keys[j] != keys[j - 1]]   # where the attribute value changes
    union = sorted(set(celeb_idx) | set(gen_idx) | set(sim_idx))
    pos = {i: j for j, i in enumerate(union)}
    ood_pick = rng.permutation(len(ood))[:cfg['ood_sample']]
    attr_map = {}                                                      # (fact type, token tuple) -> attribute
    for e in train + ood:
        attr_map[(e['fact_type'], tuple(e['tokens'][e['prompt_len']:-1]))] = str(e['attribute'])
    people = {p['id']: p for p in meta['people']}
    namesake = {}                                                      # (person, fact type) -> namesakes' values
    by_first, by_last = {}, {}
    for p in meta['people']:
        by_first.setdefault(p['first'], []).append(p['id'])
        by_last.setdefault(p['last'], []).append(p['id'])
    for p in meta['people']:
        others = set(by_first[p['first']] + by_last[p['last']]) - {p['id']}
        for ft in meta['fact_types']:
            namesake[(p['id'], ft)] = {str(people[q][ft]) for q in others}
    return dict(meta=meta, train=train, union=[train[i] for i in union],
                celeb=torch.tensor([pos[i] for i in celeb_idx], dtype=torch.long),
                gen=torch.tensor([pos[i] for i in gen_idx], dtype=torch.long),
                sim=torch.tensor([pos[i] for i in sim_idx], dtype=torch.long), sim_values=sim_values, sim_bounds=sim_bounds,
                ood=[ood[j] for j in sorted(ood_pick)], n_ood=len(ood), attr_map=attr_map, namesake=namesake,
                n_values={ft: len(v) for ft, v in meta['attributes'].items()},
                max_attr=max(len(e['tokens']) - e['prompt_len'] - 1 for e in train + ood))


def name_confusion(pred, examples, rd):
    """Per OOD example: correct or not; share of errors naming a namesake's attribute; chance share."""
    correct, n_err, n_conf, chance = [], 0, 0, 0.0
    for row, e in zip(pred.tolist(), examples):
        attr = e['tokens'][e['prompt_len']:-1]
        ok = row[:len(attr)] == attr
        correct.append(ok)
        if ok:
            continue
        toks = tuple(row[:row.index(2)] if 2 in row else row[:-1])   # up to <eos>
        names = rd['namesake'][(e['person'], e['fact_type'])] - {str(e['attribute'])}
        n_err += 1
        n_conf += rd['attr_map'].get((e['fact_type'], toks)) in names
        chance += len(names) / max(1, rd['n_values'][e['fact_type']] - 1)
    return np.array(correct), dict(share=n_conf / n_err if n_err else None, n_errors=n_err,
                                   chance=chance / n_err if n_err else None)


def layer_dict(act, grads):
    """Representations by kind and layer key: {'act': {key: (N, d)}, 'grad': {key: (N, k)}}."""
    a = {('emb' if i == 0 else f'L{i}'): act[i] for i in range(len(act))}
    a['concat'] = act.permute(1, 0, 2).reshape(act.shape[1], -1)
    return {'act': a, 'grad': grads}


def spread(items, n):
    """n items evenly spaced over a list (first and last included)."""
    return [items[i] for i in sorted(set(np.linspace(0, len(items) - 1, min(n, len(items))).round().astype(int)))]


def sim_layers(n_layer):
    """Layer groups shown in the similarity figures: first, middle and last block, all layers."""
    return list(dict.fromkeys(['L1', f'L{(n_layer + 1) // 2}', f'L{n_layer}', 'concat']))


def analyse_ckpt(model, ckpt, rd, cfg, run_cfg, dev, keep_sims=False):
    """All metrics of one checkpoint -> (record, similarity matrices of the similarity examples
    (if keep_sims), per-example OOD correctness of the predictions)."""
    ex, meta = rd['union'], rd['meta']
    reps = layer_dict(activation_reps(model, ex, cfg['act_batch']),
                      gradient_reps(model, ckpt, ex, cfg['proj_dim'], cfg['proj_seed'], cfg['grad_batch'],
                                    cfg['proj_chunk'], run_cfg.get('beta2'), cfg['proj_cache_gb'],
                                    None if cfg['proj_dtype'] == 'auto' else getattr(torch, cfg['proj_dtype'])))
    ft_id = {ft: i for i, ft in enumerate(meta['fact_types'])}
    lang = torch.tensor([e['lang'] for e in ex], device=dev)
    ftype = torch.tensor([ft_id[e['fact_type']] for e in ex], device=dev)
    fact = torch.tensor([e['person'] * len(ft_id) + ft_id[e['fact_type']] for e in ex], device=dev)
    rec = {'footprint': {'lang': {}, 'fact': {}}}
    g, c = rd['gen'].to(dev), rd['celeb'].to(dev)
    rec['footprint']['fact_chance'] = (len(torch.unique(fact[g])) - 1) / max(1, len(g) - 1)
    for kind, layers in reps.items():
        for k in ('lang', 'fact'):
            rec['footprint'][k][kind] = {l: r2(x[g], (lang if k == 'lang' else fact)[g]) for l, x in layers.items()}
    if len(c) == 0:
        rec['unification'] = rec['lang_probe'] = None
        rec['unification_null_reason'] = 'no celebrity (parallel) facts in the training set'
    else:
        cf = torch.unique(fact[c], return_inverse=True)[1]
        u = {v: {kind: {} for kind in reps} for v in ('same_fact', 'distinct_fact')}
        why = None
        for kind, layers in reps.items():
            for l, x in layers.items():
                res, why = unification(x[c], cf, lang[c], ftype[c])
                for v in u:
                    u[v][kind][l] = res[v] if res else None
        rec['unification'] = u if why is None else None
        if why:
            rec['unification_null_reason'] = why
        half = torch.from_numpy(np.random.default_rng(cfg['seed']).random(int(cf.max()) + 1) < 0.5).to(dev)[cf]
        ok = half.any() and (~half).any() and len(torch.unique(lang[c][half])) > 1
        rec['lang_probe'] = {kind: {l: lang_probe(x[c], lang[c], half, cfg['probe_l2']) for l, x in layers.items()}
                             for kind, layers in reps.items()} if ok else None
    pred = predict(model, rd['ood'], rd['max_attr'], model.config.block_size, cfg['act_batch'])
    correct, rec['name_confusion'] = name_confusion(pred, rd['ood'], rd)
    rec['ood_acc_sample'] = float(correct.mean()) if len(correct) else None
    s = rd['sim'].to(dev)
    groups = sim_layers(model.config.n_layer)
    sims = {kind: {l: (unit(x[s]) @ unit(x[s]).T).half().cpu().numpy() for l, x in layers.items() if l in groups}
            for kind, layers in reps.items()} if len(s) and keep_sims else None
    return rec, sims, correct


# ----------------------------------------------------------------------------- main
def headline(rec, cfg):
    u = rec.get('unification')
    return u[cfg['unif_variant']][cfg['unif_rep']].get(cfg['unif_layer']) if u else None


def analyze(cfg):
    """Analyse cfg['exp_dir']; writes analysis.json and figures; returns the analysis dict."""
    exp = cfg['exp_dir']
    for k, ok in (('unif_rep', ('act', 'grad')), ('unif_variant', ('same_fact', 'distinct_fact')),
                  ('footprint_at', ('max', 'final')), ('proj_dtype', ('auto', 'float32', 'bfloat16', 'float16'))):
        if cfg[k] not in ok:
            raise SystemExit(f"config error: {k}={cfg[k]!r} is not one of {', '.join(ok)}")
    runs = find_runs(exp)
    if cfg['max_ckpts']:
        for run in runs:
            run['ckpts'] = {it: run['ckpts'][it] for it in spread(sorted(run['ckpts']), cfg['max_ckpts'])}
    dev = model_lib.pick_device(cfg['device'])
    torch.backends.cuda.matmul.allow_tf32 = True
    varying = sorted(k for k in runs[0]['cfg'] if k not in NOT_KNOBS and isinstance(runs[0]['cfg'][k], (int, float, str))
                     and len({json.dumps(r['cfg'].get(k)) for r in runs}) > 1)
    records, notes, sims, final_correct = [], [], {}, {}
    bar = tqdm(total=sum(len(r['ckpts']) for r in runs), desc='checkpoints', dynamic_ncols=True)
    for run in runs:
        rd = prepare_run(run, cfg)
        log = read_log(os.path.join(run['dir'], 'log.jsonl'))
        run.update(log=log, meta=rd['meta'], sim_values=rd['sim_values'], sim_bounds=rd['sim_bounds'])
        for it, path in run['ckpts'].items():
            bar.set_postfix_str(f"{run['name']} iter {it}")
            model, ckpt = model_lib.load_checkpoint(path, dev, vocab=rd['meta']['vocab'])
            run['n_layer'] = model.config.n_layer
            rec, sim, correct = analyse_ckpt(model, ckpt, rd, cfg, run['cfg'], dev,
                                             keep_sims=it in spread(list(run['ckpts']), cfg['sim_ckpts']))
            evals = [i for i in log if i <= it]
            if evals and evals[-1] != it:
                notes.append(f"{run['name']}: no eval at iter {it}, used iter {evals[-1]}")
            rec = dict(run=run['name'], iter=it, final=it == max(run['ckpts']),
                       knobs={k: run['cfg'].get(k) for k in varying + ['celeb_frac', 'seed']},
                       eval_iter=evals[-1] if evals else None, acc=log[evals[-1]] if evals else None,
                       mi_lang_attr=rd['meta'].get('mi_lang_attr'), mi_token_lang=rd['meta'].get('mi_token_lang'),
                       n_examples=dict(footprint=len(rd['gen']), celebrity=len(rd['celeb']), ood=len(rd['ood'])), **rec)
            records.append(rec)
            if sim is not None:
                sims[(run['name'], it)] = sim
            if rec['final']:
                final_correct[run['name']] = (correct, rd['n_ood'])
            bar.update()
    bar.close()
    summary = summarise(runs, records, final_correct, cfg, notes)
    # what the figures need besides the records: plots.py redraws them from these two files
    fig_runs = [dict(name=r['name'], cfg=r['cfg'], ckpts=list(r['ckpts']), n_layer=r['n_layer'], log=r['log'],
                     fact_types=r['meta']['fact_types'], sim_values=r['sim_values'], sim_bounds=r['sim_bounds'])
                for r in runs]
    out = dict(exp_dir=exp, settings=cfg, varying_knobs=varying, notes=notes, **summary, records=records, runs=fig_runs)
    with open(os.path.join(exp, 'analysis.json'), 'w') as f:
        json.dump(out, f, indent=1)
    np.savez_compressed(os.path.join(exp, 'similarity.npz'), **{f'{run}|{it}|{kind}|{layer}': m for (run, it), kinds
                        in sims.items() for kind, layers in kinds.items() for layer, m in layers.items()})
    print(f"analysis of {len(runs)} run(s), {len(records)} checkpoint(s) -> {os.path.join(exp, 'analysis.json')}")
    for line in summary['selection_table']:
        print(line)
    if cfg['figures']:
        import plots
        plots.plot(exp)
    return out


def acc_of(rec, split, ft='all'):
    return (rec.get('acc') or {}).get(split, {}).get(ft)


def summarise(runs, records, final_correct, cfg, notes):
    """Correlations across runs, run selection and per-run checkpoint selection."""
    final = [r for r in records if r['final']]
    target = np.array([acc_of(r, 'ood_test') if acc_of(r, 'ood_test') is not None else r['ood_acc_sample']
                       for r in final], float)
    corr = {}
    for v in ('same_fact', 'distinct_fact'):
        for kind in ('act', 'grad'):
            layers = next((r['unification'][v][kind] for r in final if r['unification']), {})
            corr.setdefault(v, {})[kind] = {l: pearson([r['unification'][v][kind][l] if r['unification'] and
                                                        r['unification'][v][kind][l] is not None else np.nan
                                                        for r in final], target) for l in layers}
    rs = {v: corr[v][cfg['unif_rep']].get(cfg['unif_layer']) for v in corr}
    better = (max((v for v in rs if rs[v] is not None), key=lambda v: rs[v], default=None))
    rng = np.random.default_rng(cfg['seed'] + 1)
    scores = {'id_test': [acc_of(r, 'id_test') if acc_of(r, 'id_test') is not None else np.nan for r in final]}
    for k in cfg['select_ks']:                                         # OOD accuracy on k% of the OOD test
        est = np.full((cfg['select_repeats'], len(final)), np.nan)
        for j, r in enumerate(final):
            correct, n_ood = final_correct[r['run']]
            m = max(1, round(k / 100 * n_ood))
            if m > len(correct):
                notes.append(f"{r['run']}: {k}% of the OOD test is {m} examples > ood_sample; used {len(correct)}")
                m = len(correct)
            if len(correct):
                est[:, j] = [correct[rng.choice(len(correct), m, replace=False)].mean()
                             for _ in range(cfg['select_repeats'])]
        scores[f'ood_{k}pct'] = est
    unif = np.array([headline(r, cfg) if headline(r, cfg) is not None else np.nan for r in final], float)
    scores['unification'], scores['unif_x_id'] = unif, unif * np.array(scores['id_test'], float)
    sel = select_runs(scores, target, cfg['select_repeats'], cfg['select_frac'], cfg['seed'])
    ckpt_sel = {}
    for run in runs:
        recs = [r for r in records if r['run'] == run['name'] and r['acc']]
        if not recs:
            continue
        ids = [acc_of(r, 'id_test') or 0.0 for r in recs]
        best_id = recs[max(i for i, a in enumerate(ids) if a == max(ids))]
        cand = [r for r, a in zip(recs, ids) if a >= cfg['ckpt_min_id'] * max(ids) and headline(r, cfg) is not None]
        by_u = max(cand, key=lambda r: headline(r, cfg)) if cand else None
        ckpt_sel[run['name']] = dict(
            last_best_id=dict(iter=best_id['iter'], ood=acc_of(best_id, 'ood_test')),
            unification=dict(iter=by_u['iter'], ood=acc_of(by_u, 'ood_test')) if by_u else None,
            oracle=max(acc_of(r, 'ood_test') or 0.0 for r in recs), final=acc_of(recs[-1], 'ood_test'))
    table = [f"run selection over {len(final)} runs ({cfg['select_repeats']} subsets of {cfg['select_frac']:.0%}): "
             "mean OOD accuracy of the pick"] + [f"  {k:<14s} {v:.4f}" for k, v in sel.items()]
    table += [f"pearson r (headline {cfg['unif_rep']}/{cfg['unif_layer']}) of unification vs OOD: "
              + ', '.join(f"{v} {'n/a' if r is None else f'{r:+.3f}'}" for v, r in rs.items())]
    return dict(correlations=corr, better_variant=better, selection=sel, ckpt_selection=ckpt_sel,
                selection_table=table)


# ----------------------------------------------------------------------------- figures
def parse_args(argv):
    """`out/<exp> [config.py] [--key=value ...]`: a first argument that is not a .py file is exp_dir."""
    if argv and not argv[0].startswith('--') and not argv[0].endswith('.py'):
        argv = [f'--exp_dir={argv[0]}'] + argv[1:]
    return configure(DEFAULTS, argv)


if __name__ == '__main__':
    analyze(parse_args(sys.argv[1:]))
