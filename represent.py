"""
Representations of examples by the runs of a model with a run axis (model.py), batched over runs
and examples: the residual stream at the last prompt token, per-example gradients of the
attribute loss (Adam-preconditioned, randomly projected, optionally whitened as in TrackStar),
and greedy predictions; and the unification of a run's parallel examples, scored the one way that
analyze.py (at checkpoints) and train.py (live, at every evaluation) share. Used by analyze.py,
train.py and bench.py.

Every function takes the examples of each run as a list per run ([examples of run 0, ...]) and
pads them to one (E, N, T) batch; padding examples have length 0 (no loss, no gradient).

  act:  residual stream at the last prompt token (the position that predicts the attribute).
  grad: per-example gradient of the attribute loss (summed cross-entropy over the attribute
        tokens given the prompt), divided by sqrt(Adam second moment) + eps, randomly projected
        to proj_dim dims per parameter group (a dense Gaussian matrix, or a CountSketch: one
        random +-1 entry per row, unbiased for inner products and ~proj_dim times cheaper), with
        grad_precond='trackstar' whitened by R^-1/2 (metrics.whiten), unit-normalised.
"""
import zlib

import numpy as np
import torch
from torch.func import functional_call, grad, vmap

import metrics
import model as model_lib
import records


def encode_runs(per_run, dev):
    """The examples of every run, padded to one (E, N, T) batch: ids, prompt_len (E, N), length
    (E, N). A padding example has length 0 (no attribute: no loss, no gradient)."""
    N = max(len(x) for x in per_run)
    T = max((len(e['tokens']) for x in per_run for e in x), default=2)
    idx = torch.zeros(len(per_run), N, T, dtype=torch.long)
    plen = torch.ones(len(per_run), N, dtype=torch.long)
    tlen = torch.zeros(len(per_run), N, dtype=torch.long)
    for r, x in enumerate(per_run):
        if x:
            enc = records.encode_examples(x, T=T)
            idx[r, :len(x)] = torch.from_numpy(enc['tokens'])
            plen[r, :len(x)], tlen[r, :len(x)] = torch.from_numpy(enc['prompt_len']), torch.from_numpy(enc['length'])
    return idx.to(dev), plen.to(dev), tlen.to(dev)


@torch.no_grad()
def activation_reps(model, per_run, batch_size=1024):
    """Residual stream at the last prompt token of each example of each run:
    [(L+1, N_r, d) float32 per run]."""
    dev = next(model.parameters()).device
    idx, plen, _ = encode_runs(per_run, dev)
    E, N = plen.shape
    out = []
    for s in range(0, N, batch_size):
        pl = plen[:, s:s + batch_size]                                    # (E, B)
        _, hidden = model(idx[:, s:s + batch_size, :int(pl.max())], return_hidden=True)  # (L+1, E, B, T, d)
        e, b = torch.meshgrid(torch.arange(E, device=dev), torch.arange(pl.shape[1], device=dev), indexing='ij')
        out.append(hidden[:, e, b, pl - 1].float())                      # (L+1, E, B, d)
    acts = torch.cat(out, 2)
    return [acts[:, r, :len(x)] for r, x in enumerate(per_run)]


def concat_layers(act):
    """Activations (L+1, N, d) -> (N, (L+1) d): every layer side by side (the layer 'concat')."""
    return act.permute(1, 0, 2).reshape(act.shape[1], -1)


def unification_labels(examples, fact_types, dev):
    """What metrics.unification groups parallel examples by: fact (person x fact type, numbered 0..F-1
    in that order), language and fact type. -> three (N,) long tensors."""
    ft_id = {ft: i for i, ft in enumerate(fact_types)}
    fact = torch.tensor([e['person'] * len(ft_id) + ft_id[e['fact_type']] for e in examples], device=dev)
    return (torch.unique(fact, return_inverse=True)[1], torch.tensor([e['lang'] for e in examples], device=dev),
            torch.tensor([ft_id[e['fact_type']] for e in examples], device=dev))


