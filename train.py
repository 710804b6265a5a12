"""
Train one run, or a sweep of runs in lockstep, on synthetic bilingual knowledge data.

    python train.py config/celeb_08.py                  # one run (the dataset is built if missing)
    python train.py config/sweep_celeb.py               # every combination of `sweep` in one process
    python train.py config/sweep_celeb.py --shard=0/4   # a quarter of the sweep's runs, e.g. one GPU
    python train.py config/quick.py --device=cpu        # the laptop run

A sweep stacks its runs on a leading run axis E of every weight (model.py), so E runs cost
about as much as one on a GPU. Each run reads its own dataset, has its own init and its own
data order, and gets its own gradient clipping, so run r of a sweep follows exactly the path it
would follow trained alone (same seed): AdamW is elementwise and the loss is a sum of per-run
means, so the runs never touch. Batches are drawn by a counter-based hash of (seed, iter),
which is what makes an interrupted sweep resume bit-for-bit.

Writes out/<exp>/<run>/{config.json, log.jsonl, ckpt_<iter>.pt} and out/<exp>/resume.pt.
"""
import itertools
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

import data_gen
from configurator import coerce, config_keys, configure, overrides
from model import GPT, GPTConfig, param_groups, pick_device, run_state_dict

# -----------------------------------------------------------------------------
# I/O
out_dir = 'out/default'   # experiment directory; one subdirectory per run
eval_interval = 500       # evaluate every this many steps (and at every checkpoint and the end)
eval_max = 2000           # examples per split and run per evaluation (0 = the whole split)
log_interval = 50         # steps between loss records (and NaN checks)
n_ckpts = 20              # log-spaced weight snapshots per run, plus the final one
resume = False            # continue an interrupted experiment from out_dir/resume.pt
wandb_log = False         # log to Weights & Biases (imported only when on)
wandb_project = 'rosetta'
# sweep
sweep = {}                # {knob: [values, ...]}: every combination is a run, trained in lockstep
shard = ''                # 'i/n': train only the i-th of n interleaved shards of the sweep's runs
# model
block = 'pythia'          # 'pythia' (GPT-NeoX) or 'gemma2'
n_layer = 6               # Pythia-14m shape by default
n_head = 4
n_embd = 128
# optimisation (calibrated on the default word dataset, see README)
seed = 0                  # init and data-order seed of a run (sweepable)
max_iters = 12000
batch_size = 256          # sequences per step and run
learning_rate = 3e-3      # peak lr after warmup
min_lr_frac = 0.1         # cosine decays to learning_rate * min_lr_frac at max_iters
warmup_iters = 200
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0           # per-run gradient norm clip (0 = off)
# system
device = 'auto'           # 'auto' = cuda, then mps, then cpu
dtype = 'auto'            # 'auto' = bfloat16 autocast on cuda, float32 elsewhere
compile = None            # torch.compile; None = on for cuda only
cuda_graph = False        # capture the whole training step (fwd, bwd, clip, AdamW) as one CUDA graph
# -----------------------------------------------------------------------------
DEFAULTS = {**data_gen.DATA_DEFAULTS, **config_keys(globals())}
MODEL_KEYS = ('block', 'n_layer', 'n_head', 'n_embd')
SPLITS = ('train', 'id_test', 'ood_test')
FREE_ON_RESUME = {'resume', 'device', 'compile', 'cuda_graph', 'wandb_log', 'wandb_project'}  # may change on resume


def expand_sweep(cfg):
    """Every combination of cfg['sweep'] -> list of (run_name, run_cfg)."""
    sw = cfg['sweep']
    if not sw:
        return [('main', dict(cfg))]
    for k, values in sw.items():
        if k not in DEFAULTS:
            raise SystemExit(f"config error: sweep over unknown key '{k}'")
        if k not in data_gen.DATA_DEFAULTS and k != 'seed':
            raise SystemExit(f"config error: sweep over '{k}': runs in lockstep share everything "
                             "but their data knobs and seed")
        if not isinstance(values, (list, tuple)) or not values:
            raise SystemExit(f"config error: sweep['{k}'] must be a non-empty list")
    if cfg['dataset'] and any(k in data_gen.DATA_DEFAULTS for k in sw):
        raise SystemExit("config error: dataset must be '' in a sweep over data knobs "
                         "(each run's dataset is named after its knobs)")
    runs = []
    for combo in itertools.product(*sw.values()):
        rc = dict(cfg, sweep={})
        rc.update({k: coerce(k, v, DEFAULTS[k]) for k, v in zip(sw, combo)})
        runs.append(('-'.join(f'{k}{v}' for k, v in zip(sw, combo)), rc))
    return runs


