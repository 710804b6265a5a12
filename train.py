"""
Train one run, or a sweep of runs in lockstep, on synthetic bilingual knowledge data.

    python train.py config/celeb_08.py                  # one run (the dataset is built if missing)
    python train.py config/sweep_celeb.py               # every combination of `sweep` in one process
    python train.py config/sweep_celeb.py --shard=0/4   # a quarter of the sweep's runs, e.g. one GPU
    torchrun --nproc_per_node=4 train.py config/selection.py   # its 4 shards on the 4 GPUs of a node
    python train.py config/demo.py                      # the demo: 3 runs, no / some / much parallel data
    python train.py config/laptop/sweep_celeb.py        # the main sweep at laptop scale (docs/experiments.md)
    python train.py --help                              # the knobs a user sets, then the advanced ones

A sweep stacks its runs on a leading run axis E of every weight (model.py): on a GPU a step of 16 runs
costs 1.5-5x a step of one (H200, docs/speed.md). Each run has its own dataset, init, data order (a hash
of (seed, iter): what makes a resume bit-for-bit) and gradient clipping, and AdamW is elementwise, so run
r follows the path it follows trained alone; learning_rate and weight_decay may differ between runs
(train_step). Never loses work (checkpoints.py): the sweep's whole state goes to a resume file at every
checkpoint, every `resume_every` seconds and on Ctrl-C/SIGTERM; after a crash or kill -9, `--resume=True`
ends as an uninterrupted run would (on CPU bit for bit, at the same thread count). At every evaluation it
measures each run's cross-lingual unification live, as analyze.py would at that checkpoint, and
`--prune_at=0.1 --prune_keep=3` stops all but the 3 most unified runs at 10% of training (docs/training.md).

Writes out/<exp>/<run>/{config.json, log.jsonl, ckpt_<iter>.pt}, out/<exp>/resume[_<i>of<n>].pt while
training and out/<exp>/timing[_<i>of<n>].json at the end.
"""
# The interface: the names other files use (covered by tests/test_train.py, test_bench.py for the step);
# the rest is this file's own.
#   DEFAULTS, CHOICES           the knobs and the values they take
#   train(cfg)                  train every run of cfg in lockstep -> the experiment directory
#   expand_sweep(cfg)           the runs a config makes: [(run name, run config)]
#   stack_splits(exs, metas, device)   every run's examples as the padded tensors steps and evaluations read
#   evaluate(model, split, ctx) attribute recall of every run on a stacked split
#   shape_args, make_optimizer, make_step   the model's shape, the optimizer and the step of E runs, as
#                               train() builds them (bench.py times the step)
import contextlib
import json
import math
import os
import signal
import threading
import time
import types

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

import checkpoints
import data_gen
import metrics
import records
import represent
from configurator import cli, config_keys, configure, overrides, sweep_runs
from machine import autocast, capture_step, cpu_deterministic, cpu_reuse_memory, pick_device, select_shard, set_threads, system_settings
from model import BLOCKS, GPT, GPTConfig, param_groups

# -----------------------------------------------------------------------------
# where
out_dir = 'out/default'   # experiment directory; one subdirectory per run
resume = False            # continue an interrupted experiment from its resume file in out_dir
overwrite = False         # start over in an out_dir that holds a run of this experiment (deletes its checkpoints and logs)
# sweep
sweep = {}                # {knob: [values]}: every combination is a run; data knobs, seed, learning_rate, weight_decay
shard = ''                # 'i/n': the i-th of n interleaved shards of the runs; '' = all (under torchrun: its rank)
reuse_dir = ''            # a folder of experiments (e.g. out/laptop): a run of this sweep finished there with the same data,
                          # model, optimiser, steps and seed is linked in, not trained again ('' = off)
