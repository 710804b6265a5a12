"""
Throughput of training and analysis, every row measured in this process on this machine.

    python bench.py                         # GPU: E = 1, 16, 64; CPU: small E so a change can be compared here
    python bench.py --cuda_graph=True       # the project's step captured as one CUDA graph
    python bench.py --device=cpu --run_counts=[1,4] --steps=20

Rows:
  plain loop    a nanoGPT-style single-run loop (one model, torch.randint batches, global grad-norm
                clip, AdamW fused where available, torch.compile on CUDA): the baseline. It runs this
                project's model at E=1, so the rows differ in the loop and the run count only
  lockstep E=k  this project's training step (train.train_step) on k runs at once
  act reps      activation representations per second (analyze.activation_reps)
  grad reps     gradient representations per second: per-example gradient, Adam second-moment
                correction, projection to proj_dim dims (analyze.gradient_reps)
Ratios are run-steps/s against the plain loop. Writes the table as JSON (out_file).
"""
import json
import os
import platform
import time

import torch
import torch.nn.functional as F

import analyze
import data_gen
import train
from configurator import config_keys, configure
from model import GPT, GPTConfig, param_groups, pick_device

# -----------------------------------------------------------------------------
device = 'auto'            # 'auto' = cuda, then mps, then cpu
run_counts = []            # run counts of the lockstep rows; [] = [1, 16, 64] on cuda, [1, 4] elsewhere
steps = 0                  # timed steps per row; 0 = 200 on cuda, 10 elsewhere
warmup = 0                 # untimed steps first (compilation, allocator); 0 = 20 on cuda, 2 elsewhere
batch_size = 256           # sequences per step and run
block = 'pythia'           # model shape: Pythia-14m by default
n_layer = 6
n_head = 4
n_embd = 128
compile = None             # torch.compile; None = on for cuda
cuda_graph = False         # capture the project's step as one CUDA graph (train.py's knob)
n_people = 1000            # the word dataset of the default family
data_dir = 'data'
n_reps = 0                 # examples per analysis row; 0 = 2048 on cuda, 64 elsewhere
proj_dim = 0               # gradient-representation dims; 0 = 4096 on cuda, 512 elsewhere (the CPU redraws the matrix)
out_file = 'out/bench/bench.json'
# -----------------------------------------------------------------------------
DEFAULTS = config_keys(globals())


def sync(dev):
    if dev.startswith('cuda'):
        torch.cuda.synchronize()


def timed(fn, n, dev):
    """Seconds per call of fn over n calls, and peak memory (GB, cuda only)."""
    if dev.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    sync(dev)
    t = time.perf_counter()
    for _ in range(n):
        fn()
    sync(dev)
    dt = (time.perf_counter() - t) / n
    mem = torch.cuda.max_memory_allocated() / 2**30 if dev.startswith('cuda') else None
    return dt, mem


def plain_loop(cfg, data, model_args, dev, use_compile, ctx):
    """The baseline: what a nanoGPT-style script does for one run."""
    model = GPT(GPTConfig(**model_args, n_runs=1)).to(dev)
    opt = torch.optim.AdamW(param_groups(model, 0.1), lr=3e-3, betas=(0.9, 0.95), fused=dev.startswith('cuda'))
    fwd = torch.compile(model) if use_compile else model
    tokens, length, n = data['tokens'][0], data['length'][0], int(data['n'][0])
    T = tokens.shape[1]

    def step():
        ix = torch.randint(n, (cfg['batch_size'],), device=dev)
        x, y = tokens[ix, :-1], tokens[ix, 1:].clone()
        y[torch.arange(1, T, device=dev) >= length[ix, None]] = -1           # padding ignored
        with ctx:
            logits = fwd(x[None])[0]
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=-1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def lockstep(cfg, data, model_args, E, dev, use_compile, ctx):
    """The project's step on E runs (all reading the same dataset, each with its own seed)."""
    raw = GPT(GPTConfig(**model_args, n_runs=E), seeds=list(range(E))).to(dev)
    lr = torch.tensor(3e-3, device=dev)
    opt = torch.optim.AdamW(param_groups(raw, 0.1), lr=lr, betas=(0.9, 0.95), fused=dev.startswith('cuda'),
                            capturable=cfg['cuda_graph'])
    model = torch.compile(raw) if use_compile else raw
    stacked = {k: v.expand(E, *v.shape[1:]).contiguous() for k, v in data.items()}
    seeds = torch.arange(E, device=dev)
    it = torch.zeros((), dtype=torch.long, device=dev)

    def step():
        it.add_(1)
        return train.train_step(model, raw, opt, stacked, seeds, it, cfg['batch_size'], 1.0, ctx)
    return train.capture_step(step, raw, opt) if cfg['cuda_graph'] else step