def select_shard(runs, shard):
    if not shard:
        return runs
    try:
        i, n = (int(s) for s in shard.split('/'))
        assert 0 <= i < n
    except (ValueError, AssertionError):
        raise SystemExit(f"config error: shard={shard!r} is not 'i/n' with 0 <= i < n")
    return runs[i::n]


def ckpt_iters(max_iters, n):
    """The initialisation, n log-spaced steps (the first within the first 1% of training: the
    separation phase is early) and the last step."""
    first = max(1, max_iters // 200)
    its = np.unique(np.round(np.geomspace(first, max_iters, max(n, 1))).astype(int))
    return sorted(set(its.tolist()) | {0, max_iters})


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
    """-> dict of tensors for one run's split: tokens (N, T), prompt_len (N,), length (N,), group (N,)."""
    n_langs = len(meta['languages'])
    ft_index = {ft: i for i, ft in enumerate(meta['fact_types'])}
    tok = np.zeros((len(examples), T), dtype=np.int64)  # 0 = <pad>
    for i, ex in enumerate(examples):
        tok[i, :len(ex['tokens'])] = ex['tokens']
    return dict(
        tokens=torch.from_numpy(tok),
        prompt_len=torch.tensor([ex['prompt_len'] for ex in examples]),
        length=torch.tensor([len(ex['tokens']) for ex in examples]),
        group=torch.tensor([ft_index[ex['fact_type']] * n_langs + ex['lang'] for ex in examples]),
    )


def stack_runs(per_run, device):
    """Pad each run's split to the longest and stack: tensors (E, N, ...) plus n (E,)."""
    n = torch.tensor([d['tokens'].shape[0] for d in per_run])
    N = int(n.max())
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
                raise SystemExit(f"config error: runs of a sweep must share {what} ({a} vs {b}); "
                                 f"it differs with {', '.join(diff) or 'the dataset'}")
    T = metas[0]['block_size']
    train_full, evals = [], {s: [] for s in SPLITS}
    for (_, rc), m in zip(runs, metas):
        for i, s in enumerate(SPLITS):
            exs = data_gen.load_split(rc['dataset_path'], s)
            if not exs:
                raise SystemExit(f"data error: split '{s}' of {rc['dataset_path']} is empty")
            if s == 'train':
                train_full.append(encode_split(exs, m, T))
            if cfg['eval_max'] and len(exs) > cfg['eval_max']:
                rng = np.random.default_rng([rc['seed'], i])   # the run's own sample, whatever else runs
                exs = [exs[j] for j in sorted(rng.choice(len(exs), cfg['eval_max'], replace=False))]
            evals[s].append(encode_split(exs, m, T))
    return metas, train_full, evals


# -----------------------------------------------------------------------------
# loss and evaluation

def seq_logprobs(model, tokens, ctx):
    """tokens (E, B, T) -> log-prob of each next token (E, B, T-1), float32."""
    with ctx:
        logits = model(tokens[:, :, :-1])
    return torch.log_softmax(logits.float(), -1).gather(-1, tokens[:, :, 1:, None]).squeeze(-1)


def train_loss(model, tokens, length, ctx):
    """Next-token loss over whole sequences, padding ignored: sum over runs of each run's mean,
    so every run gets exactly the gradient it would get alone.  -> (total, per-run (E,))"""
    lp = seq_logprobs(model, tokens, ctx)
    pos = torch.arange(1, tokens.shape[-1], device=tokens.device)
    mask = (pos < length[..., None]).float()                     # (E, B, T-1) real targets
    per_run = -(lp * mask).sum((1, 2)) / mask.sum((1, 2))
    return per_run.sum(), per_run


@torch.no_grad()
def evaluate(model, split, ctx, chunk=1024):
    """Attribute recall on one split: per example, is every attribute token the greedy
    prediction given the prompt (teacher forcing on earlier attribute tokens is equivalent), and
    the probability of the whole attribute. -> correct (E, N) bool, prob (E, N) float."""
    correct, prob = [], []
    for s in range(0, split['tokens'].shape[1], chunk):
        tok = split['tokens'][:, s:s + chunk]
        with ctx:
            logits = model(tok[:, :, :-1]).float()
        lp = torch.log_softmax(logits, -1)
        tgt = tok[:, :, 1:]
        pos = torch.arange(1, tok.shape[-1], device=tok.device)
        pl, ln = split['prompt_len'][:, s:s + chunk, None], split['length'][:, s:s + chunk, None]
        attr = (pos >= pl) & (pos < ln - 1)                       # target positions of the attribute
        hit = (lp.argmax(-1) == tgt) | ~attr
        correct.append(hit.all(-1))
        prob.append((lp.gather(-1, tgt[..., None]).squeeze(-1) * attr).sum(-1).exp())
    return torch.cat(correct, 1), torch.cat(prob, 1)


def eval_records(it, split_name, correct, prob, split, meta):
    """Aggregate one run's results by fact type x language -> log.jsonl records."""
    n = int(split['n'])
    c, p, g = correct[:n].float().cpu(), prob[:n].cpu(), split['group'][:n].cpu()
    langs, fts = meta['languages'], meta['fact_types']
    recs = []
    for fi, ft in [(None, 'all')] + list(enumerate(fts)):
        for li, lang in [(None, 'all')] + list(enumerate(langs)):
            m = torch.ones(n, dtype=torch.bool)
            if fi is not None:
                m &= g // len(langs) == fi
            if li is not None:
                m &= g % len(langs) == li
            k = int(m.sum())
            if k:
                recs.append(dict(iter=it, split=split_name, fact_type=ft, lang=lang,
                                 acc=round(float(c[m].mean()), 6), prob=round(float(p[m].mean()), 6), n=k))
    return recs


# -----------------------------------------------------------------------------
# checkpoints

def atomic_save(obj, path):
    tmp = path + '.tmp'
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_ckpt(raw, opt, r, it, run_dir, model_args, vocab):
    """Run r's weights (no run axis) and its Adam second moments, for gradient representations."""
    sd = run_state_dict(raw, r)
    names = {p: n for n, p in raw.named_parameters()}
    adam_v, eps, step = {}, opt.defaults['eps'], 0
    for group in opt.param_groups:
        for p in group['params']:
            st = opt.state.get(p, {})
            if 'exp_avg_sq' in st:
                adam_v[names[p]] = st['exp_avg_sq'][r].detach().to('cpu', torch.bfloat16)
                step = int(st['step'])
    atomic_save(dict(model=sd, model_args=model_args, iter=it, adam_v=adam_v, adam_step=step,
                     adam_eps=eps, vocab=vocab), os.path.join(run_dir, f'ckpt_{it}.pt'))


def truncate_log(path, upto):
    """On resume, drop the records that will be written again: evaluations from `upto` on (the
    resumed loop re-evaluates its first step), losses after it."""
    if os.path.exists(path):
        with open(path) as f:
            recs = [json.loads(l) for l in f]
        keep = [json.dumps(r) + '\n' for r in recs
                if r['iter'] < upto or (r['iter'] == upto and r['split'] == 'loss')]
        with open(path, 'w') as f:
            f.writelines(keep)


# -----------------------------------------------------------------------------

def autocast(dev, dtype, graphed=False):
    """Mixed precision for dtype != 'float32' (its cache off under a CUDA graph); a no-op otherwise."""
    if dtype == 'float32':
        return torch.autocast('cpu', enabled=False)
    return torch.autocast(dev.split(':')[0], dtype=getattr(torch, dtype), cache_enabled=not graphed)


def shape_args(cfg, meta):
    """GPTConfig arguments of a run: the model knobs and the dataset's vocabulary and sequence length."""
    return dict({k: cfg[k] for k in MODEL_KEYS}, vocab_size=len(meta['vocab']), block_size=meta['block_size'])


def train(cfg, stop_after=None):
    """Train every run of cfg in lockstep; returns the experiment directory.
    stop_after: stop (as if interrupted) after this many steps, for tests of resume."""
    runs = select_shard(expand_sweep(cfg), cfg['shard'])
    dev = pick_device(cfg['device'])
    dtype = cfg['dtype'] if cfg['dtype'] != 'auto' else ('bfloat16' if dev.startswith('cuda') else 'float32')
    graphed = cfg['cuda_graph']
    if graphed and not dev.startswith('cuda'):
        raise SystemExit(f"config error: cuda_graph=True needs a cuda device, not {dev}")
    ctx = autocast(dev, dtype, graphed)
    use_compile = cfg['compile'] if cfg['compile'] is not None else dev.startswith('cuda')
    E = len(runs)
    metas, train_full, evals = load_runs_data(runs, cfg)
    train_data = stack_runs(train_full, dev)
    data = {s: stack_runs(evals[s], dev) for s in SPLITS}
    model_args = shape_args(cfg, metas[0])
    seeds = [rc['seed'] for _, rc in runs]
    raw = GPT(GPTConfig(**model_args, n_runs=E), seeds=seeds).to(dev)
    lr_buf = torch.tensor(cfg['learning_rate'], device=dev)     # set in place each step (graph-safe)
    opt = torch.optim.AdamW(param_groups(raw, cfg['weight_decay']), lr=lr_buf, betas=(cfg['beta1'], cfg['beta2']),
                            fused=dev.startswith('cuda'), capturable=graphed)
    model = torch.compile(raw) if use_compile else raw

    exp = cfg['out_dir']
    os.makedirs(exp, exist_ok=True)
    resume_path = os.path.join(exp, 'resume.pt' if not cfg['shard'] else
                               f"resume_{cfg['shard'].replace('/', 'of')}.pt")
    run_dirs = [os.path.join(exp, name) for name, _ in runs]
    start = 0
    if cfg['resume']:
        if not os.path.exists(resume_path):
            raise SystemExit(f"resume error: no checkpoint to resume from at {resume_path}")
        st = torch.load(resume_path, map_location=dev, weights_only=False)
        mine = {k: v for k, v in cfg.items() if k not in FREE_ON_RESUME}
        theirs = {k: v for k, v in st['cfg'].items() if k not in FREE_ON_RESUME}
        if mine != theirs:
            diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise SystemExit(f"resume error: config differs from the interrupted run in {', '.join(diff)}")
        raw.load_state_dict(st['model'])
        opt.load_state_dict(st['optimizer'])
        for g in opt.param_groups:
            g['lr'] = lr_buf                     # loading replaced it with a copy
        start = st['iter']
        for d in run_dirs:
            truncate_log(os.path.join(d, 'log.jsonl'), start)
    for d, (name, rc) in zip(run_dirs, runs):
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, 'config.json'), 'w') as f:
            json.dump(dict(rc, run=name, model_args=dict(model_args, n_runs=1)), f, indent=1, default=str)
    logs = [open(os.path.join(d, 'log.jsonl'), 'a' if cfg['resume'] else 'w') for d in run_dirs]
    wandb = None
    if cfg['wandb_log']:
        import wandb
        wandb.init(project=cfg['wandb_project'], name=os.path.basename(exp), config=cfg)

    n_params = sum(p[0].numel() for p in raw.parameters())
    T = model_args['block_size']
    print(f"{E} run(s) on {dev} ({dtype}{', compiled' if use_compile else ''}): {n_params / 1e6:.2f}M params "
          f"per run, vocab {model_args['vocab_size']}, {cfg['batch_size']} x {T} tokens per step and run")
    print('config:', overrides(cfg, DEFAULTS))
    save_at = set(ckpt_iters(cfg['max_iters'], cfg['n_ckpts']))
    run_seeds = torch.tensor(seeds, device=dev)
    it_buf = torch.zeros((), dtype=torch.long, device=dev)
    step = lambda: train_step(model, raw, opt, train_data, run_seeds, it_buf, cfg['batch_size'], cfg['grad_clip'], ctx)
    if graphed:
        step = capture_step(step, raw, opt)
    losses, last_acc = [], {}
    t0 = time.time()
    bar = tqdm(range(start, cfg['max_iters'] + 1), initial=start, total=cfg['max_iters'] + 1, dynamic_ncols=True)
    for it in bar:
        # --- evaluate, checkpoint (the state *before* step `it`'s update: iter = steps taken)
        if it in save_at or it % cfg['eval_interval'] == 0 or it == cfg['max_iters']:
            model.eval()
            for s in SPLITS:
                correct, prob = evaluate(model, data[s], ctx)
                for r in range(E):
                    recs = eval_records(it, s, correct[r], prob[r], {k: v[r] for k, v in data[s].items()}, metas[r])
                    logs[r].writelines(json.dumps(x) + '\n' for x in recs)
                    last_acc[(r, s)] = recs[0]['acc']
            model.train()
            tqdm.write(f"iter {it}: " + ' | '.join(
                f"{s.split('_')[0]} " + ' '.join(f"{last_acc[(r, s)]:.2f}" for r in range(min(E, 8))) + (' ...' if E > 8 else '')
                for s in SPLITS))
            if wandb:
                wandb.log({f'{s}/acc_run{r}': last_acc[(r, s)] for r in range(E) for s in SPLITS}, step=it)
        if it in save_at:
            finite = torch.stack([p.detach().isfinite().flatten(1).all(1) for p in raw.parameters()]).all(0)
            if not finite.all():
                diverged(runs[int((~finite).nonzero()[0])][0], it, 'its weights are not finite')
            for r in range(E):
                save_ckpt(raw, opt, r, it, run_dirs[r], dict(model_args, n_runs=1), metas[r]['vocab'])
        if it % cfg['eval_interval'] == 0:        # the whole sweep's state: large, so not at every checkpoint
            for f in logs:
                f.flush()
            atomic_save(dict(model=raw.state_dict(), optimizer=opt.state_dict(), iter=it, cfg=cfg), resume_path)
        if it == cfg['max_iters'] or (stop_after is not None and it - start >= stop_after):
            break
        # --- one step of every run
        lr = get_lr(it, cfg)
        lr_buf.fill_(lr)
        it_buf.fill_(it)
        losses.append(step())
        if len(losses) == cfg['log_interval'] or it + 1 == cfg['max_iters']:
            check_and_log_losses(torch.stack(losses).cpu(), it + 1 - len(losses), lr, runs, logs, bar, last_acc)
            losses = []
    for f in logs:
        f.close()
    print(f"done in {time.time() - t0:.1f}s -> {exp}")
    return exp