@torch.no_grad()
def live_unification(model, per_run, fact_types, batch_size=1024):
    """Unification of every run's parallel examples (records.parallel_sample), scored as analyze.py scores
    its headline at a checkpoint: activations at the last prompt token, all layers concatenated, the
    headline and the paper's ratio (metrics). A run without parallel examples says so. -> per run the
    fields its log.jsonl record gets: {'unification': {variant: value or None, signal_z, facts, examples}}
    or {'unification': None, 'unification_null_reason': why}."""
    acts = activation_reps(model, per_run, batch_size) if any(per_run) else [None] * len(per_run)
    out = []
    for a, ex, fts in zip(acts, per_run, fact_types):
        res, why = (None, records.NO_PARALLEL) if not ex else \
            metrics.unification(concat_layers(a), *unification_labels(ex, fts, a.device))
        out.append(dict(unification=None, unification_null_reason=why) if why else dict(unification=dict(
            {v: None if res[v] is None else round(res[v], 6) for v in (metrics.HEADLINE, metrics.PAPER_RATIO)},
            signal_z=res['signal_z'], facts=len({(e['person'], e['fact_type']) for e in ex}), examples=len(ex))))
    return out


def per_example_grads(model, idx, plen, tlen, dtype=torch.float32, how='vmap'):
    """Gradient of each example's attribute loss (summed CE over the attribute tokens given the
    prompt), every run at once. idx (E, B, T), plen, tlen (E, B) -> {param name: (E, B, *param
    shape)}: example b of run r in [r, b]. dtype: of the weights, activations and gradients (the loss
    is taken in float32). how: 'vmap' = torch.func's vmap(grad) over examples (the weights read once
    per run); 'runs' = every (run, example) pair becomes a run of its own, the weights repeated B
    times (memory as for the gradients), and one ordinary backward leaves each example's gradient in
    its copy, already in this layout (on a CPU in bf16 ~1.4x faster: vmap's batching moves about a
    third of its time into copies; docs/speed.md)."""
    if how not in ('vmap', 'runs'):
        raise ValueError(f"per_example_grads: how={how!r} is not 'vmap' or 'runs'")
    pos = torch.arange(1, idx.shape[-1], device=idx.device)               # target positions
    E, B, T = idx.shape

    def nll(logits, ids):                                                 # (..., T-1, V), (..., T) -> (..., T-1)
        return -logits.float().log_softmax(-1).gather(-1, ids[..., 1:, None]).squeeze(-1)

    if how == 'runs':
        params = {k: v.detach().to(dtype)[:, None].expand(E, B, *v.shape[1:]).reshape(E * B, *v.shape[1:])
                  .requires_grad_() for k, v in model.named_parameters()}          # (E*B, *shape) each
        offset = model_lib.run_offsets(E * B, model.config.vocab_size, idx.device)
        ids = idx.reshape(E * B, 1, T)
        logits = functional_call(model, {**params, 'run_offset': offset}, (ids[:, :, :-1],))[:, 0]  # (E*B, T-1, V)
        loss = (nll(logits, ids[:, 0]) * records.attribute_targets(pos, plen.reshape(-1, 1), tlen.reshape(-1, 1))).sum()
        grads = torch.autograd.grad(loss, list(params.values()))
        return {k: g.view(E, B, *g.shape[1:]) for k, g in zip(params, grads)}

    def loss(p, ids, pl, tl):                                             # ids (E, T): example b of every run
        logits = functional_call(model, p, (ids[:, None, :-1],))[:, 0]    # (E, T-1, V)
        # the runs' losses are summed: run r's parameters only see run r's example
        return (nll(logits, ids) * records.attribute_targets(pos, pl[:, None], tl[:, None])).sum()

    params = {k: v.detach().to(dtype) for k, v in model.named_parameters()}
    sdpa, model.use_sdpa = model.use_sdpa, False                          # SDPA has no vmap batching rule
    try:
        return vmap(grad(loss), in_dims=(None, 1, 1, 1), out_dims=1)(params, idx, plen, tlen)
    finally:
        model.use_sdpa = sdpa


_PROJ = {'bytes': 0}
PROJ_CHUNK = 32768          # parameter entries per generated block of Gaussian projection rows (bounds the draw's memory)
PROJ_CACHE_GB = dict(cuda=16.0, other=1.0)   # the Gaussian projection stays on the device up to this size, else is redrawn


def projection_blocks(name, numel, k, seed, chunk, dev, cache_bytes, dtype=torch.float32):
    """Rows of the fixed Gaussian projection matrix for one parameter tensor, as (start, (rows, k))
    blocks of N(0, 1/k) entries; block j is drawn on dev from a generator seeded by (seed, name,
    j), so the matrix depends only on these (and the device's generator), never on batch sizes or
    other parameters. Kept on the device while the cache has room, else redrawn at every call."""
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


