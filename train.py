"""
Train one run, or a sweep of runs in lockstep, on synthetic bilingual knowledge data.

    python train.py config/celeb_08.py                  # one run (the dataset is built if missing)
    python train.py config/sweep_celeb.py               # every combination of `sweep` in one process
    python train.py config/sweep_celeb.py --shard=0/4   # a quarter of the sweep's runs, e.g. one GPU
    torchrun --nproc_per_node=4 train.py config/selection.py   # its 4 shards on the 4 GPUs of a node
    python train.py config/quick.py                     # the 4-minute smoke run on a CPU
    python train.py config/laptop/sweep_celeb.py        # the main sweep at laptop scale (docs/experiments.md)
    python train.py --help                              # every knob, with its default

A sweep stacks its runs on a leading run axis E of every weight (model.py): on a GPU a step of
16 runs costs 1.5-5x a step of one (H200, docs/speed.md), far less than 16 separate runs. Each run reads its own dataset, has its own init and its own
data order, and gets its own gradient clipping, so run r of a sweep follows the path it would
follow trained alone (same seed): AdamW is elementwise and the loss is a sum of per-run means,
so the runs never touch. Batches are drawn by a counter-based hash of (seed, iter), which is
what makes an interrupted sweep resume bit-for-bit. learning_rate and weight_decay may differ
between the runs of a sweep: AdamW then steps with the schedule alone and each run's update is
scaled by its own learning rate, with its own decoupled decay (train_step).

Never loses work: every file is written whole or not at all (checkpoints by a background thread
through a temporary file and a rename; log lines appended whole), and a full disk is named as such.
The whole sweep's state (weights, optimizer, the losses not yet logged) goes to a resume file at every
checkpoint, every `resume_every` seconds, and on Ctrl-C or SIGTERM (after the step in flight); after
a crash or a kill -9 at any moment, `--resume=True` continues from it and ends as an uninterrupted run
would (on CPU, bit for bit, at the same thread count). One process writes a run at a time (locks in
out/<exp>/.locks/); a second run into an out_dir that holds a run is refused.

Writes out/<exp>/<run>/{config.json, log.jsonl, ckpt_<iter>.pt}, out/<exp>/resume[_<i>of<n>].pt while
training and out/<exp>/timing[_<i>of<n>].json at the end.
"""
import glob
import itertools
import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

import checkpoints
import data_gen
from configurator import cli, coerce, config_keys, configure, overrides
from model import (BLOCKS, GPT, GPTConfig, autocast, cpu_reuse_memory, param_groups, pick_device, set_threads,
                   system_settings)

# -----------------------------------------------------------------------------
# I/O
out_dir = 'out/default'   # experiment directory; one subdirectory per run
eval_interval = 500       # evaluate every this many steps (and at every checkpoint and the end)
eval_max = 2000           # examples per split and run per evaluation (0 = the whole split)
log_interval = 50         # steps between loss records (and NaN checks)
n_ckpts = 20              # weight snapshots per run, log-spaced from ckpt_first to max_iters (the last included), plus init
ckpt_first = 50           # step of the first log-spaced snapshot: separation happens in the first few hundred steps
resume = False            # continue an interrupted experiment from its resume file in out_dir
resume_every = 300.0      # seconds between resume points (0 = every evaluation); also at checkpoints, on Ctrl-C/SIGTERM
overwrite = False         # start over in an out_dir that holds a run of this experiment (deletes its checkpoints and logs)
wandb_log = False         # log to Weights & Biases (imported only when on)
wandb_project = 'rosetta' # its project name
# sweep
sweep = {}                # {knob: [values]}: every combination is a run; data knobs, seed, learning_rate, weight_decay
shard = ''                # 'i/n': the i-th of n interleaved shards of the runs; '' = all (under torchrun: its rank)
# model
block = 'pythia'          # 'pythia' (GPT-NeoX) or 'gemma2'
n_layer = 6               # Pythia-14m shape by default
n_head = 4                # attention heads
n_embd = 128              # residual width
# optimisation (calibrated on the default word dataset, see README)
seed = 0                  # init and data-order seed of a run (sweepable)
max_iters = 12000         # optimisation steps
batch_size = 256          # sequences per step and run
learning_rate = 3e-3      # peak lr after warmup (sweepable)
min_lr_frac = 0.1         # cosine decays to learning_rate * min_lr_frac at max_iters
warmup_iters = 200        # linear warmup steps
weight_decay = 0.1        # AdamW decoupled weight decay on matrices and embeddings (sweepable)
beta1 = 0.9               # AdamW first-moment decay
beta2 = 0.95              # AdamW second-moment decay
grad_clip = 1.0           # per-run gradient norm clip (0 = off)
# system
device = 'auto'           # 'auto' = cuda (cuda:LOCAL_RANK under torchrun), then mps, then cpu
dtype = 'auto'            # 'auto' = bfloat16 autocast on cuda and on CPUs with native bfloat16 (AVX512-BF16, AMX), else float32
compile = 'auto'          # torch.compile; 'auto' = on for cuda, and on a CPU where a C++ compiler is found
cuda_graph = 'auto'       # capture the whole step as one CUDA graph; 'auto' = on for cuda with compile
threads = 0               # torch's CPU threads; 0 = auto: the cores other processes leave free at start (resume: as before)
reuse_memory = True       # on a CPU keep freed memory in the process (faster steps; it keeps its peak memory till exit)
# -----------------------------------------------------------------------------
DEFAULTS = {**data_gen.DATA_DEFAULTS, **config_keys(globals())}
CHOICES = {**data_gen.CHOICES, 'block': BLOCKS, 'dtype': ('auto', 'float32', 'bfloat16', 'float16'),
           'compile': ('auto', True, False), 'cuda_graph': ('auto', True, False)}
