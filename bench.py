"""
Throughput of training and analysis, every row measured in this process on this machine.

    python bench.py                         # GPU: E = 1, 16, 64; CPU: small E so a change can be compared here
    python bench.py --cuda_graph=True       # the project's step captured as one CUDA graph
    python bench.py --candidates=True       # also each speed candidate of the step, at the largest E
    python bench.py --compile_mode=max-autotune-no-cudagraphs   # every row under another torch.compile mode
    python bench.py --profile=True          # where the time of the step goes (torch.profiler, largest E)
    python bench.py --sweep=True            # also a whole sweep: training with its evaluations and checkpoints, then analysis
    python bench.py --device=cpu --run_counts=[1,4] --steps=20

Rows:
  plain loop    a nanoGPT-style single-run loop (one model, torch.randint batches, global grad-norm
                clip, AdamW fused where available, torch.compile on CUDA): the baseline. It runs this
                project's model at E=1, so the rows differ in the loop and the run count only
  lockstep E=k  this project's training step (train.train_step) on k runs at once
  candidates    the lockstep step with one change each, to keep what measures faster:
                attention written out instead of SDPA, the loss as F.cross_entropy instead of a
                float32 log-softmax and gather, and batches by index_select instead of gather
                (another compile mode is a whole table: --compile_mode=max-autotune-no-cudagraphs)
  act reps      activation representations per second (represent.activation_reps)
  grad reps     gradient representations per second: per-example gradient, Adam second-moment
                correction, projection to proj_dim dims (represent.gradient_reps)
  sweep         sweep_runs runs x sweep_iters steps through train.train (the real evaluation and
                checkpoint schedule), then analyze.analyze with its defaults: train_s, step_s (time
                inside steps), the share of training wall time outside the steps, analyze_s, ckpts_per_s
Ratios are run-steps/s against the plain loop. Writes the table as JSON (out_file).
"""
import json
import os
import platform
import shutil
import time

import torch
import torch.nn.functional as F

import analyze
import represent
import data_gen
import train
from configurator import cli, config_keys, configure
from model import GPT, GPTConfig, param_groups, pick_device

# -----------------------------------------------------------------------------
device = 'auto'            # 'auto' = cuda, then mps, then cpu
run_counts = []            # run counts of the lockstep rows; [] = [1, 16, 64] on cuda, [1, 4] elsewhere
steps = 0                  # timed steps per row; 0 = 200 on cuda, 10 elsewhere
warmup = 0                 # untimed steps first (compilation, allocator); 0 = 20 on cuda, 2 elsewhere
batch_size = 256           # sequences per step and run
block = 'pythia'           # model shape: Pythia-14m by default
n_layer = 6                # layers
n_head = 4                 # attention heads
n_embd = 128               # residual width
compile = 'auto'           # torch.compile; 'auto' = on for cuda
cuda_graph = False         # capture the project's step as one CUDA graph (train.py's knob)
candidates = False         # also time each speed candidate of the step at the largest run count
compile_mode = ''          # torch.compile mode of every row ('' = default; e.g. max-autotune-no-cudagraphs)
profile = False            # also profile the step at the largest run count (torch.profiler): the top ops go to the JSON
sweep = False              # also time a whole sweep (training with evaluations and checkpoints, then analysis)
sweep_runs = 16            # runs of the sweep row (celeb_frac spread over 0 .. 0.3)
sweep_iters = 0            # steps of the sweep row; 0 = 3000 on cuda, 20 elsewhere
n_people = 1000            # the word dataset of the default family
data_dir = 'data'          # where the datasets live
n_reps = 0                 # examples per analysis row; 0 = 2048 on cuda, 64 elsewhere
proj_dim = 0               # gradient-representation dims; 0 = 4096 on cuda, 512 elsewhere
out_file = 'out/bench/bench.json'  # the table as JSON
# -----------------------------------------------------------------------------
DEFAULTS = config_keys(globals())
CHOICES = {'compile': ('auto', True, False), 'cuda_graph': (True, False)}


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
    fwd = torch.compile(model, mode=cfg['compile_mode'] or None) if use_compile else model
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


def ce_loss(model, tokens, length, ctx):
    """Candidate: the loss of train.train_loss through F.cross_entropy (fused log-softmax + NLL)."""
    with ctx:
        logits = model(tokens[:, :, :-1])                                      # (E, B, T-1, V)
    tgt = tokens[:, :, 1:].masked_fill(torch.arange(1, tokens.shape[-1], device=tokens.device) >= length[..., None], -1)
    nll = F.cross_entropy(logits.flatten(0, 2).float(), tgt.flatten(), ignore_index=-1, reduction='none')
    per_run = nll.view(tgt.shape).sum((1, 2)) / (tgt >= 0).sum((1, 2))
    return per_run.sum(), per_run