def sketch(name, numel, k, seed, dev):
    """CountSketch of one parameter tensor: entry i goes to bucket h(i) with sign s(i), both drawn
    from a generator seeded by (seed, name): E[<Sx, Sy>] = <x, y>, and a projection costs one pass
    over the gradient instead of a (numel x k) matmul. -> bucket (numel,) long, sign (numel,)."""
    key = ('sketch', name, numel, k, seed, str(dev))
    if key not in _PROJ:
        gen = torch.Generator(device='cpu').manual_seed((seed * 1_000_003 + zlib.crc32(name.encode())) % 2 ** 62)
        bucket = torch.randint(0, k, (numel,), generator=gen)
        sign = torch.randint(0, 2, (numel,), generator=gen).float() * 2 - 1
        _PROJ[key] = (bucket.to(dev), sign.to(dev))
    return _PROJ[key]


def project(name, g, cfg, scale=None):
    """(..., numel) float -> (..., k) float32 with the fixed projection of parameter `name`, of g
    times `scale` (broadcast over g; the Adam correction): the CountSketch folds it into its signs,
    so the gradient is read once (a division, then a product with the signs, read it three times).
    A bf16 g is cast to float32 first, then scaled in place: the same numbers as a mixed-dtype
    product, ~2.5x faster on a CPU (that product takes a slow casting path)."""
    k, dev, lead, numel = cfg['proj_dim'], g.device, g.shape[:-1], g.shape[-1]
    if cfg['proj_kind'] == 'sketch':
        bucket, sign = sketch(name, numel, k, cfg['proj_seed'], dev)
        s = sign if scale is None else scale * sign
        g = (g * s if g.dtype == torch.float32 else g.float().mul_(s)).reshape(-1, numel)
        return g.new_zeros(g.shape[0], k).index_add_(1, bucket, g).view(*lead, k)
    dtype = {'auto': torch.bfloat16 if dev.type == 'cuda' else torch.float32}.get(cfg['proj_dtype']) \
        or getattr(torch, cfg['proj_dtype'])
    g = (g if scale is None else g * scale).to(dtype).reshape(-1, numel)
    out = torch.zeros(g.shape[0], k, device=dev)
    cache_gb = PROJ_CACHE_GB['cuda' if dev.type == 'cuda' else 'other']
    for start, R in projection_blocks(name, numel, k, cfg['proj_seed'], PROJ_CHUNK, dev, cache_gb * 1e9, dtype):
        out += (g[:, start:start + len(R)] @ R).float()
    return out.view(*lead, k)


def layer_group(name):
    """Parameter name -> layer key: 'h.<i>.*' -> 'L<i+1>', the token embedding -> 'emb', rest -> 'head'."""
    parts = name.split('.')
    if parts[0] == 'h' and parts[1].isdigit():
        return f'L{int(parts[1]) + 1}'
    return 'emb' if name == 'wte' else 'head'


def adam_denominators(model, ckpts, beta2s):
    """sqrt(bias-corrected Adam v) + eps per parameter, (E, *shape), from each run's checkpoint;
    None for a run without Adam state (iter 0: the raw gradient is used)."""
    shapes = {n: p.shape[1:] for n, p in model.named_parameters()}
    dev = next(model.parameters()).device
    out = []
    for ckpt, beta2 in zip(ckpts, beta2s):
        v = ckpt.get('adam_v') or {}
        if v and set(v) != set(shapes):
            raise ValueError(f"checkpoint iter {ckpt.get('iter')}: adam_v lacks {sorted(set(shapes) - set(v))[:3]}")
        bc = 1 - beta2 ** ckpt['adam_step'] if beta2 and ckpt.get('adam_step') else 1.0
        eps = float(ckpt.get('adam_eps', 1e-8))
        out.append({n: (v[n].to(dev).float().view(shapes[n]) / bc).sqrt() + eps for n in shapes} if v else None)
    return out