MODEL_KEYS = ('block', 'n_layer', 'n_head', 'n_embd')
PER_RUN_OPT = ('learning_rate', 'weight_decay')       # optimiser knobs a lockstep sweep may vary
SPLITS = data_gen.SPLITS
EVAL_CHUNK = 1024         # examples per evaluation forward pass (every split is padded to a multiple: static shapes)
FREE_ON_RESUME = {'resume', 'device', 'compile', 'cuda_graph', 'wandb_log', 'wandb_project', 'resume_every',
                  'overwrite', 'threads', 'reuse_memory'}                        # may change on resume


def check_cfg(cfg):
    """A one-line ValueError naming the knob for every setting that cannot train."""
    rules = [(cfg[k] >= 1, f"{k}={cfg[k]} must be >= 1") for k in
             ('max_iters', 'eval_interval', 'log_interval', 'batch_size', 'n_ckpts', 'ckpt_first')]
    rules += [(cfg[k] >= 0, f"{k}={cfg[k]} must be >= 0") for k in
              ('warmup_iters', 'eval_max', 'weight_decay', 'grad_clip', 'resume_every', 'threads')]
    rules += [(cfg['learning_rate'] > 0, f"learning_rate={cfg['learning_rate']} must be > 0"),
              (0 <= cfg['min_lr_frac'] <= 1, f"min_lr_frac={cfg['min_lr_frac']} must be in [0, 1]"),
              (0 <= cfg['beta1'] < 1 and 0 <= cfg['beta2'] < 1, "beta1 and beta2 must be in [0, 1)"),
              (not (cfg['resume'] and cfg['overwrite']), "resume=True and overwrite=True contradict each other")]
    for ok, msg in rules:
        if not ok:
            raise ValueError(f"config error: {msg}")


def expand_sweep(cfg):
    """Every combination of cfg['sweep'] -> list of (run_name, run_cfg)."""
    grid = cfg['sweep']
    if not grid:
        return [('main', dict(cfg))]
    for k, values in grid.items():
        if k not in DEFAULTS:
            raise ValueError(f"config error: sweep over unknown key '{k}'")
        if k not in data_gen.DATA_DEFAULTS and k not in ('seed',) + PER_RUN_OPT:
            raise ValueError(f"config error: sweep over '{k}': runs in lockstep share everything but their "
                             f"data knobs, seed, {' and '.join(PER_RUN_OPT)}")
        if not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"config error: sweep['{k}'] must be a non-empty list")
    if cfg['dataset'] and any(k in data_gen.DATA_DEFAULTS for k in grid):
        raise ValueError("config error: dataset must be '' in a sweep over data knobs "
                         "(each run's dataset is named after its knobs)")
    runs = []
    for combo in itertools.product(*grid.values()):
        rc = dict(cfg, sweep={})
        rc.update({k: coerce(k, v, DEFAULTS[k], CHOICES.get(k)) for k, v in zip(grid, combo)})
        check_cfg(rc)                             # a swept learning_rate or weight_decay is checked too
        runs.append(('-'.join(f'{k}{v}' for k, v in zip(grid, combo)), rc))
    return runs


def select_shard(runs, shard):
    """Runs i::n of 'i/n'; under torchrun with shard='' the shard is the process's rank."""
    if not shard and int(os.environ.get('WORLD_SIZE', 1)) > 1:
        shard = f"{os.environ['RANK']}/{os.environ['WORLD_SIZE']}"
    if not shard:
        return runs, ''
    try:
        i, n = (int(s) for s in shard.split('/'))
    except ValueError:
        i, n = -1, 0
    if not 0 <= i < n:
        raise ValueError(f"config error: shard={shard!r} is not 'i/n' with 0 <= i < n")
    if i >= len(runs):
        raise ValueError(f"config error: shard={shard!r} has no runs: the sweep has only {len(runs)}")
    return runs[i::n], shard


def ckpt_iters(max_iters, n, first=50):
    """The initialisation and n snapshots log-spaced from `first` to max_iters (the last step is
    one of the n): the early, separation phase is sampled the same way however long the run."""
    first = min(first, max_iters)
    its = np.geomspace(first, max_iters, n) if n > 1 else [max_iters]
    return sorted(set(np.round(its).astype(int).tolist()) | {0, max_iters})


def get_lr(it, cfg):
    if it < cfg['warmup_iters']:
        return cfg['learning_rate'] * (it + 1) / (cfg['warmup_iters'] + 1)
    frac = (it - cfg['warmup_iters']) / max(1, cfg['max_iters'] - cfg['warmup_iters'])
    lo = cfg['learning_rate'] * cfg['min_lr_frac']
    return lo + 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))) * (cfg['learning_rate'] - lo)