def train_step(model, raw, opt, data, run_seeds, it, batch_size, grad_clip, ctx):
    """One optimisation step of every run -> per-run losses (E,). `it` may be a device tensor
    (under a CUDA graph): nothing here reads a value back to the host."""
    idx = batch_indices(run_seeds, it, batch_size, data['n'])                   # (E, B)
    tokens = torch.gather(data['tokens'], 1, idx[..., None].expand(-1, -1, data['tokens'].shape[-1]))
    length = torch.gather(data['length'], 1, idx)
    loss, per_run = train_loss(model, tokens, length, ctx)
    loss.backward()
    if grad_clip > 0:
        clip_per_run(raw.parameters(), grad_clip)
    opt.step()
    opt.zero_grad(set_to_none=False)
    return per_run.detach()


def capture_step(step, raw, opt):
    """Record step() as one CUDA graph, so a step costs one launch instead of hundreds. The
    warm-up steps that capture needs are undone (weights and optimizer state restored), so the
    run is the same as without the graph. Needs capturable AdamW with a tensor lr."""
    params = list(raw.parameters())
    saved = [p.detach().clone() for p in params]
    saved_state = {p: {k: v.clone() for k, v in st.items()} for p, st in opt.state.items()}
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    with torch.no_grad():
        for p, q in zip(params, saved):
            p.copy_(q)
        for p, st in opt.state.items():
            for k, v in st.items():
                v.copy_(saved_state[p][k]) if p in saved_state else v.zero_()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=side):   # the warmed-up stream: its library handles already exist
        out = step()

    def replay():
        graph.replay()
        return out.clone()
    return replay