def bench(cfg):
    dev = pick_device(cfg['device'])
    cuda = dev.startswith('cuda')
    run_counts = cfg['run_counts'] or ([1, 16, 64] if cuda else [1, 4])
    n_steps, n_warm = cfg['steps'] or (200 if cuda else 10), cfg['warmup'] or (20 if cuda else 2)
    n_reps = cfg['n_reps'] or (2048 if cuda else 64)
    proj_dim = cfg['proj_dim'] or (4096 if cuda else 512)
    use_compile = cfg['compile'] if cfg['compile'] is not None else cuda
    ctx = train.autocast(dev, 'bfloat16' if cuda else 'float32', cfg['cuda_graph'])
    dcfg = dict(data_gen.DATA_DEFAULTS, n_people=cfg['n_people'], data_dir=cfg['data_dir'])
    path = data_gen.prepare(dcfg)
    meta = data_gen.load_meta(path)
    examples = data_gen.load_split(path, 'train')
    data = train.stack_runs([train.encode_split(examples, meta, meta['block_size'])], dev)
    model_args = train.shape_args(cfg, meta)
    tokens_per_step = cfg['batch_size'] * meta['block_size']
    rows = []

    def add(name, E, fn, per_call):
        for _ in range(n_warm if per_call is None else 1):
            fn()
        dt, mem = timed(fn, n_steps if per_call is None else 3, dev)
        row = dict(row=name, E=E, seconds_per_step=dt, peak_mem_gb=mem)
        if per_call is None:
            row.update(run_steps_per_s=E / dt, tokens_per_s=E * tokens_per_step / dt)
        else:
            row['items_per_s'] = per_call / dt
        rows.append(row)
        print(fmt(row, rows[0]))

    print(f"bench on {dev} ({torch.cuda.get_device_name() if cuda else platform.processor() or 'cpu'}), "
          f"torch {torch.__version__}, {cfg['block']} {cfg['n_layer']}x{cfg['n_embd']}, batch {cfg['batch_size']} "
          f"x {meta['block_size']} tokens, compile={use_compile}, cuda_graph={cfg['cuda_graph']}")
    add('plain loop', 1, plain_loop(cfg, data, model_args, dev, use_compile, ctx), None)
    for E in run_counts:
        add(f'lockstep E={E}', E, lockstep(cfg, data, model_args, E, dev, use_compile, ctx), None)
    one = GPT(GPTConfig(**model_args, n_runs=1)).to(dev).eval()
    sample = examples[:n_reps]
    ckpt = dict(adam_v={n: torch.rand_like(p[0]).mul(1e-6) for n, p in one.named_parameters()},
                adam_step=100, adam_eps=1e-8)
    with torch.no_grad():
        add('act reps', None, lambda: analyze.activation_reps(one, sample), len(sample))
    add(f'grad reps ({proj_dim} dims)', None,
        lambda: analyze.gradient_reps(one, ckpt, sample, proj_dim=proj_dim, beta2=0.95), len(sample))
    os.makedirs(os.path.dirname(cfg['out_file']) or '.', exist_ok=True)
    with open(cfg['out_file'], 'w') as f:
        json.dump(dict(device=dev, device_name=torch.cuda.get_device_name() if cuda else platform.processor(),
                       torch=torch.__version__, config=cfg, rows=rows), f, indent=1)
    print(f"-> {cfg['out_file']}")
    return rows


def fmt(row, base):
    if 'run_steps_per_s' in row:
        ratio = row['run_steps_per_s'] / base['run_steps_per_s']
        s = (f"{row['row']:<28} {row['run_steps_per_s']:>10.1f} run-steps/s {row['tokens_per_s'] / 1e6:>8.2f}M tok/s "
             f"{ratio:>7.2f}x plain")
    else:
        s = f"{row['row']:<28} {row['items_per_s']:>10.1f} examples/s"
    return s + (f"  peak {row['peak_mem_gb']:.2f} GB" if row['peak_mem_gb'] is not None else '')


if __name__ == '__main__':
    bench(configure(DEFAULTS))