def mix32(x):
    """A 32-bit integer hash on int64 tensors (products stay below 2**63)."""
    x = x & 0xFFFFFFFF
    x = ((x >> 16) ^ x) * 0x45D9F3B & 0xFFFFFFFF
    x = ((x >> 16) ^ x) * 0x45D9F3B & 0xFFFFFFFF
    return (x >> 16) ^ x


def batch_indices(run_seeds, it, batch_size, n_train):
    """(E, B) example indices of step `it`: a function of (seed, it, b) only, so a run's data
    order does not depend on the other runs, and needs no generator state to resume."""
    b = torch.arange(batch_size, device=run_seeds.device)
    h = mix32(mix32(mix32(run_seeds[:, None] + 0x9E3779B9) + it) + b[None, :])
    return h % n_train[:, None]


# -----------------------------------------------------------------------------
# data: every split of every run as padded tensors on the device

def encode_split(examples, meta, T):
    """One run's split as tensors: tokens (N, T), prompt_len, length, group, template (N,)."""
    enc = data_gen.encode_examples(examples, meta, T)
    return {k: torch.from_numpy(enc[k]) for k in ('tokens', 'prompt_len', 'length', 'group', 'template')}


def stack_runs(per_run, device, multiple=1):
    """Pad each run's split to the longest and stack: tensors (E, N, ...) plus n (E,), the real
    sizes. N is rounded up to a multiple of `multiple` when larger, so evaluating in chunks of
    that size sees one shape (no recompilation). Padding rows have length 0."""
    n = torch.tensor([d['tokens'].shape[0] for d in per_run])
    N = int(n.max()) if n.max() <= multiple else -(-int(n.max()) // multiple) * multiple
    out = {}
    for k in per_run[0]:
        parts = [F.pad(d[k], (0, 0) * (d[k].dim() - 1) + (0, N - d[k].shape[0])) for d in per_run]
        out[k] = torch.stack(parts).to(device)
    out['n'] = n.to(device)
    return out


def load_runs_data(runs, cfg):
    """Build (if missing) and load every run's dataset; check that the runs can share shapes.
    -> metas, the full train splits (for batches) and the evaluation samples of every split."""
    metas = []
    for _, rc in runs:
        rc['dataset_path'] = data_gen.prepare(rc)
        metas.append(data_gen.load_meta(rc['dataset_path']))
    for m, (_, rc) in zip(metas, runs):
        for what, a, b in (('vocabulary size', len(metas[0]['vocab']), len(m['vocab'])),
                           ('sequence length', metas[0]['block_size'], m['block_size'])):
            if a != b:
                diff = [k for k in data_gen.DATA_DEFAULTS if k != 'dataset' and rc[k] != runs[0][1][k]]
                raise ValueError(f"config error: runs of a sweep must share {what} ({a} vs {b}); "
                                 f"it differs with {', '.join(diff) or 'the dataset'}")
    T = metas[0]['block_size']
    train_full, evals = [], {s: [] for s in SPLITS}
    for (_, rc), m in zip(runs, metas):
        for i, s in enumerate(SPLITS):
            exs = data_gen.load_split(rc['dataset_path'], s, m)
            if not exs:
                raise ValueError(f"data error: split '{s}' of {rc['dataset_path']} is empty")
            if s == 'train':
                train_full.append(encode_split(exs, m, T))
            if cfg['eval_max'] and len(exs) > cfg['eval_max']:
                rng = np.random.default_rng([rc['seed'], i])   # the run's own sample, whatever else runs
                exs = [exs[j] for j in sorted(rng.choice(len(exs), cfg['eval_max'], replace=False))]
            evals[s].append(encode_split(exs, m, T))
    return metas, train_full, evals


# -----------------------------------------------------------------------------
# loss and evaluation

def train_loss(model, tokens, length, ctx):
    """Next-token loss over whole sequences, padding ignored: sum over runs of each run's mean,
    so every run gets exactly the gradient it would get alone.  -> (total, per-run (E,))"""
    with ctx:
        logits = model(tokens[:, :, :-1])                                        # (E, B, T-1, V)
    lp = torch.log_softmax(logits.float(), -1).gather(-1, tokens[:, :, 1:, None]).squeeze(-1)
    pos = torch.arange(1, tokens.shape[-1], device=tokens.device)
    mask = (pos < length[..., None]).float()                                     # (E, B, T-1) real targets
    per_run = -(lp * mask).sum((1, 2)) / mask.sum((1, 2))
    return per_run.sum(), per_run


@torch.no_grad()
def evaluate(model, split, ctx, chunk=EVAL_CHUNK):
    """Attribute recall on one split: per example, is every attribute token the greedy
    prediction given the prompt (teacher forcing on earlier attribute tokens is equivalent to
    greedy decoding), and the probability of the whole attribute. Every call sees the same
    shape (the split is padded to a multiple of `chunk`). -> correct (E, N), prob (E, N)."""
    correct, prob = [], []
    N = split['tokens'].shape[1]
    chunk = min(chunk, N)
    pos = torch.arange(1, split['tokens'].shape[-1], device=split['tokens'].device)
    for s in range(0, N, chunk):
        tok = split['tokens'][:, s:s + chunk]
        with ctx:
            logits = model(tok[:, :, :-1]).float()
        lp = torch.log_softmax(logits, -1)
        tgt = tok[:, :, 1:]
        attr = data_gen.attribute_targets(pos, split['prompt_len'][:, s:s + chunk, None],
                                          split['length'][:, s:s + chunk, None])
        correct.append(((lp.argmax(-1) == tgt) | ~attr).all(-1))
        prob.append((lp.gather(-1, tgt[..., None]).squeeze(-1) * attr).sum(-1).exp())
    return torch.cat(correct, 1), torch.cat(prob, 1)


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


def evaluate_all(model, eval_sets, ctx, it, metas):
    """Evaluate every split of every run. -> ({(run, split): accuracy}, per run the log lines)."""
    acc, lines = {}, [[] for _ in metas]
    for s in SPLITS:
        correct, prob = (x.cpu().numpy() for x in evaluate(model, eval_sets[s], ctx))  # one host sync per split
        g, t, n = (eval_sets[s]['host'][k] for k in ('group', 'template', 'n'))
        for r, meta in enumerate(metas):
            recs = eval_records(it, s, correct[r, :n[r]], prob[r, :n[r]], g[r, :n[r]], t[r, :n[r]], meta)
            lines[r] += [json.dumps(x) + '\n' for x in recs]
            acc[(r, s)] = recs[0]['acc']
    return acc, lines


def load_resume(path, cfg, dev):
    """The resume file's state, checked: there, readable, and made by the same config."""
    if not os.path.exists(path):
        ckpts = [glob.glob(os.path.join(d, 'ckpt_*.pt')) for d in cfg['_run_dirs']]
        if all(os.path.exists(os.path.join(d, f"ckpt_{cfg['max_iters']}.pt")) for d in cfg['_run_dirs']):
            raise ValueError("resume error: nothing to resume: every run has its final checkpoint")
        if any(ckpts):                           # an out_dir written before resume points came with checkpoints
            raise ValueError(f"resume error: no resume point at {path}, and the checkpoints hold no optimizer state "
                             "(made by an older version?): start over with --overwrite=True")
        raise ValueError(f"resume error: nothing to resume in {os.path.dirname(path) or '.'} (no resume point, no "
                         "checkpoint): start without --resume=True")
    try:
        state = torch.load(path, map_location=dev, weights_only=True)
        mine = {k: v for k, v in cfg.items() if k not in FREE_ON_RESUME and not k.startswith('_')}
        theirs = {k: v for k, v in state['cfg'].items() if k not in FREE_ON_RESUME}
    except Exception as e:
        raise ValueError(f"resume error: {path} is unreadable ({type(e).__name__}: {str(e)[:80]}); "
                         "delete it to start over") from None
    if mine != theirs:
        diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        raise ValueError(f"resume error: config differs from the interrupted run in {', '.join(diff)}")
    return state


def saved_threads(path):
    """The CPU thread count recorded in a resume file (None if there is none to read)."""
    try:
        return int(torch.load(path, map_location='cpu', weights_only=True).get('threads') or 0) or None
    except Exception:
        return None                              # load_resume names the problem


# -----------------------------------------------------------------------------
# the step

def shape_args(cfg, meta):
    """GPTConfig arguments of a run: the model knobs and the dataset's vocabulary and sequence length."""
    return dict({k: cfg[k] for k in MODEL_KEYS}, vocab_size=len(meta['vocab']), block_size=meta['block_size'])


def make_optimizer(raw, runs, cfg, dev, capturable):
    """AdamW over all runs. -> (opt, lr tensor set in place every step, per-run hyperparameters or
    None). When the runs' learning rates or weight decays differ, AdamW steps with the schedule
    alone (peak 1, no decay) and train_step rescales each run's update (see there). The fused
    kernel on CUDA and on a CPU (one pass over each weight; a CPU step measured 3-6% faster)."""
    lrs = [rc['learning_rate'] for _, rc in runs]
    wds = [rc['weight_decay'] for _, rc in runs]
    per_run = None
    if len(set(lrs)) > 1 or len(set(wds)) > 1:
        decayed = {id(p) for p in param_groups(raw, 1.0)[0]['params']}
        per_run = dict(lr=torch.tensor(lrs, device=dev), wd=torch.tensor(wds, device=dev),
                       prev=[torch.empty_like(p) for p in raw.parameters()],
                       decays=[id(p) in decayed for p in raw.parameters()])
    lr_buf = torch.tensor(1.0 if per_run else cfg['learning_rate'], device=dev)
    opt = torch.optim.AdamW(param_groups(raw, 0.0 if per_run else cfg['weight_decay']), lr=lr_buf,
                            betas=(cfg['beta1'], cfg['beta2']), fused=dev.startswith('cuda') or dev == 'cpu',
                            capturable=capturable)
    return opt, lr_buf, per_run


def gather_batch(data, idx):
    """Rows idx (E, B) of each run's training split -> tokens (E, B, T), lengths (E, B)."""
    tokens = torch.gather(data['tokens'], 1, idx[..., None].expand(-1, -1, data['tokens'].shape[-1]))
    return tokens, torch.gather(data['length'], 1, idx)


def train_step(model, raw, opt, data, run_seeds, it, batch_size, grad_clip, ctx, per_run=None, lr=None):
    """One optimisation step of every run -> per-run losses (E,). `it` and `lr` may be device
    tensors (under a CUDA graph): nothing here reads a value back to the host."""
    tokens, length = gather_batch(data, batch_indices(run_seeds, it, batch_size, data['n']))
    loss, per_run_loss = train_loss(model, tokens, length, ctx)
    loss.backward()
    if grad_clip > 0:
        clip_per_run(raw.parameters(), grad_clip)
    if per_run is None:
        opt.step()
    else:
        # AdamW took p_prev - s * u with s = the schedule (lr tensor, peak 1) and no decay; run e
        # wants p_prev * (1 - s lr_e wd_e) - s lr_e u, as AdamW with its own lr and decay would do
        params = list(raw.parameters())
        torch._foreach_copy_(per_run['prev'], [p.detach() for p in params])
        opt.step()
        with torch.no_grad():
            for p, q, dec in zip(params, per_run['prev'], per_run['decays']):
                e = along_runs(per_run['lr'], p)
                p.sub_(q).mul_(e).add_(q)
                if dec:
                    p.sub_(q * (lr * e * along_runs(per_run['wd'], p)))
    opt.zero_grad(set_to_none=False)
    return per_run_loss.detach()


def capture_step(step, raw, opt):
    """Record step() as one CUDA graph, so a step costs one launch instead of hundreds. The
    warm-up steps that capture needs are undone (weights and optimizer state restored), so the
    run is the same as without the graph. Needs capturable AdamW with a tensor lr. If capture
    fails, the state is restored and the plain step is returned, with a one-line message."""
    params = list(raw.parameters())
    saved = [p.detach().clone() for p in params]

    def restore(saved_state):
        with torch.no_grad():
            for p, q in zip(params, saved):
                p.copy_(q)
            for p, st in opt.state.items():
                for k, v in st.items():
                    v.copy_(saved_state[p][k]) if p in saved_state else v.zero_()
    saved_state = {p: {k: v.clone() for k, v in st.items()} for p, st in opt.state.items()}
    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(side)
        restore(saved_state)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=side):   # the warmed-up stream: its library handles already exist
            out = step()
    except Exception as e:                          # e.g. an op that cannot be captured
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        restore(saved_state)
        print(f"cuda_graph: capture failed ({type(e).__name__}: {str(e).splitlines()[0][:100]}); "
              "training without the graph")
        return step

    def replay():
        graph.replay()
        return out.clone()
    return replay