def index_select_batch(data, idx):
    """Candidate: train.gather_batch's rows by one flat index_select over all runs' examples."""
    E, N = data['tokens'].shape[:2]
    flat = (idx + torch.arange(E, device=idx.device)[:, None] * N).flatten()    # row r * N + i
    tokens = data['tokens'].flatten(0, 1).index_select(0, flat).view(E, idx.shape[1], -1)
    return tokens, data['length'].flatten().index_select(0, flat).view(E, -1)


def lockstep(cfg, data, model_args, E, dev, use_compile, ctx, variant=''):
    """The project's step on E runs (all reading the same dataset, each with its own seed);
    `variant` names a candidate change (see the module docstring)."""
    raw = GPT(GPTConfig(**model_args, n_runs=E), seeds=list(range(E))).to(dev)
    raw.use_sdpa = variant != 'attention_math'
    lr = torch.tensor(3e-3, device=dev)
    opt = torch.optim.AdamW(param_groups(raw, 0.1), lr=lr, betas=(0.9, 0.95), fused=dev.startswith('cuda'),
                            capturable=cfg['cuda_graph'])
    model = torch.compile(raw, mode=cfg['compile_mode'] or None) if use_compile else raw
    stacked = {k: v.expand(E, *v.shape[1:]).contiguous() for k, v in data.items()}
    seeds = torch.arange(E, device=dev)
    it = torch.zeros((), dtype=torch.long, device=dev)
    swap = {'ce_loss': ('train_loss', ce_loss), 'index_select': ('gather_batch', index_select_batch)}.get(variant)

    def step():
        it.add_(1)
        if swap:                                  # the candidate replaces one function of train.py's step
            kept = getattr(train, swap[0])
            setattr(train, swap[0], swap[1])
        try:
            return train.train_step(model, raw, opt, stacked, seeds, it, cfg['batch_size'], 1.0, ctx)
        finally:
            if swap:
                setattr(train, swap[0], kept)
    return train.capture_step(step, raw, opt) if cfg['cuda_graph'] else step