# live unification and pruning (docs/training.md)
live_unif = True          # unification of each run's parallel training examples at every evaluation (printed, logged)
live_unif_facts = 0       # parallel facts per run it measures; 0 = auto: analyze.py's sample (100 on cuda, 50 else)
prune_at = 0.0            # at this share of max_iters keep the prune_keep runs of highest live unification; 0 = off
prune_keep = 3            # runs with parallel data that prune_at keeps (the rest stop; a shard keeps its own)
prune_controls = False    # prune_at also keeps every run without parallel data (the controls)
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
weight_decay = 0.1        # AdamW decoupled weight decay on matrices and embeddings (sweepable)
# system
device = 'auto'           # 'auto' = cuda (cuda:LOCAL_RANK under torchrun), then mps, then cpu
# advanced
# evaluation, checkpoints, logs
eval_interval = 500       # evaluate every this many steps (and at every checkpoint and the end)
eval_max = 2000           # examples per split and run per evaluation (0 = the whole split)
log_interval = 50         # steps between loss records (and NaN checks)
n_ckpts = 20              # weight snapshots per run, log-spaced from ckpt_first to max_iters (the last included), plus init
ckpt_first = 50           # step of the first log-spaced snapshot: separation happens in the first few hundred steps
n_ckpts_linear = 0        # more snapshots, every max_iters / n_ckpts_linear steps: late checkpoints to pick among
resume_every = 300.0      # seconds between resume points (0 = every evaluation); also at checkpoints, on Ctrl-C/SIGTERM
wandb_log = False         # log to Weights & Biases (imported only when on)
wandb_project = 'rosetta' # its project name
# optimisation
min_lr_frac = 0.1         # cosine decays to learning_rate * min_lr_frac at max_iters
warmup_iters = 200        # linear warmup steps
beta1 = 0.9               # AdamW first-moment decay
beta2 = 0.95              # AdamW second-moment decay
grad_clip = 1.0           # per-run gradient norm clip (0 = off)
# system
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
EVAL_SHOWN = 8            # runs whose accuracies the evaluation line shows
EVAL_CHUNK = 1024         # examples per evaluation forward pass (every split is padded to a multiple: static shapes)
FREE_ON_RESUME = {'resume', 'device', 'compile', 'cuda_graph', 'wandb_log', 'wandb_project', 'resume_every', 'live_unif',
                  'overwrite', 'threads', 'reuse_memory', 'reuse_dir'}           # may change on resume
NOT_THE_RUN = FREE_ON_RESUME | {'out_dir', 'sweep', 'shard', 'live_unif_facts', 'prune_at', 'prune_keep', 'prune_controls',
                                 'run_id'}
# ^ knobs that do not change what a run learns, step for step: left out of its identity (checkpoints.run_id)


def check_cfg(cfg):
    """A one-line ValueError naming the knob for every setting that cannot train."""
    rules = [(cfg[k] >= 1, f"{k}={cfg[k]} must be >= 1") for k in
             ('max_iters', 'eval_interval', 'log_interval', 'batch_size', 'n_ckpts', 'ckpt_first', 'prune_keep')]
    rules += [(cfg[k] >= 0, f"{k}={cfg[k]} must be >= 0") for k in
              ('warmup_iters', 'eval_max', 'weight_decay', 'grad_clip', 'resume_every', 'threads', 'n_ckpts_linear',
               'live_unif_facts')]
    rules += [(cfg['learning_rate'] > 0, f"learning_rate={cfg['learning_rate']} must be > 0"),
              (0 <= cfg['min_lr_frac'] <= 1, f"min_lr_frac={cfg['min_lr_frac']} must be in [0, 1]"),
              (0 <= cfg['beta1'] < 1 and 0 <= cfg['beta2'] < 1, "beta1 and beta2 must be in [0, 1)"),
              (not (cfg['resume'] and cfg['overwrite']), "resume=True and overwrite=True contradict each other"),
              (0 <= cfg['prune_at'] < 1, f"prune_at={cfg['prune_at']} must be in [0, 1) (a share of max_iters; 0 = off)"),
              (cfg['live_unif'] or not cfg['prune_at'], "prune_at needs live_unif=True (it ranks runs by it)")]
    for ok, msg in rules:
        if not ok:
            raise ValueError(f"config error: {msg}")


def expand_sweep(cfg):
    """Every combination of cfg['sweep'] -> [(run name, run config)], each checked. Runs in lockstep share
    everything but their data knobs, seed, learning_rate and weight_decay."""
    runs = sweep_runs(cfg, DEFAULTS, CHOICES, [*data_gen.DATA_DEFAULTS, 'seed', *PER_RUN_OPT], "runs in lockstep "
                      f"share everything but their data knobs, seed, {' and '.join(PER_RUN_OPT)}")
    if cfg['dataset'] and any(k in data_gen.DATA_DEFAULTS for k in cfg['sweep']):
        raise ValueError("config error: dataset must be '' in a sweep over data knobs "
                         "(each run's dataset is named after its knobs)")
    for _, rc in runs:
        check_cfg(rc)                                  # a swept learning_rate or weight_decay is checked too
    return runs


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