def clip_per_run(params, max_norm):
    """Clip each run's gradient to max_norm separately (one norm across all runs would couple them)."""
    grads = [p.grad for p in params if p.grad is not None]
    sq = torch.stack([g.float().pow(2).flatten(1).sum(1) for g in grads]).sum(0)   # (E,)
    coef = (max_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view(-1, *[1] * (g.dim() - 1)).to(g.dtype))


def diverged(run, it, why):
    raise SystemExit(f"training error: run '{run}' diverged at iter {it} ({why}); "
                     "its checkpoints before that step are kept")


def check_and_log_losses(hist, first_it, lr, runs, logs, bar, last_acc):
    """hist (steps, E): stop on a non-finite loss, naming the run and step; else log the means."""
    bad = (~torch.isfinite(hist)).nonzero()
    if len(bad):
        step, r = bad[0].tolist()
        diverged(runs[r][0], first_it + step, f'its loss is {hist[step, r].item()}')
    it = first_it + hist.shape[0]
    for r, f in enumerate(logs):
        f.write(json.dumps(dict(iter=it, split='loss', loss=round(float(hist[:, r].mean()), 6), lr=lr)) + '\n')
    post = f"loss {hist[-1].mean():.4f}"
    if last_acc:
        E = len(logs)
        post += f" id {np.mean([last_acc[(r, 'id_test')] for r in range(E)]):.2f}"
        post += f" ood {np.mean([last_acc[(r, 'ood_test')] for r in range(E)]):.2f}"
    bar.set_postfix_str(post)


if __name__ == '__main__':
    train(configure(DEFAULTS))