def profile_step(step, dev, n=20, top=15):
    """The top ops of n steps by self device time (CPU time on a CPU): [{op, calls, ms_per_step, share}]."""
    acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if dev.startswith('cuda') else [])
    with torch.profiler.profile(activities=acts) as prof:
        for _ in range(n):
            step()
        sync(dev)
    key = 'self_device_time_total' if dev.startswith('cuda') else 'self_cpu_time_total'
    ops = sorted(prof.key_averages(), key=lambda e: -getattr(e, key))
    total = sum(getattr(e, key) for e in ops) or 1
    return [dict(op=e.key, calls=e.count // n, ms_per_step=getattr(e, key) / n / 1e3, share=getattr(e, key) / total)
            for e in ops[:top]]


def sweep_row(cfg, dev, tmp):
    """A whole sweep as a user runs it: train.train (evaluations, checkpoints in the background),
    then analyze.analyze with its defaults. -> the row."""
    E, cuda = cfg['sweep_runs'], dev.startswith('cuda')
    iters = cfg['sweep_iters'] or (3000 if cuda else 20)
    fracs = [round(0.3 * i / max(E - 1, 1), 3) for i in range(E)]
    tcfg = dict(train.DEFAULTS, out_dir=os.path.join(tmp, 'sweep'), data_dir=cfg['data_dir'], n_people=cfg['n_people'],
                block=cfg['block'], n_layer=cfg['n_layer'], n_head=cfg['n_head'], n_embd=cfg['n_embd'],
                batch_size=cfg['batch_size'], max_iters=iters, eval_interval=max(1, iters // 6), device=dev,
                compile=cfg['compile'], cuda_graph=cfg['cuda_graph'] or 'auto', sweep={'celeb_frac': fracs},
                overwrite=True)
    t = time.perf_counter()
    exp = train.train(tcfg)
    wall = time.perf_counter() - t
    tm = json.load(open(os.path.join(exp, 'timing.json')))
    t = time.perf_counter()
    a = analyze.analyze(dict(analyze.DEFAULTS, exp_dir=exp, device=dev))
    analyze_s = time.perf_counter() - t
    outside = tm['train_s'] - tm['step_s'] - tm['first_step_s']
    return dict(row=f'sweep ({E} runs x {iters} steps)', E=E, iters=iters, train_wall_s=wall, train_s=tm['train_s'],
                step_s=tm['step_s'], first_step_s=tm['first_step_s'], eval_s=tm['eval_s'], ckpt_s=tm['ckpt_s'],
                outside_steps_frac=outside / tm['train_s'], run_steps_per_s=tm['run_steps_per_s'],
                analyze_s=analyze_s, n_ckpts=a['timing']['n_ckpts'], ckpts_per_s=a['timing']['n_ckpts'] / analyze_s,
                graphed=tm['graphed'], compiled=tm['compiled'])


def bench(cfg):
    dev = pick_device(cfg['device'])
    cuda = dev.startswith('cuda')
    run_counts = cfg['run_counts'] or ([1, 16, 64] if cuda else [1, 4])
    n_steps, n_warm = cfg['steps'] or (200 if cuda else 10), cfg['warmup'] or (20 if cuda else 2)
    n_reps = cfg['n_reps'] or (2048 if cuda else 64)
    proj_dim = cfg['proj_dim'] or (4096 if cuda else 512)
    use_compile = cfg['compile'] if cfg['compile'] != 'auto' else cuda
    if cfg['cuda_graph'] and not cuda:
        raise ValueError(f"config error: cuda_graph=True needs a cuda device, not {dev}")
    ctx = train.autocast(dev, 'bfloat16' if cuda else 'float32', cfg['cuda_graph'])
    path = data_gen.prepare(dict(data_gen.DATA_DEFAULTS, n_people=cfg['n_people'], data_dir=cfg['data_dir']))
    meta = data_gen.load_meta(path)
    examples = data_gen.load_split(path, 'train', meta)
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

    name = torch.cuda.get_device_name() if cuda else platform.processor() or 'cpu'
    print(f"bench on {dev} ({name}), torch {torch.__version__}, {cfg['block']} {cfg['n_layer']}x{cfg['n_embd']}, "
          f"batch {cfg['batch_size']} x {meta['block_size']} tokens, compile={use_compile}{' ' + cfg['compile_mode'] if cfg['compile_mode'] else ''}, "
          f"cuda_graph={cfg['cuda_graph']}")
    add('plain loop', 1, plain_loop(cfg, data, model_args, dev, use_compile, ctx), None)
    for E in run_counts:
        step = lockstep(cfg, data, model_args, E, dev, use_compile, ctx)
        add(f'lockstep E={E}', E, step, None)
        if cfg['profile'] and E == max(run_counts):
            rows[-1]['profile'] = profile_step(step, dev)
            print('\n'.join(f"    {p['share']:6.1%} {p['ms_per_step']:8.3f} ms/step  {p['calls']:>4}x  {p['op'][:60]}"
                            for p in rows[-1]['profile'][:8]))
    if cfg['candidates']:
        for variant in ('attention_math', 'ce_loss', 'index_select'):
            E = max(run_counts)
            add(f'lockstep E={E} {variant}', E, lockstep(cfg, data, model_args, E, dev, use_compile, ctx, variant), None)
    one = GPT(GPTConfig(**model_args, n_runs=1)).to(dev).eval()
    sample = examples[:n_reps]
    ckpt = dict(adam_v={n: torch.rand_like(p[0]).mul(1e-6) for n, p in one.named_parameters()},
                adam_step=100, adam_eps=1e-8)
    acfg, _ = analyze.pick_settings(dict(analyze.DEFAULTS, proj_dim=proj_dim), dev)
    with torch.no_grad():
        add('act reps', None, lambda: represent.activation_reps(one, [sample]), len(sample))
    add(f"grad reps ({proj_dim} dims, {acfg['proj_kind']})", None,
        lambda: represent.gradient_reps(one, [ckpt], [sample], acfg, [0.95]), len(sample))
    if cfg['sweep']:
        tmp = os.path.join(os.path.dirname(cfg['out_file']) or '.', 'bench_sweep')
        try:
            rows.append(sweep_row(cfg, dev, tmp))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        r = rows[-1]
        print(f"{r['row']}: training {r['train_s']:.1f}s (steps {r['step_s']:.1f}s, {r['outside_steps_frac']:.1%} outside "
              f"the steps), analysis {r['analyze_s']:.1f}s ({r['ckpts_per_s']:.1f} checkpoints/s)")
    os.makedirs(os.path.dirname(cfg['out_file']) or '.', exist_ok=True)
    with open(cfg['out_file'], 'w') as f:
        json.dump(dict(device=dev, device_name=name, torch=torch.__version__, config=cfg, rows=rows), f, indent=1)
    print(f"-> {cfg['out_file']}")
    return rows


def fmt(row, base):
    if 'run_steps_per_s' in row:
        ratio = row['run_steps_per_s'] / base['run_steps_per_s']
        s = (f"{row['row']:<36} {row['run_steps_per_s']:>10.1f} run-steps/s {row['tokens_per_s'] / 1e6:>8.2f}M tok/s "
             f"{ratio:>7.2f}x plain")
    else:
        s = f"{row['row']:<36} {row['items_per_s']:>10.1f} examples/s"
    return s + (f"  peak {row['peak_mem_gb']:.2f} GB" if row['peak_mem_gb'] is not None else '')


if __name__ == '__main__':
    cli(lambda: bench(configure(DEFAULTS, choices=CHOICES, sources=[__file__])))