def along_runs(v, x):
    """A per-run vector v (E,) shaped to broadcast over x (E, ...)."""
    return v.view(-1, *[1] * (x.dim() - 1))


def clip_per_run(params, max_norm):
    """Clip each run's gradient to max_norm separately (one norm across all runs would couple them)."""
    grads = [p.grad for p in params if p.grad is not None]
    sq = torch.stack([g.float().pow(2).flatten(1).sum(1) for g in grads]).sum(0)   # (E,)
    coef = (max_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(along_runs(coef, g).to(g.dtype))


def diverged(run, it, why):
    raise ValueError(f"training error: run '{run}' diverged at iter {it} ({why}); "
                     "its checkpoints before that step are kept")


def loss_lines(hist, first_it, lr, runs):
    """hist (steps, E): stop on a non-finite loss, naming the run and step; else one loss record per
    run, the mean over the steps (with the run's learning rate: lr is the schedule's value for a peak
    of 1). -> per run, a log line."""
    bad = (~torch.isfinite(hist)).nonzero()
    if len(bad):
        step, r = bad[0].tolist()
        diverged(runs[r][0], first_it + step, f'its loss is {hist[step, r].item()}')
    it = first_it + hist.shape[0]
    return [json.dumps(dict(iter=it, split='loss', loss=round(float(hist[:, r].mean()), 6),
                            lr=lr * rc['learning_rate'])) + '\n' for r, (_, rc) in enumerate(runs)]


def show_progress(bar, hist, last_acc, E):
    """The bar's tail: the last step's mean loss and the last evaluation's mean ID and OOD accuracy."""
    post = f"loss {hist[-1].mean():.4f}"
    if last_acc:
        post += f" id {np.mean([last_acc[(r, 'id_test')] for r in range(E)]):.2f}"
        post += f" ood {np.mean([last_acc[(r, 'ood_test')] for r in range(E)]):.2f}"
    bar.set_postfix_str(post)


# -----------------------------------------------------------------------------

@dataclass
class Sweep:
    """What the training loop works on: this process's runs in lockstep, made by setup()."""
    runs: list              # [(run name, run config)]
    run_dirs: list          # out/<exp>/<run> of each run
    exp: str                # the experiment directory (out_dir)
    resume_path: str        # this process's resume file: out/<exp>/resume.pt, or resume_<i>of<n>.pt for a shard
    release: object         # drops the write locks (setup takes them; train drops them on any exit)
    dev: str                # the torch device
    dtype: str              # 'float32' or the autocast dtype
    use_compile: bool       # torch.compile on
    graphed: bool           # the step is one CUDA graph
    threads: int            # torch's CPU threads (0: left as torch set them, off CPU)
    metas: list             # each run's dataset meta.json
    model_args: dict        # GPTConfig fields of one run
    gpt: object             # the stacked GPT, run axis first: what is saved (no '_orig_mod.' prefix)
    model: object           # what steps and evaluations call: gpt, compiled where on
    opt: object             # AdamW over every run
    lr_buf: object          # the learning rate tensor the step reads, set in place every step
    per_run: object         # per-run learning rates and decays when they differ, else None
    ctx: object             # the autocast context
    train_set: dict         # every run's whole training split, stacked (batches are drawn from it)
    eval_sets: dict         # {split: every run's evaluation sample, stacked; 'host': numpy copies for the records}
    log_paths: list = field(default_factory=list)   # out/<exp>/<run>/log.jsonl of each run
    pending_losses: list = field(default_factory=list)  # per-step losses (E,) not yet in a log record
    timing: dict = field(default_factory=dict)      # wall seconds by phase, see loop()
    it_buf: object = None   # the step counter tensor the step reads


def resume_file(shard=''):
    """The resume file's name in out_dir: resume.pt, or resume_<i>of<n>.pt for shard 'i/n'."""
    return f"resume_{shard.replace('/', 'of')}.pt" if shard else 'resume.pt'


def setup(cfg):
    """Everything the runs need before their first step: runs, write locks, device, data, model,
    optimiser. -> Sweep; its `release` drops the locks (called here on error, by train when done)."""
    check_cfg(cfg)
    runs, shard = select_shard(expand_sweep(cfg), cfg['shard'])
    for _, rc in runs:                                 # bad data knobs: an error before anything is written
        data_gen.check(data_gen.data_cfg(rc))
    dev = pick_device(cfg['device'])
    dtype, use_compile, graphed = system_settings(cfg, dev)
    exp = cfg['out_dir']
    resume_name = resume_file(shard)
    # one writer per run (and per resume file) from here on, before anything is read or deleted
    release = checkpoints.lock(exp, [name for name, _ in runs] + [resume_name])
    try:
        saved = saved_threads(os.path.join(exp, resume_name)) if cfg['resume'] and not cfg['threads'] else None
        threads = set_threads(cfg['threads'], dev, saved)
        if dev == 'cpu' and cfg['reuse_memory']:
            cpu_reuse_memory()                         # freed activations stay in the process: faster steps
        metas, train_full, evals = load_runs_data(runs, cfg)
        model_args = shape_args(cfg, metas[0])
        gpt = GPT(GPTConfig(**model_args, n_runs=len(runs)), seeds=[rc['seed'] for _, rc in runs]).to(dev)
        opt, lr_buf, per_run = make_optimizer(gpt, runs, cfg, dev, capturable=graphed)
        eval_sets = {s: stack_runs(evals[s], dev, EVAL_CHUNK) for s in SPLITS}
        for d in eval_sets.values():                   # what the records need, read once
            d['host'] = {k: d[k].cpu().numpy() for k in ('group', 'template', 'n')}
    except BaseException:
        release()
        raise
    return Sweep(runs=runs, run_dirs=[os.path.join(exp, name) for name, _ in runs], exp=exp,
                 resume_path=os.path.join(exp, resume_name), release=release, dev=dev, dtype=dtype,
                 use_compile=use_compile, graphed=graphed, threads=threads, metas=metas, model_args=model_args,
                 gpt=gpt, model=torch.compile(gpt) if use_compile else gpt, opt=opt, lr_buf=lr_buf, per_run=per_run,
                 ctx=autocast(dev, dtype, graphed), train_set=stack_runs(train_full, dev), eval_sets=eval_sets)


def start_files(sweep, cfg):
    """Resume (weights, optimizer, pending losses, logs cut back to the resume point) or start
    fresh; write config.json. -> the first iteration."""
    start = 0
    if cfg['resume']:
        state = load_resume(sweep.resume_path, dict(cfg, _run_dirs=sweep.run_dirs), sweep.dev)
        sweep.gpt.load_state_dict(state['model'])
        sweep.opt.load_state_dict(state['optimizer'])
        for g in sweep.opt.param_groups:
            g['lr'] = sweep.lr_buf                  # loading replaced it with a copy
        start = state['iter']
        sweep.pending_losses = list(state['losses'].to(sweep.dev)) if 'losses' in state else []
        for d in sweep.run_dirs:
            checkpoints.truncate_log(os.path.join(d, 'log.jsonl'), start)
    else:
        checkpoints.check_fresh(sweep.run_dirs, sweep.resume_path, sweep.exp, cfg['overwrite'])
    for d, (name, rc) in zip(sweep.run_dirs, sweep.runs):
        try:
            os.makedirs(d, exist_ok=True)
        except OSError as e:
            raise checkpoints.write_error(d, e) from None
        checkpoints.atomic_write(os.path.join(d, 'config.json'), json.dumps(
            dict(rc, run=name, model_args=dict(sweep.model_args, n_runs=1)), indent=1, default=str))
    sweep.log_paths = [os.path.join(d, 'log.jsonl') for d in sweep.run_dirs]
    return start


def make_step(sweep, cfg):
    """The training step of every run as a function of no arguments (a CUDA graph where on)."""
    run_seeds = torch.tensor([rc['seed'] for _, rc in sweep.runs], device=sweep.dev)
    sweep.it_buf = torch.zeros((), dtype=torch.long, device=sweep.dev)

    def step():
        return train_step(sweep.model, sweep.gpt, sweep.opt, sweep.train_set, run_seeds, sweep.it_buf,
                          cfg['batch_size'], cfg['grad_clip'], sweep.ctx, sweep.per_run, sweep.lr_buf)
    return capture_step(step, sweep.gpt, sweep.opt) if sweep.graphed else step


def resume_point(sweep, cfg, it):
    """The whole sweep's state before step `it`, copied to the host now -> the job that writes it
    (atomically: the resume file always holds one whole state)."""
    losses = torch.stack(sweep.pending_losses) if sweep.pending_losses else torch.zeros(0, len(sweep.runs))
    state = checkpoints.host_copy(dict(model=sweep.gpt.state_dict(), optimizer=sweep.opt.state_dict(), iter=it, cfg=cfg,
                                       losses=losses, threads=sweep.threads))
    return lambda: checkpoints.atomic_save(state, sweep.resume_path)


def train(cfg, stop_after=None):
    """Train every run of cfg in lockstep; returns the experiment directory.
    stop_after: stop (as if killed) after this many steps, for tests of resume."""
    sweep = setup(cfg)
    try:
        return run_sweep(sweep, cfg, stop_after)
    finally:
        sweep.release()                              # after the last file is written


def run_sweep(sweep, cfg, stop_after):
    """train()'s work, with the runs locked."""
    start = start_files(sweep, cfg)
    E, T = len(sweep.runs), sweep.model_args['block_size']
    system = ', '.join([sweep.dtype] + ['compiled'] * sweep.use_compile + ['CUDA graph'] * sweep.graphed
                       + [f"{sweep.threads} thread{'s' * (sweep.threads > 1)}"] * (sweep.threads > 0))
    print(f"{E} run(s) on {sweep.dev} ({system}): {sum(p[0].numel() for p in sweep.gpt.parameters()) / 1e6:.2f}M "
          f"params per run, vocab {sweep.model_args['vocab_size']}, {cfg['batch_size']} x {T} tokens per step and run")
    print('config:', overrides(cfg, DEFAULTS))
    if start:
        print(f"resuming at iter {start} from {sweep.resume_path}")
    wandb = None
    if cfg['wandb_log']:
        import wandb
        wandb.init(project=cfg['wandb_project'], name=os.path.basename(sweep.exp), config=cfg)
    submit, close = checkpoints.background_writer()
    stop = {}

    def on_signal(signum, frame):               # first: finish the step in flight, write a resume point; second: now
        if 'signal' in stop:
            raise KeyboardInterrupt
        stop['signal'] = signum
        tqdm.write('stopping: writing a resume point after the step in flight (Ctrl-C again to stop at once)')
    handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)} \
        if threading.current_thread() is threading.main_thread() else {}
    try:
        t0 = time.time()
        done = loop(sweep, cfg, start, stop_after, submit, stop, wandb)
    finally:
        for sig, h in handlers.items():
            signal.signal(sig, h)
        close()                                   # every file on disk before we return or raise
    if done == 'killed':
        return sweep.exp
    if done is not True:
        raise KeyboardInterrupt(f"stopped at iter {done}; resume point written to {sweep.resume_path}: "
                                "continue with --resume=True")
    timing = dict(sweep.timing, train_s=time.time() - t0, n_runs=len(sweep.runs), device=sweep.dev,
                  graphed=sweep.graphed, compiled=sweep.use_compile, threads=sweep.threads)
    timing['run_steps_per_s'] = (timing['n_runs'] * max(timing['n_steps'] - 1, 0) / timing['step_s']
                                 if timing['step_s'] else None)
    name = os.path.basename(sweep.resume_path).replace('resume', 'timing').replace('.pt', '.json')
    checkpoints.atomic_write(os.path.join(sweep.exp, name), json.dumps(timing, indent=1))
    print(f"done in {timing['train_s']:.1f}s -> {sweep.exp} (steps {timing['step_s']:.1f}s, evaluation "
          f"{timing['eval_s']:.1f}s, checkpoints {timing['ckpt_s']:.1f}s, first step {timing['first_step_s']:.1f}s)")
    return sweep.exp