def gradient_reps(model, ckpts, per_run, cfg, beta2s=None, norms=False):
    """Per-example attribute-loss gradients of every run, / (sqrt(Adam v) + eps) of that run,
    projected per layer group, optionally whitened (TrackStar), unit-normalised:
    ([{layer key: (N_r, k)} per run], norms); 'concat' = the projection of the whole gradient, 'no_emb' =
    of all but the token embeddings. norms=True also measures each layer group's squared norm of the
    unprojected gradient, as it is and after Adam's division: [{group: (N_r, 2)} per run], else None.
    cfg['dtype'] = 'bfloat16' computes the per-example gradients in bf16 (on a CPU with native bf16:
    faster, representations within cosine 0.997 of float32's; analyze.pick_settings, docs/speed.md);
    cfg['grad_impl'] is per_example_grads' how."""
    dev = next(model.parameters()).device
    dtype = getattr(torch, cfg.get('dtype') or 'float32')
    E = len(per_run)
    names = sorted(n for n, _ in model.named_parameters())
    denom = adam_denominators(model, ckpts, beta2s or [None] * E)
    params = dict(model.named_parameters())
    inv = {n: torch.stack([1 / d[n].flatten() if d is not None else torch.ones_like(params[n][0]).flatten()
                           for d in denom]) for n in names}                 # (E, numel): 1 / (sqrt(v) + eps) of each run
    idx, plen, tlen = encode_runs(per_run, dev)
    N, k = idx.shape[1], cfg['proj_dim']
    out = {g: torch.zeros(E, N, k, device=dev) for g in {layer_group(n) for n in names}}
    sq = {g: torch.zeros(E, N, 2, device=dev) for g in out} if norms else None     # [raw, Adam-divided] |g|^2
    step = max(1, cfg['grad_batch'] // E)
    for s in range(0, N, step):
        sl = slice(s, s + step)
        T = max(2, int(tlen[:, sl].max()))
        G = per_example_grads(model, idx[:, sl, :T], plen[:, sl], tlen[:, sl], dtype, cfg.get('grad_impl', 'vmap'))
        for n in names:
            g = G.pop(n).flatten(2)                                            # (E, B, numel)
            if norms:
                g2 = g.float().square()
                sq[layer_group(n)][:, sl] += torch.stack([g2.sum(-1), (g2 * inv[n][:, None].square()).sum(-1)], -1)
            out[layer_group(n)][:, sl] += project(n, g, cfg, inv[n][:, None])
    out['no_emb'] = sum(v for g, v in out.items() if g != 'emb')          # all but the input embeddings (their
    out['concat'] = out['no_emb'] + out.get('emb', 0)                      # rare rows Adam inflates); the full gradient
    reps = []
    for r, x in enumerate(per_run):
        layers = {key: v[r, :len(x)] for key, v in out.items()}
        if cfg['grad_precond'] == 'trackstar':
            layers = {key: metrics.whiten(v, cfg['trackstar_damping']) for key, v in layers.items()}
        reps.append({key: metrics.unit(v) for key, v in layers.items()})
    return reps, [{g: v[r, :len(x)] for g, v in sq.items()} for r, x in enumerate(per_run)] if norms else None


@torch.no_grad()
def predict(model, per_run, max_len, batch_size=1024):
    """Greedy continuation of each prompt of each run for up to max_len + 1 tokens:
    [(N_r, max_len + 1) ids per run] (0 where the sequence would pass block_size)."""
    dev = next(model.parameters()).device
    idx, plen, _ = encode_runs(per_run, dev)
    E, N = plen.shape
    block = model.config.block_size
    out = []
    for s in range(0, N, batch_size):
        pl = plen[:, s:s + batch_size]                                    # (E, B)
        T = min(block, int(pl.max()) + max_len + 1)
        x = torch.zeros(E, pl.shape[1], T, dtype=torch.long, device=dev)
        x[..., :min(T, idx.shape[2])] = idx[:, s:s + batch_size, :T]
        x[torch.arange(T, device=dev) >= pl[..., None]] = 0               # drop the true attribute
        e, b = torch.meshgrid(torch.arange(E, device=dev), torch.arange(pl.shape[1], device=dev), indexing='ij')
        for step in range(max_len + 1):
            at = pl - 1 + step                                             # position predicting token pl + step
            ok = at + 1 < T
            logits = model(x[:, :, :min(T, int(pl.max()) + step)])
            nxt = logits[e, b, at.clamp(max=logits.shape[2] - 1)].argmax(-1)
            x[e[ok], b[ok], (at + 1)[ok]] = nxt[ok]
        cols = [x[e, b, (pl + j).clamp(max=T - 1)] * (pl + j < T) for j in range(max_len + 1)]
        out.append(torch.stack(cols, -1))                                  # (E, B, max_len + 1)
    pred = torch.cat(out, 1).cpu()
    return [pred[r, :len(x)] for r, x in enumerate(per_run)]


def decoded_correct(pred, examples):
    """Per example: do the greedily decoded tokens start with the attribute? (bool array)"""
    return np.array([row[:len(a)] == a for row, a in
                     zip(pred.tolist(), (records.attribute_tokens(e) for e in examples))], bool)