def stack_splits(per_run, metas, device, multiple=1):
    """Each run's examples, encoded with its own meta and padded to the longest run's count (padding
    rows have length 0), stacked: tokens (E, N, T), prompt_len, length, group, template (E, N), and
    n (E,), the real sizes. N is rounded up to a multiple of `multiple` when larger, so evaluating in
    chunks of that size sees one shape (no recompilation)."""
    T = metas[0]['block_size']
    enc = [records.encode_examples(exs, meta, T) for exs, meta in zip(per_run, metas)]
    n = torch.tensor([len(e['tokens']) for e in enc])
    N = int(n.max()) if n.max() <= multiple else -(-int(n.max()) // multiple) * multiple
    out = {}
    for k in ('tokens', 'prompt_len', 'length', 'group', 'template'):
        parts = [torch.from_numpy(e[k]) for e in enc]
        out[k] = torch.stack([F.pad(x, (0, 0) * (x.dim() - 1) + (0, N - x.shape[0])) for x in parts]).to(device)
    out['n'] = n.to(device)
    return out


def load_runs_data(runs, cfg, dev):
    """Build (if missing) and load every run's dataset; check that the runs can share shapes.
    -> metas, the whole train splits stacked (batches are drawn from them), and per split the evaluation
    samples stacked, with numpy copies of what the records need ('host'), and per run the parallel examples
    whose unification is measured live (analyze.py's sample: records.parallel_sample; [] when off)."""
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
    train_full, evals, live = [], {s: [] for s in SPLITS}, []
    facts = cfg['live_unif_facts'] or records.PARALLEL_FACTS[not dev.startswith('cuda')]
    for (_, rc), m in zip(runs, metas):
        for i, s in enumerate(SPLITS):
            exs = data_gen.load_split(rc['dataset_path'], s, m)
            if not exs:
                raise ValueError(f"data error: split '{s}' of {rc['dataset_path']} is empty")
            if s == 'train':
                train_full.append(exs)
                live.append(records.live_sample(exs, facts) if cfg['live_unif'] else [])
            if cfg['eval_max'] and len(exs) > cfg['eval_max']:
                rng = np.random.default_rng([rc['seed'], i])   # the run's own sample, whatever else runs
                exs = [exs[j] for j in sorted(rng.choice(len(exs), cfg['eval_max'], replace=False))]
            evals[s].append(exs)
    eval_sets = {s: stack_splits(evals[s], metas, dev, EVAL_CHUNK) for s in SPLITS}
    for d in eval_sets.values():                       # what the records need, read once
        d['host'] = {k: d[k].cpu().numpy() for k in ('group', 'template', 'n')}
    return metas, stack_splits(train_full, metas, dev), eval_sets, live


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


def score_chunk(model, tok, prompt_len, length, ctx):
    """Attribute recall of a chunk of examples: per example, is every attribute token the greedy
    prediction given the prompt (teacher forcing on earlier attribute tokens is equivalent to greedy
    decoding), and the probability of the whole attribute. log p(target) = its logit - logsumexp over
    the vocabulary: no log-softmax over every position is written. tok (E, C, T) -> correct, prob (E, C)."""
    with ctx:
        logits = model(tok[:, :, :-1]).float()                                   # (E, C, T-1, V)
    tgt = tok[:, :, 1:]
    pos = torch.arange(1, tok.shape[-1], device=tok.device)
    attr = records.attribute_targets(pos, prompt_len[..., None], length[..., None])   # (E, C, T-1)
    lp = logits.gather(-1, tgt[..., None]).squeeze(-1) - torch.logsumexp(logits, -1)
    return ((logits.argmax(-1) == tgt) | ~attr).all(-1), (lp * attr).sum(-1).exp()


@torch.no_grad()
def evaluate(model, split, ctx, chunk=EVAL_CHUNK, score=score_chunk):
    """Attribute recall of every run on one split (score_chunk, or its compiled twin), in chunks of one
    shape (the split is padded to a multiple of `chunk`). -> correct (E, N), prob (E, N)."""
    N = split['tokens'].shape[1]
    chunk = min(chunk, N)
    out = [score(model, *(split[k][:, s:s + chunk] for k in ('tokens', 'prompt_len', 'length')), ctx)
           for s in range(0, N, chunk)]
    return torch.cat([c for c, _ in out], 1), torch.cat([p for _, p in out], 1)


def evaluate_all(model, eval_sets, ctx, it, metas, unif=None, score=score_chunk):
    """Evaluate every split of every run; unif: per run the live unification fields of its train/all/all
    record (represent.live_unification). -> ({(run, split): accuracy}, per run the log lines)."""
    acc, lines = {}, [[] for _ in metas]
    for s in SPLITS:
        correct, prob = (x.cpu().numpy() for x in evaluate(model, eval_sets[s], ctx, score=score))  # one host sync per split
        g, t, n = (eval_sets[s]['host'][k] for k in ('group', 'template', 'n'))
        for r, meta in enumerate(metas):
            recs = records.eval_records(it, s, correct[r, :n[r]], prob[r, :n[r]], g[r, :n[r]], t[r, :n[r]], meta)
            if s == 'train' and unif:
                recs[0].update(unif[r])                # recs[0]: fact type and language 'all'
            lines[r] += [json.dumps(x) + '\n' for x in recs]
            acc[(r, s)] = recs[0]['acc']
    return acc, lines


# -----------------------------------------------------------------------------
# the step

def shape_args(cfg, meta):
    """GPTConfig arguments of a run: the model knobs and the dataset's vocabulary and sequence length."""
    return dict({k: cfg[k] for k in MODEL_KEYS}, vocab_size=len(meta['vocab']), block_size=meta['block_size'])


def make_optimizer(raw, runs, cfg, dev, capturable, mixed=None):
    """AdamW over all runs. -> (opt, lr tensor set in place every step, per-run hyperparameters or
    None). When the runs' learning rates or weight decays differ, AdamW steps with the schedule
    alone (peak 1, no decay) and train_step rescales each run's update (see there). The fused
    kernel on CUDA and on a CPU (one pass over each weight; a CPU step measured 3-6% faster). mixed: per-run
    hyperparameters or not, decided for the whole sweep (a pruned group keeps its optimizer state's form)."""
    lrs = [rc['learning_rate'] for _, rc in runs]
    wds = [rc['weight_decay'] for _, rc in runs]
    per_run = None
    if mixed or mixed is None and (len(set(lrs)) > 1 or len(set(wds)) > 1):
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


def train_step(model, opt, data, run_seeds, it, batch_size, grad_clip, ctx, per_run=None, lr=None,
               loss_fn=train_loss, batch_fn=gather_batch):
    """One optimisation step of every run -> per-run losses (E,). `it` and `lr` may be device
    tensors (under a CUDA graph): nothing here reads a value back to the host. loss_fn and batch_fn
    stand in for train_loss (or its compiled twin: the model and its loss as one graph) and gather_batch
    (bench.py's speed candidates)."""
    tokens, length = batch_fn(data, batch_indices(run_seeds, it, batch_size, data['n']))
    loss, per_run_loss = loss_fn(model, tokens, length, ctx)
    loss.backward()
    if grad_clip > 0:
        clip_per_run(model.parameters(), grad_clip)
    if per_run is None:
        opt.step()
    else:
        # AdamW took p_prev - s * u with s = the schedule (lr tensor, peak 1) and no decay; run e
        # wants p_prev * (1 - s lr_e wd_e) - s lr_e u, as AdamW with its own lr and decay would do
        params = list(model.parameters())
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


def make_step(model, opt, runs, cfg, data, ctx, per_run, lr, graphed, **swap):
    """The training step of every run as a function of no arguments (a CUDA graph where on: one
    launch), and the step counter tensor it reads, set in place before each step. -> (step, it)"""
    run_seeds = torch.tensor([rc['seed'] for _, rc in runs], device=data['n'].device)
    it = torch.zeros((), dtype=torch.long, device=data['n'].device)

    def step():
        return train_step(model, opt, data, run_seeds, it, cfg['batch_size'], cfg['grad_clip'], ctx, per_run,
                          lr, **swap)
    return (capture_step(step, model, opt) if graphed else step), it


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


def eval_line(it, acc, E, unif=None):
    """One line per evaluation: each split's accuracy of every run, in the order printed at the start, and
    their live unification ('-': none, see the start)."""
    cols = [(s.split('_')[0], [f"{acc[(r, s)]:.2f}" for r in range(E)]) for s in SPLITS]
    scores = [records.live_score(u) for u in unif or []]
    cols += [('unif', ['-' if u is None else f"{u:.2f}" for u in scores])] if unif else []
    return f"iter {it}: " + ' | '.join(f"{name} " + ' '.join(v[:EVAL_SHOWN]) + (' ...' if E > EVAL_SHOWN else '')
                                       for name, v in cols)


def evaluation(cfg, g, job, it, timing):
    """One evaluation of every run of group g: accuracies and live unification, logged, printed.
    -> (accuracies, unif)"""
    t, E, unif = time.perf_counter(), len(g.runs), None
    g.gpt.eval()
    if cfg['live_unif']:                               # the uncompiled model: its hidden states, no recompile
        with job.ctx:
            unif = represent.live_unification(g.gpt, g.live, [m['fact_types'] for m in g.metas])
    acc, lines = evaluate_all(g.gpt, g.eval_sets, job.ctx, it, g.metas, unif, score=g.score)
    g.gpt.train()
    for path, ls in zip(g.logs, lines):
        checkpoints.append_lines(path, ls)
    tqdm.write(eval_line(it, acc, E, unif))
    if job.wandb:
        job.wandb.log({f'{s}/acc_run{r}': acc[(r, s)] for r in range(E) for s in SPLITS}
                  | {f'unif/run{r}': u for r, u in enumerate(map(records.live_score, unif or [])) if u is not None}, step=it)
    timing['eval_s'] += time.perf_counter() - t
    return acc, unif


def prune(cfg, g, job, unif, it, snapshot):
    """prune_at: mark the runs records.prune_choice stops in their logs, queue `snapshot` (their last checkpoint,
    where they stopped; False when one is queued already). -> the kept runs' indices, None when all go on."""
    keep, stops = records.prune_choice(unif, g.names, cfg, it)
    if not stops:
        return None
    for r, rec in stops.items():
        checkpoints.append_lines(g.logs[r], [json.dumps(rec) + '\n'])
    if snapshot:
        job.submit(snapshot)
    tqdm.write(f"iter {it}: pruned to {len(keep)} of {len(g.runs)} runs by live unification: "
               f"{' '.join(g.names[r] for r in keep)} (the others' log.jsonl say so)")
    return keep


def pruned_state(gpt, opt, keep, it, pending):
    """What a prune at `it` leaves the kept runs (indices keep), as a resume file holds it: weights, optimizer
    state (every tensor but the step counts has a run axis) and the losses not yet logged, cut to them."""
    idx = torch.tensor(keep, device=next(gpt.parameters()).device)
    o = opt.state_dict()
    o['state'] = {p: {k: v[idx] if v.dim() else v for k, v in st.items()} for p, st in o['state'].items()}
    return dict(model={k: v[idx] for k, v in gpt.state_dict().items()}, optimizer=o, iter=it,
                losses=torch.stack(pending)[:, idx] if pending else torch.zeros(0, len(keep), device=idx.device))


# -----------------------------------------------------------------------------
# the loop

def sync(dev):
    if dev.startswith('cuda'):
        torch.cuda.synchronize(dev)


def end_block(t_block, dev, timing):
    """The steps queued since t_block end here, not in what follows: their time -> timing. -> None"""
    if t_block is not None:
        sync(dev)
        timing['step_s'] += time.perf_counter() - t_block


def resume_point(cfg, g, job, pending, it, timing):
    """Queue the whole state before step `it` (weights, optimizer, the losses not yet logged, the names of
    the runs: prune_at may have stopped some), copied to the host now, for the resume file (written
    atomically: it always holds one whole state). -> it"""
    t = time.perf_counter()
    losses = torch.stack(pending) if pending else torch.zeros(0, len(g.runs))
    state = checkpoints.host_copy(dict(model=g.gpt.state_dict(), optimizer=g.opt.state_dict(), iter=it, cfg=cfg,
                                       losses=losses, threads=job.threads, runs=g.names))
    submit, path = job.submit, job.resume_path
    submit(lambda: checkpoints.atomic_save(state, path))
    timing['resume_s'] += time.perf_counter() - t
    return it


def start_files(cfg, g, job, state):
    """Resume group g from `state` (weights, optimizer, the losses not yet logged, logs cut back to its iteration:
    a resume file's, or the group a prune left) or start fresh; write every run's config.json. -> (first
    iteration, pending per-step losses (E,) not yet logged)"""
    start, pending = 0, []
    if state is not None:
        g.gpt.load_state_dict(state['model'])
        g.opt.load_state_dict(state['optimizer'])
        for group in g.opt.param_groups:
            group['lr'] = g.lr_buf                     # loading replaced it with a copy
        start = state['iter']
        pending = list(state['losses']) if 'losses' in state else []
        for path in g.logs:
            checkpoints.truncate_log(path, start)
    else:
        checkpoints.check_fresh(g.dirs, job.resume_path, cfg['out_dir'], cfg['overwrite'])
    for d, (name, rc) in zip(g.dirs, g.runs):
        try:
            os.makedirs(d, exist_ok=True)
        except OSError as e:
            raise checkpoints.write_error(d, e) from None
        checkpoints.atomic_write(os.path.join(d, 'config.json'), json.dumps(run_config(rc, name, g.model_args),
                                                                          indent=1, default=str))
    return start, pending


def run_config(rc, name, model_args):
    """A run's config.json: its knobs, name, model shape and identity (checkpoints.run_id, hashed from its
    dataset's files once per run and kept in rc: a prune or reuse writes config.json again)."""
    if 'run_id' not in rc:
        rc['run_id'] = checkpoints.run_id(rc, data_gen.DATA_DEFAULTS, NOT_THE_RUN)
    return dict(rc, run=name, model_args=dict(model_args, n_runs=1))


def reuse_finished(runs, cfg, resume_path):
    """reuse_dir: each run that an experiment under it finished with the same identity is linked into
    out_dir (checkpoints.link_run) instead of trained again; one finished here already counts too. With
    none left to train, the job's timing file says so. -> the runs left to train"""
    left, done = [], checkpoints.finished_runs(cfg['reuse_dir'])
    for name, rc in runs:
        rc['dataset_path'] = data_gen.prepare(rc)
        config = run_config(rc, name, shape_args(rc, data_gen.load_meta(rc['dataset_path'])))
        dst = os.path.join(cfg['out_dir'], name)
        if checkpoints.finished(dst, rc['max_iters'], config['run_id']):
            continue                                   # done here already (linked or trained)
        src = done.get(config['run_id'])
        if src is None or os.path.exists(os.path.join(dst, 'config.json')):
            left.append((name, rc))                    # nothing to reuse, or this run's own files are here
        else:
            checkpoints.link_run(src, dst, config)
            print(f"reused {name}: trained before in {src}")
    if not left:
        write_timing(resume_path, dict(n_runs=0, reused=len(runs), train_s=0.0))
        print(f"all {len(runs)} runs trained before (reuse_dir {cfg['reuse_dir']}) -> {cfg['out_dir']}")
    return left


def train(cfg, stop_after=None):
    """Train every run of cfg in lockstep -> the experiment directory. stop_after: stop after this many
    steps as if killed (no timing, whatever the writer has queued), for the tests of resume."""
    # --- the runs, the machine, and one writer per run (and resume file) before anything is read or deleted
    check_cfg(cfg)
    runs, shard = select_shard(expand_sweep(cfg), cfg['shard'])
    for _, rc in runs:                                 # bad data knobs: an error before anything is written
        data_gen.check(data_gen.data_cfg(rc))
    dev = pick_device(cfg['device'])
    dtype, use_compile, graphed = system_settings(cfg, dev)
    cpu_deterministic(dev, use_compile)           # a compiled CPU step: the same bits run to run
    exp = cfg['out_dir']
    resume_path = os.path.join(exp, checkpoints.resume_file(shard))
    with contextlib.ExitStack() as locked:
        locked.callback(checkpoints.lock(exp, [name for name, _ in runs] + [os.path.basename(resume_path)]))
        if cfg['reuse_dir'] and not (runs := reuse_finished(runs, cfg, resume_path)):
            return exp                                 # every run trained before: nothing to do here
        run_dirs = [os.path.join(exp, name) for name, _ in runs]
        saved = checkpoints.saved_threads(resume_path) if cfg['resume'] and not cfg['threads'] else None
        threads = set_threads(cfg['threads'], dev, saved)
        if dev == 'cpu' and cfg['reuse_memory']:
            cpu_reuse_memory()                         # freed activations stay in the process: faster steps
        state = checkpoints.load_resume(resume_path, cfg, run_dirs, dev, FREE_ON_RESUME) if cfg['resume'] else None
        group = [x for x in runs if x[0] in state['runs']] if state and 'runs' in state else runs   # pruned before
        mixed = len({(rc['learning_rate'], rc['weight_decay']) for _, rc in runs}) > 1
        # the job: what stays the same for every group of runs (submit and stop: set for each group's pass)
        job = types.SimpleNamespace(dev=dev, dtype=dtype, compiled=use_compile, graphed=graphed, threads=threads,
                                    ctx=autocast(dev, dtype, graphed), resume_path=resume_path,
                                    wandb=start_wandb(cfg) if cfg['wandb_log'] else None)
        totals, run_steps, t0 = {}, [0, 0], time.time()
        while True:                                    # one pass per group of runs: prune_at shrinks it once
            g = start_group(cfg, group, job, mixed, state)
            E = len(group)
            if not totals:
                print_start(cfg, g, job)
            with contextlib.ExitStack() as running:
                job.submit, close = checkpoints.background_writer()
                running.callback(close)                # every file on disk before we return or raise
                job.stop = stop = {}

                def on_signal(signum, frame):          # first: finish the step in flight, write a resume point; second: now
                    if 'signal' in stop:
                        raise KeyboardInterrupt
                    stop['signal'] = signum
                    tqdm.write('stopping: writing a resume point after the step in flight (Ctrl-C again to stop at once)')
                if threading.current_thread() is threading.main_thread():
                    for sig in (signal.SIGINT, signal.SIGTERM):
                        running.callback(signal.signal, sig, signal.signal(sig, on_signal))
                stopped_at, timing = loop(cfg, g, job, stop_after)
            totals = {k: totals.get(k, 0) + v for k, v in timing.items()}
            run_steps = [run_steps[0] + E * timing['n_steps'], run_steps[1] + E * max(timing['n_steps'] - 1, 0)]
            if stopped_at != 'pruned':
                break
            it, keep, pending = stop['prune']          # the kept runs go on from `it`, as a resume of fewer runs
            state, group = pruned_state(g.gpt, g.opt, keep, it, pending), [group[r] for r in keep]
            torch._dynamo.reset()                      # the smaller group compiles afresh (static shapes)
            stop_after = None if stop_after is None else stop_after - (it - g.start)
        if stopped_at == 'killed':
            return exp
        if stopped_at is not None:
            raise KeyboardInterrupt(f"stopped at iter {stopped_at}; resume point written to {resume_path}: "
                                    "continue with --resume=True")
        timing = dict(totals, train_s=time.time() - t0, n_runs=len(runs), n_runs_end=E, device=dev, graphed=graphed,
                      compiled=use_compile, threads=threads, run_steps=run_steps[0],
                      run_steps_unpruned=len(runs) * totals['n_steps'])
        timing['run_steps_per_s'] = run_steps[1] / timing['step_s'] if timing['step_s'] else None
        write_timing(resume_path, timing)
        print(f"done in {timing['train_s']:.1f}s -> {exp} (steps {timing['step_s']:.1f}s, evaluation "
              f"{timing['eval_s']:.1f}s, checkpoints {timing['ckpt_s']:.1f}s, first step {timing['first_step_s']:.1f}s)"
              + (f"; pruned to {E} of {len(runs)} runs: {run_steps[0]} run-steps, "
                 f"{1 - run_steps[0] / timing['run_steps_unpruned']:.0%} fewer" if E < len(runs) else ''))
        return exp


def start_group(cfg, runs, job, mixed, state):
    """One lockstep group of runs, ready to step from `state` (None: from scratch): its data, model,
    optimizer and files. -> a namespace of what loop() and its helpers read (the group's state)"""
    exp = cfg['out_dir']
    g = types.SimpleNamespace(runs=runs, names=[name for name, _ in runs], dirs=[os.path.join(exp, n) for n, _ in runs])
    g.logs = [os.path.join(d, 'log.jsonl') for d in g.dirs]
    g.metas, g.train_set, g.eval_sets, g.live = load_runs_data(runs, cfg, job.dev)
    g.model_args = shape_args(cfg, g.metas[0])
    g.gpt = GPT(GPTConfig(**g.model_args, n_runs=len(runs)), seeds=[rc['seed'] for _, rc in runs]).to(job.dev)
    # compiled where on: the model with its loss, and the model with its evaluation scores, each one graph
    g.loss, g.score = (torch.compile(f) if job.compiled else f for f in (train_loss, score_chunk))
    g.opt, g.lr_buf, g.per_run = make_optimizer(g.gpt, runs, cfg, job.dev, job.graphed, mixed)
    g.start, g.pending = start_files(cfg, g, job, state)
    return g


def start_wandb(cfg):
    import wandb                                       # imported only when on
    wandb.init(project=cfg['wandb_project'], name=os.path.basename(cfg['out_dir']), config=cfg)
    return wandb


def write_timing(resume_path, timing):
    """The job's timing[_<i>of<n>].json beside its resume file."""
    name = os.path.basename(resume_path).replace('resume', 'timing').replace('.pt', '.json')
    checkpoints.atomic_write(os.path.join(os.path.dirname(resume_path), name), json.dumps(timing, indent=1))


def print_start(cfg, g, job):
    """What a training job says when it starts: the machine, the model, the runs, the runs without parallel data."""
    E, runs, live, threads = len(g.runs), g.runs, g.live, job.threads
    system = ', '.join([job.dtype] + ['compiled'] * job.compiled + ['CUDA graph'] * job.graphed
                       + [f"{threads} thread{'s' * (threads > 1)}"] * (threads > 0))
    print(f"{E} run(s) on {job.dev} ({system}): {sum(p[0].numel() for p in g.gpt.parameters()) / 1e6:.2f}M params "
          f"per run, vocab {g.model_args['vocab_size']}, {cfg['batch_size']} x {g.model_args['block_size']} tokens "
          "per step and run")
    print('config:', overrides(cfg, DEFAULTS))
    if E > 1:                                          # the evaluation lines list the runs in this order
        print('runs:', ' '.join(f"{r}={name}" for r, (name, _) in enumerate(runs[:EVAL_SHOWN]))
              + (f" (+{E - EVAL_SHOWN} more, not shown)" if E > EVAL_SHOWN else ''))
    if cfg['live_unif']:
        none = ' '.join(name for (name, _), x in zip(runs, live) if not x)
        print(f"live unification ('unif'; {metrics.HEADLINE}, activations, all layers) of up to {max(map(len, live))} "
              f"parallel training examples per run" + (f"; no parallel data, none to measure: {none}" if none else ''))
    if g.start:
        print(f"resuming at iter {g.start} from {job.resume_path}")


def loop(cfg, g, job, stop_after):
    """train()'s loop over group g (start_group) from step g.start. At every checkpoint the whole state goes
    to the resume file before the checkpoints, so a kill at any moment leaves a resume point as new as the
    newest checkpoint of every run. At prune_at the runs prune() stops leave, and
    job.stop['prune'] = (iter, kept runs, pending losses) tells train(). -> (None when finished, 'killed'
    after stop_after steps, 'pruned', or the iteration it stopped at on a signal, its resume point queued;
    seconds in steps, evaluation, checkpoints, resume points, the first step (it compiles) and the step's capture)"""
    E, gpt, dev, stop, submit, start, pending = len(g.runs), g.gpt, job.dev, job.stop, job.submit, g.start, g.pending
    prune_it = max(1, round(cfg['prune_at'] * cfg['max_iters'])) if cfg['prune_at'] else None
    timing = dict(first_step_s=0.0, step_s=0.0, eval_s=0.0, ckpt_s=0.0, resume_s=0.0, n_steps=0)
    t = time.perf_counter()
    step, it_buf = make_step(gpt, g.opt, g.runs, cfg, g.train_set, job.ctx, g.per_run, g.lr_buf, job.graphed,
                             loss_fn=g.loss)
    timing['capture_s'] = time.perf_counter() - t
    save_at = set(checkpoints.ckpt_iters(cfg['max_iters'], cfg['n_ckpts'], cfg['ckpt_first'], cfg['n_ckpts_linear']))
    last_acc, last_resume, t_block, stopped_at = {}, time.time(), None, None
    written_at = start if cfg['resume'] else None       # the iteration of the resume file on disk (or queued)
    bar = tqdm(range(start, cfg['max_iters'] + 1), initial=start, total=cfg['max_iters'] + 1, dynamic_ncols=True)
    for it in bar:
        if 'signal' in stop and it < cfg['max_iters']:   # the step in flight is done: stop here
            t_block = end_block(t_block, dev, timing)
            stopped_at = it
            break
        # --- evaluate, checkpoint (the state *before* step `it`'s update: iter = steps taken)
        if it in save_at or it % cfg['eval_interval'] == 0 or it in (cfg['max_iters'], prune_it):
            t_block = end_block(t_block, dev, timing)
            last_acc, unif = evaluation(cfg, g, job, it, timing)
        if it in save_at:
            finite = torch.stack([p.detach().isfinite().flatten(1).all(1) for p in gpt.parameters()]).all(0)
            if not finite.all():
                diverged(g.names[int((~finite).nonzero()[0])], it, 'its weights are not finite')
            if it < cfg['max_iters'] and written_at != it:   # the resume point first: never older than a checkpoint
                written_at = resume_point(cfg, g, job, pending, it, timing)
                last_resume = time.time()
            t = time.perf_counter()
            submit(checkpoints.snapshot_ckpts(gpt, g.opt, it, g.dirs, dict(g.model_args, n_runs=1), g.metas))
            timing['ckpt_s'] += time.perf_counter() - t
        keep = prune(cfg, g, job, unif, it, it not in save_at and
                     checkpoints.snapshot_ckpts(gpt, g.opt, it, g.dirs, dict(g.model_args, n_runs=1), g.metas)) \
            if it == prune_it and it < cfg['max_iters'] else None
        if keep:                                         # some runs stop here (after a prune none do: it keeps all)
            bar.close()
            stop['prune'] = (it, keep, pending)
            return 'pruned', timing
        if it == cfg['max_iters']:
            break
        due = it % cfg['eval_interval'] == 0 and time.time() - last_resume >= cfg['resume_every']
        if due and it > start and written_at != it:     # on a timer too: checkpoints thin out late in a run
            written_at = resume_point(cfg, g, job, pending, it, timing)
            last_resume = time.time()
        if stop_after is not None and it - start >= stop_after:
            return 'killed', timing                      # as if killed: no timing, whatever the writer has queued
        if 'signal' in stop:                             # it came during the evaluation or checkpoint above
            stopped_at = it
            break
        # --- one step of every run
        lr = get_lr(it, cfg) / cfg['learning_rate']     # the schedule, for a peak of 1
        g.lr_buf.fill_(lr if g.per_run else lr * cfg['learning_rate'])
        it_buf.fill_(it)
        if it == start:                                  # the first step compiles: timed apart
            t = time.perf_counter()
            pending.append(step())
            sync(dev)
            timing['first_step_s'] = time.perf_counter() - t
        else:
            t_block = t_block or time.perf_counter()
            pending.append(step())
        timing['n_steps'] += 1
        if len(pending) == cfg['log_interval'] or it + 1 == cfg['max_iters']:
            t_block = end_block(t_block, dev, timing)
            hist = torch.stack(pending).cpu()            # one host sync per log record
            pending = []
            for path, line in zip(g.logs, loss_lines(hist, it + 1 - len(hist), lr, g.runs)):
                checkpoints.append_lines(path, [line])
            show_progress(bar, hist, last_acc, E)
    if stopped_at is not None and written_at != stopped_at:
        resume_point(cfg, g, job, pending, stopped_at, timing)
    elif stopped_at is None and os.path.exists(job.resume_path):
        submit(lambda: os.remove(job.resume_path))           # finished: nothing left to resume
    return stopped_at, timing


if __name__ == '__main__':
    cli(lambda: train(configure(DEFAULTS, choices=CHOICES, sources=[data_gen.__file__, __file__])),
        interrupted='interrupted: continue from the last resume point with --resume=True')