def sync(dev):
    if dev.startswith('cuda'):
        torch.cuda.synchronize(dev)


def evaluate_and_log(sweep, it, wandb):
    """Evaluate every run on its eval sets, append the records to the logs, print one line. -> {(run, split): acc}"""
    runs = sweep.runs
    sweep.model.eval()
    last_acc, lines = evaluate_all(sweep.model, sweep.eval_sets, sweep.ctx, it, sweep.metas)
    sweep.model.train()
    for path, ls in zip(sweep.log_paths, lines):
        checkpoints.append_lines(path, ls)
    tqdm.write(f"iter {it}: " + ' | '.join(
        f"{s.split('_')[0]} " + ' '.join(f"{last_acc[(r, s)]:.2f}" for r in range(min(len(runs), 8)))
        + (' ...' if len(runs) > 8 else '') for s in SPLITS))
    if wandb:
        wandb.log({f'{s}/acc_run{r}': last_acc[(r, s)] for r in range(len(runs)) for s in SPLITS}, step=it)
    return last_acc


def log_losses(sweep, it, lr, bar, last_acc):
    """The losses of the steps since the last log (one host sync) -> the logs and the progress bar."""
    hist = torch.stack(sweep.pending_losses).cpu()
    sweep.pending_losses = []
    lines = loss_lines(hist, it + 1 - len(hist), lr, sweep.runs)
    for path, line in zip(sweep.log_paths, lines):
        checkpoints.append_lines(path, [line])
    show_progress(bar, hist, last_acc, len(sweep.runs))


def loop(sweep, cfg, start, stop_after, submit, stop, wandb):
    """The training loop. -> True when finished, 'killed' (stop_after, for tests), else the iteration it
    stopped at on a signal (with its resume point queued). At every checkpoint the whole state goes to the
    resume file before the checkpoints, so a kill at any moment leaves a resume point as new as the newest
    checkpoint of every run. sweep.timing: seconds in steps, evaluation, checkpoints, resume points, first step."""
    gpt, runs, dev = sweep.gpt, sweep.runs, sweep.dev
    timing = sweep.timing = dict(first_step_s=0.0, step_s=0.0, eval_s=0.0, ckpt_s=0.0, resume_s=0.0, n_steps=0)
    t = time.perf_counter()
    step = make_step(sweep, cfg)
    timing['capture_s'] = time.perf_counter() - t
    save_at = set(ckpt_iters(cfg['max_iters'], cfg['n_ckpts'], cfg['ckpt_first']))
    last_acc, last_resume, t_block = {}, time.time(), None
    written_at = start if cfg['resume'] else None   # the iteration of the resume file on disk (or queued)

    def end_block():                             # the queued steps end here, not in what follows
        nonlocal t_block
        if t_block is not None:
            sync(dev)
            timing['step_s'] += time.perf_counter() - t_block
            t_block = None

    def write_resume_point(it):
        nonlocal last_resume, written_at
        if written_at == it:
            return
        t = time.perf_counter()
        submit(resume_point(sweep, cfg, it))
        last_resume, written_at = time.time(), it
        timing['resume_s'] += time.perf_counter() - t
    bar = tqdm(range(start, cfg['max_iters'] + 1), initial=start, total=cfg['max_iters'] + 1, dynamic_ncols=True)
    for it in bar:
        if 'signal' in stop and it < cfg['max_iters']:   # the step in flight is done: stop here
            end_block()
            write_resume_point(it)
            return it
        # --- evaluate, checkpoint (the state *before* step `it`'s update: iter = steps taken)
        if it in save_at or it % cfg['eval_interval'] == 0 or it == cfg['max_iters']:
            end_block()
            t = time.perf_counter()
            last_acc = evaluate_and_log(sweep, it, wandb)
            timing['eval_s'] += time.perf_counter() - t
        if it in save_at:
            finite = torch.stack([p.detach().isfinite().flatten(1).all(1) for p in gpt.parameters()]).all(0)
            if not finite.all():
                diverged(runs[int((~finite).nonzero()[0])][0], it, 'its weights are not finite')
            if it < cfg['max_iters']:
                write_resume_point(it)
            t = time.perf_counter()
            submit(checkpoints.snapshot_ckpts(gpt, sweep.opt, it, sweep.run_dirs, dict(sweep.model_args, n_runs=1),
                                              sweep.metas))
            timing['ckpt_s'] += time.perf_counter() - t
        if it == cfg['max_iters']:
            break
        due = it % cfg['eval_interval'] == 0 and time.time() - last_resume >= cfg['resume_every']
        if due and it > start:                   # on a timer too: checkpoints thin out late in a run
            write_resume_point(it)
        if stop_after is not None and it - start >= stop_after:
            return 'killed'                      # as if killed: no timing, whatever the writer has queued
        if 'signal' in stop:                     # it came during the evaluation or checkpoint above
            write_resume_point(it)
            return it
        # --- one step of every run
        lr = get_lr(it, cfg) / cfg['learning_rate']   # the schedule, for a peak of 1
        sweep.lr_buf.fill_(lr if sweep.per_run else lr * cfg['learning_rate'])
        sweep.it_buf.fill_(it)
        if it == start:                          # the first step compiles: timed apart
            t = time.perf_counter()
            sweep.pending_losses.append(step())
            sync(dev)
            timing['first_step_s'] = time.perf_counter() - t
        else:
            t_block = t_block or time.perf_counter()
            sweep.pending_losses.append(step())
        timing['n_steps'] += 1
        if len(sweep.pending_losses) == cfg['log_interval'] or it + 1 == cfg['max_iters']:
            end_block()
            log_losses(sweep, it, lr, bar, last_acc)
    if os.path.exists(sweep.resume_path):
        submit(lambda: os.remove(sweep.resume_path))   # finished: nothing left to resume
    return True


if __name__ == '__main__':
    cli(lambda: train(configure(DEFAULTS, choices=CHOICES, sources=[data_gen.__file__, __file__])),
        interrupted='interrupted: continue from the last resume point with --resume=True')
