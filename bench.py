"""
Throughput of training and analysis, every row measured in this process on this machine.

    python bench.py                         # GPU: E = 1, 16, 64; CPU: the CPU table (the grid below)
    python bench.py --cuda_graph=True       # the project's step captured as one CUDA graph
    python bench.py --candidates=True       # also each speed candidate of the step, at the largest E
    python bench.py --compile_mode=max-autotune-no-cudagraphs   # every row under another torch.compile mode
    python bench.py --profile=True          # where the time of the step goes (torch.profiler, largest E)
    python bench.py --sweep=True            # also a whole sweep: training with its evaluations and checkpoints, then analysis
    python bench.py --device=cpu --run_counts=[1,4] --steps=20 --grid=True
    python bench.py --device=cpu --n_layer=2 --grid=False   # a shape knob set: the rows below only, at that shape

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
  live unif     train.py's live unification (live_unif) against the training it watches, one process:
                its cost as a share of training time at a schedule (live_unif_row)
  grad reps     gradient representations per second: per-example gradient, Adam second-moment
                correction, projection to proj_dim dims (represent.gradient_reps)
  sweep         sweep_runs runs x sweep_iters steps through train.train (the real evaluation and
                checkpoint schedule), then analyze.analyze with its defaults: train_s, step_s (time
                inside steps), the share of training wall time outside the steps, analyze_s, ckpts_per_s
  grid          (on a CPU) every step setting of grid_settings (float32 eager = today's path, bfloat16
                autocast, torch.compile, both, 'auto' = what train.py picks here, ...) at the laptop shape
                (laptop_config, E = 1 and laptop_runs) and the paper shape (the knobs, E = run_counts),
                timed in turns so that a busy machine's noise hits every setting alike; ratios against the
                first setting at the same shape and E. Also the limit: GFLOP/s of plain 2-D float32 and
                bfloat16 GEMMs of the model's shapes, and each row's model GFLOP/s as a share of the faster
                one; and gradient representations on the plain path against the analysis' picks
  side by side  (on a CPU, with the grid) two single-run jobs (E=1: runs that cannot share a lockstep group, or
                shards of the experiment queue) one after the other on both cores, against side by side on one core
                each (two processes), at each shape: the reproduction and the queue's --part run jobs side by side
  analysis pair (on a CPU, with the sweep row unless pair=False, or analyze_dir) analyze.py as a user runs it, figures
                included, on pair_ckpts checkpoints per run: its CPU defaults (bf16 forward passes and
                per-example gradients, each example as a run of its own, freed memory kept) against the
                plain path (PLAIN_ANALYSIS: float32, torch.func's vmap, glibc's memory defaults: the
                analysis before its CPU speed-ups), timed in turns twice: seconds, checkpoints/s, the ratio, and how far
                the two paths' measures lie apart (largest difference per measure over the checkpoints)
Ratios are run-steps/s against the plain loop (grid rows: against float32 eager). Writes the table as JSON (out_file).
"""
import contextlib
import json
import multiprocessing
import os
import shutil
import statistics
import time

import torch
import torch.nn.functional as F

import analyze
import checkpoints
import data_gen
import metrics
import records
import represent
import train
from configurator import cli, config_keys, configure, run_config_file
from machine import autocast, cpu_name, cpu_reuse_memory, pick_device, provenance, system_settings
from model import GPT, GPTConfig, layer_shapes, param_groups
from records import dig

# -----------------------------------------------------------------------------
# advanced: warmup, cuda_graph, compile_mode, candidates, profile, n_people, data_dir, n_reps,
# advanced: proj_dim, grid_settings, laptop_config, laptop_runs, pair, pair_ckpts, sweep_runs, sweep_iters
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
sweep_runs = 0             # runs of the sweep row (celeb_frac spread over 0 .. 0.3); 0 = 16 on cuda, laptop_runs with the grid, else 16
sweep_iters = 0            # steps of the sweep row; 0 = 3000 on cuda, laptop_config's with the grid (its schedule too), else 20
n_people = 1000            # the word dataset of the default family
data_dir = 'data'          # where the datasets live
n_reps = 0                 # examples per analysis row; 0 = 2048 on cuda, 256 with the grid, else 64
proj_dim = 0               # gradient-representation dims; 0 = 4096 on cuda, 512 elsewhere
out_file = 'out/bench/bench.json'  # the table as JSON
grid = 'auto'              # the CPU table (see above); 'auto' = on a CPU when no shape knob (block .. n_embd, batch_size) is set
grid_settings = ['float32', 'bfloat16', 'float32+compile', 'bfloat16+compile', 'auto']  # '+'-joined: dtype, compile, threads<N>, reuse, a candidate; auto = train.py's pick; the first = baseline
laptop_config = 'config/laptop/base.py'  # the laptop regime: the grid's laptop shape, and the CPU sweep row's schedule
laptop_runs = 12           # run count of the laptop sweeps (config/laptop/sweep_celeb.py: 6 celeb_frac x 2 seeds)
analyze_dir = ''           # also time analyze.py on this trained sweep (a copy): its CPU defaults against the plain path
pair = True                # on a CPU, the sweep row's analysis also timed against the plain path (the analysis pair: 4 analyses)
pair_ckpts = -1            # checkpoints per run in that comparison; -1 = analyze.py's default (8 on a CPU) (the sweep row makes one too)
# -----------------------------------------------------------------------------
DEFAULTS = config_keys(globals())
CHOICES = {'compile': ('auto', True, False), 'cuda_graph': (True, False), 'grid': ('auto', True, False)}
SHAPE_KNOBS = ('block', 'n_layer', 'n_head', 'n_embd', 'batch_size')
CANDIDATES = ('attention_math', 'ce_loss', 'index_select')


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
    """The project's step on E runs (all reading the same dataset, each with its own seed) with the
    trainer's optimizer; `variant` names a candidate change (see the module docstring)."""
    raw = GPT(GPTConfig(**model_args, n_runs=E), seeds=list(range(E))).to(dev)
    raw.use_sdpa = variant != 'attention_math'
    ocfg = dict(learning_rate=3e-3, weight_decay=0.1, beta1=0.9, beta2=0.95, batch_size=cfg['batch_size'], grad_clip=1.0)
    runs = [(str(e), dict(ocfg, seed=e)) for e in range(E)]
    opt, lr, per_run = train.make_optimizer(raw, runs, ocfg, dev, capturable=cfg['cuda_graph'])
    stacked = {k: v.expand(E, *v.shape[1:]).contiguous() for k, v in data.items()}
    swap = {'ce_loss': dict(loss_fn=ce_loss), 'index_select': dict(batch_fn=index_select_batch)}.get(variant, {})
    swap.setdefault('loss_fn', train.train_loss)
    if use_compile:                                # as train.py: the model and its loss compiled as one graph
        swap['loss_fn'] = torch.compile(swap['loss_fn'], mode=cfg['compile_mode'] or None)
    step, it = train.make_step(raw, opt, runs, ocfg, stacked, ctx, per_run, lr, cfg['cuda_graph'], **swap)

    def next_step():
        it.add_(1)
        return step()
    return next_step


def live_unif_row(sched, data, examples, meta, E, dev, ctx, n_warm, n_steps):
    """train.py's live unification against the training it watches, both timed here in turns: a lockstep
    step of E runs and one live measurement of E runs (each the dataset's parallel sample as train.py
    draws it), at the shape and schedule of `sched` (the laptop regime on a CPU, else train.py's
    defaults at the bench's shape). Its cost as a share of training = measurements per run (every
    evaluation: eval_interval, checkpoints, the end) x a measurement's time / (max_iters x a step's
    time): the budget is 5%. -> the row."""
    model_args = train.shape_args(sched, meta)
    step = lockstep(dict(sched, cuda_graph=False), data, model_args, E, dev, False, ctx)
    gpt = GPT(GPTConfig(**model_args, n_runs=E)).to(dev).eval()
    sample = records.live_sample(examples, records.PARALLEL_FACTS[not dev.startswith('cuda')])
    fts = [meta['fact_types']] * E

    def measure():
        with ctx:
            represent.live_unification(gpt, [sample] * E, fts)
    step_s, live_s = [], []
    for _ in range(n_warm):
        step(), measure()
    for _ in range(3):                                  # in turns: a busy machine's noise hits both alike
        step_s.append(timed(step, n_steps, dev)[0])
        live_s.append(timed(measure, 1, dev)[0])
    step_s, live_s = statistics.median(step_s), statistics.median(live_s)
    at = set(range(0, sched['max_iters'] + 1, sched['eval_interval'])) | {sched['max_iters']}
    n_meas = len(at | set(checkpoints.ckpt_iters(sched['max_iters'], sched['n_ckpts'], sched['ckpt_first'])))
    share = n_meas * live_s / (sched['max_iters'] * step_s)
    row = dict(row=f'live unif E={E}', E=E, seconds_per_step=step_s, live_s=live_s, n_measurements=n_meas,
               max_iters=sched['max_iters'], cost_share=share, items_per_s=E * len(sample) / live_s,
               examples=len(sample), peak_mem_gb=None)
    print(f"{row['row']:<36} {live_s * 1e3:.1f} ms per measurement of {E} runs x {len(sample)} examples, "
          f"a step {step_s * 1e3:.1f} ms: {n_meas} measurements over {sched['max_iters']} steps = {share:.2%} of training")
    return row


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


# ----------------------------------------------------------------------------- the CPU grid
def laptop_knobs(cfg):
    """train.py's settings of the laptop regime: laptop_config stacked on train.py's defaults."""
    return dict(train.DEFAULTS, **run_config_file(cfg['laptop_config'], train.DEFAULTS))


def parse_setting(name, dev):
    """'bfloat16+compile+threads1' -> {dtype, compile, threads (0 = as set), reuse, variant}; 'auto' =
    what train.py picks on dev (its parts may follow: 'auto+threads1'); 'reuse': freed memory kept in
    the process (machine.cpu_reuse_memory, which train.py does on a CPU)."""
    s = dict(dtype='float32', compile=False, threads=0, reuse=False, variant='')
    for part in name.split('+'):
        if part == 'auto':
            s['dtype'], s['compile'], _ = system_settings(dict(train.DEFAULTS, cuda_graph=False), dev)
            s['reuse'] = dev == 'cpu' and train.DEFAULTS['reuse_memory']
        elif part == 'reuse':
            s['reuse'] = True
        elif part in ('float32', 'bfloat16', 'float16'):
            s['dtype'] = part
        elif part == 'compile':
            s['compile'] = True
        elif part.startswith('threads') and part[7:].isdigit():
            s['threads'] = int(part[7:])
        elif part in CANDIDATES:
            s['variant'] = part
        else:
            raise ValueError(f"config error: grid_settings: {part!r} in {name!r} is not a dtype, compile, "
                             f"threads<N>, reuse, auto or one of {', '.join(CANDIDATES)}")
    return s


@contextlib.contextmanager
def reused(on):
    """Freed memory kept in the process inside the block (on), glibc's defaults after it."""
    if on:
        cpu_reuse_memory()
    try:
        yield
    finally:
        if on:
            cpu_reuse_memory(False)


@contextlib.contextmanager
def threads(n):
    """torch's intra-op thread count set to n inside the block (0: left as it is)."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def matmul_shapes(model_args):
    """(in, out) of every weight matmul of one layer, and of the output head."""
    cfg = GPTConfig(**model_args)
    return [s for k, (s, _) in layer_shapes(cfg).items() if len(s) == 2], (cfg.n_embd, cfg.vocab_size)


def step_flops(model_args, batch_size):
    """Model FLOPs of one training step of one run: 6 per weight per token (forward 2, backward 4)
    for the matmuls, plus the attention's two (T x T) products."""
    per_layer, head = matmul_shapes(model_args)
    T = model_args['block_size'] - 1                                        # inputs: the sequence less its last token
    weights = model_args['n_layer'] * sum(k * m for k, m in per_layer) + head[0] * head[1]
    attention = model_args['n_layer'] * 4 * T * T * model_args['n_embd']  # q k^T and att v, forward, per sequence
    return 6 * batch_size * T * weights + 3 * batch_size * attention


def gemm_limit(model_args, rows, dev, n=20):
    """What the step's matmuls could reach here: GFLOP/s of plain 2-D (rows x in) @ (in x out)
    products of the model's weight shapes, each timed n times in 3 rounds, the best round kept (a
    ceiling: a busy machine only lowers it) -> {dtype: GFLOP/s}."""
    per_layer, head = matmul_shapes(model_args)
    out = {}
    for dtype in (torch.float32, torch.bfloat16):
        flops = seconds = 0.0
        for k, m in per_layer + [head]:
            a, b = torch.randn(rows, k, device=dev, dtype=dtype), torch.randn(k, m, device=dev, dtype=dtype)
            for _ in range(3):
                a @ b
            seconds += min(timed(lambda: a @ b, n, dev)[0] for _ in range(3))
            flops += 2 * rows * k * m
        out[str(dtype).split('.')[1]] = flops / seconds / 1e9
    return out


def grid_group(cfg, data, model_args, E, dev, settings, n_warm, n_steps, rounds=3):
    """Every setting's step at one shape and run count, timed in turns (rounds x n_steps each), so
    that a busy machine slows them alike -> {name: (median seconds per step, warm-up seconds, resolved)}."""
    resolved = {}
    for name in settings:
        s = parse_setting(name, dev)
        resolved.setdefault(tuple(s.items()), []).append(name)      # 'auto' and its twin are timed once
    steps = {}
    for key in resolved:
        s = dict(key)
        with threads(s['threads']), reused(s['reuse']):
            fn = lockstep(cfg, data, model_args, E, dev, s['compile'], autocast(dev, s['dtype']), s['variant'])
            t = time.perf_counter()
            for _ in range(n_warm):                                  # compilation happens here
                fn()
            steps[key] = (fn, time.perf_counter() - t)
    times = {key: [] for key in steps}
    for _ in range(rounds):
        for key, (fn, _) in steps.items():
            with threads(dict(key)['threads']), reused(dict(key)['reuse']):
                times[key].append(timed(fn, n_steps, dev)[0])
    return {name: (statistics.median(times[key]), steps[key][1], dict(key)) for key, names in resolved.items()
            for name in names}


def grid_rows(cfg, dev, shapes, n_warm, n_steps):
    """The CPU table: per shape, the GEMM limit, then every grid setting at each run count. -> rows."""
    rows = []
    for shape, scfg, run_counts, data, meta in shapes:
        model_args = train.shape_args(scfg, meta)
        tokens = scfg['batch_size'] * (meta['block_size'] - 1)
        flops = step_flops(model_args, scfg['batch_size'])
        limit = gemm_limit(model_args, tokens, dev)
        best = max(limit.values())
        print(f"{shape} shape: {scfg['block']} {scfg['n_layer']}x{scfg['n_embd']}, batch {scfg['batch_size']} x "
              f"{meta['block_size'] - 1} tokens, {flops / 1e9:.2f} GFLOP per run-step; GEMM limit "
              + ', '.join(f"{k} {v:.0f} GFLOP/s" for k, v in limit.items()))
        rows += [dict(row=f'gemm {k}', shape=shape, E=None, gflops=v, rows=tokens, peak_mem_gb=None) for k, v in limit.items()]
        for E in run_counts:
            res = grid_group(scfg, data, model_args, E, dev, cfg['grid_settings'], n_warm, n_steps)
            base = res[cfg['grid_settings'][0]][0]
            for name, (dt, warm, s) in res.items():
                gflops = E * flops / dt / 1e9
                rows.append(dict(row=f'lockstep E={E} {name}', shape=shape, E=E, setting=name, resolved=s,
                                 seconds_per_step=dt, run_steps_per_s=E / dt, tokens_per_s=E * tokens / dt,
                                 ratio=base / dt, gflops=gflops, gemm_share=gflops / best, warmup_s=warm, peak_mem_gb=None))
                print(f"  E={E:<3} {name:<28} {E / dt:8.1f} run-steps/s {base / dt:6.2f}x {cfg['grid_settings'][0]}"
                      f" {gflops:7.1f} GFLOP/s = {gflops / best:5.1%} of the GEMM limit  (warm-up {warm:.0f} s)")
            if shape == shapes[0][0] and 'auto' in res:
                # what train.py runs at the laptop shape, under the plain row name the queue's CPU estimates read
                rows.append(dict(rows[-len(res) + list(res).index('auto')], row=f'lockstep E={E}', alias=True))
            torch._dynamo.reset()                                    # compiled graphs of this group: not needed again
    return rows


def sweep_row(cfg, dev, tmp, laptop=None):
    """A whole sweep as a user runs it: train.train (evaluations, checkpoints in the background),
    then analyze.analyze with its defaults, both with their 'auto' settings. laptop: the laptop
    regime's knobs (shape and evaluation schedule; on a CPU), else the bench's shape. -> the row."""
    cuda = dev.startswith('cuda')
    E = cfg['sweep_runs'] or (16 if cuda or not laptop else cfg['laptop_runs'])
    iters = cfg['sweep_iters'] or (3000 if cuda else laptop['max_iters'] if laptop else 20)
    fracs = [round(0.3 * i / max(E - 1, 1), 3) for i in range(E)]
    knobs = SHAPE_KNOBS + ('eval_interval', 'eval_max', 'n_ckpts', 'ckpt_first', 'warmup_iters')
    shape = {k: laptop[k] for k in knobs} if laptop else dict({k: cfg[k] for k in SHAPE_KNOBS},
                                                              eval_interval=max(1, iters // 6))
    tcfg = dict(train.DEFAULTS, **shape, out_dir=os.path.join(tmp, 'sweep'), data_dir=cfg['data_dir'],
                n_people=cfg['n_people'], max_iters=iters, device=dev, compile=cfg['compile'],
                cuda_graph=cfg['cuda_graph'] or 'auto', sweep={'celeb_frac': fracs}, overwrite=True)
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
                graphed=tm['graphed'], compiled=tm['compiled'], dtype=system_settings(tcfg, dev)[0],
                shape={k: tcfg[k] for k in SHAPE_KNOBS + ('eval_interval', 'eval_max', 'n_ckpts')})


def solo_steps(lap, s, n_threads, n_warm, n_steps, ready, out):
    """One single-run job in a process of its own (side_by_side): the step of lap's shape at E=1 with
    the setting s (parse_setting) on n_threads threads, warmed up, then n_steps timed once every job is ready."""
    torch.set_num_threads(n_threads)
    path = data_gen.prepare(dict(data_gen.DATA_DEFAULTS, n_people=lap['n_people'], data_dir=lap['data_dir']))
    meta = data_gen.load_meta(path)
    data = train.stack_splits([data_gen.load_split(path, 'train', meta)], [meta], 'cpu')
    with reused(s['reuse']):
        step = lockstep(lap, data, train.shape_args(lap, meta), 1, 'cpu', s['compile'], autocast('cpu', s['dtype']))
        for _ in range(n_warm):
            step()
        ready.wait()
        out.put(timed(step, n_steps, 'cpu')[0] * n_steps)


def side_by_side(lap, n_warm, n_steps, cores=2, shape='laptop'):
    """Two single-run jobs (the shape of `lap` at E=1, which cannot share a lockstep group, e.g. char_low and
    char_cased) one after the other on every core, against side by side on one core each (two processes,
    started together). -> the row: seconds for both jobs each way; ratio > 1: side by side is faster."""
    mp, s = multiprocessing.get_context('spawn'), parse_setting('auto', 'cpu')    # train.py's picks, resolved here
    wall = {}
    for how, jobs, threads_each, steps in (('one after the other', 1, cores, 2 * n_steps),
                                           ('side by side', cores, 1, n_steps)):
        ready, out = mp.Barrier(jobs), mp.Queue()
        procs = [mp.Process(target=solo_steps, args=(lap, s, threads_each, n_warm, steps, ready, out)) for _ in range(jobs)]
        for p in procs:
            p.start()
        wall[how] = max(out.get() for _ in procs)      # the jobs end when the slower one does
        for p in procs:
            p.join()
    ratio = wall['one after the other'] / wall['side by side']
    print(f"single-run jobs, {shape} shape: {cores} one after the other ({cores} threads) {wall['one after the other']:.1f} s, "
          f"side by side (1 thread each) {wall['side by side']:.1f} s: {ratio:.2f}x")
    return dict(row=f'{cores} single-run jobs side by side', shape=shape, E=1, steps_per_job=n_steps,
                sequential_s=wall['one after the other'],
                side_by_side_s=wall['side by side'], ratio=ratio, peak_mem_gb=None)


def profile_row(lap, data, meta, E, dev, n_warm):
    """The torch.profiler table of the picked setting's step at the laptop shape."""
    s = parse_setting('auto', dev)
    step = lockstep(lap, data, train.shape_args(lap, meta), E, dev, s['compile'], autocast(dev, s['dtype']))
    with reused(s['reuse']):
        for _ in range(n_warm):
            step()
        row = dict(row=f"profile laptop E={E} auto", E=E, peak_mem_gb=None, profile=profile_step(step, dev))
    print_profile(row['profile'])
    torch._dynamo.reset()
    return row


# the analysis before its CPU speed-ups: float32, per-example gradients by torch.func's vmap, glibc's memory
# defaults. The CPU defaults (analyze.pick_settings) change all three; the pair and the grad reps rows time both.
PLAIN_ANALYSIS = dict(dtype='float32', grad_impl='vmap', reuse_memory=False)


def plain_rows(rows, one, ckpt, sample, acfg, proj_dim, dev):
    """Gradient representations with the analysis' picks (freed memory kept, as analyze.py does on a
    CPU) against the plain path (PLAIN_ANALYSIS), timed in turns: the last row (the pick) is retimed
    and a plain row with the ratio follows it."""
    paths = {'plain': dict(acfg, **PLAIN_ANALYSIS), 'pick': acfg}
    secs = {k: [] for k in paths}
    for _ in range(3):
        for k, c in paths.items():
            with reused(dev == 'cpu' and c['reuse_memory']):
                secs[k].append(timed(lambda: represent.gradient_reps(one, [ckpt], [sample], c, [0.95]), 1, dev)[0])
    f32, pick = (statistics.median(v) for v in secs.values())
    rows[-1].update(items_per_s=len(sample) / pick, seconds_per_step=pick)
    rows.append(dict(row=f"grad reps ({proj_dim} dims, {acfg['proj_kind']}, float32 vmap)", E=None, peak_mem_gb=None,
                     items_per_s=len(sample) / f32, picked_items_per_s=len(sample) / pick, ratio=f32 / pick))
    print(f"{rows[-1]['row']:<36} {len(sample) / f32:>10.1f} examples/s; {acfg['dtype']} (picked) "
          f"{len(sample) / pick:.1f}: {f32 / pick:.2f}x")


def analysis_pair(exp, dev, tmp, n_ckpts):
    """analyze.py's CPU defaults against the plain path (PLAIN_ANALYSIS) on a copy of a trained sweep,
    n_ckpts per run, timed in turns (plain, pick, plain, pick) -> the row (its float32_* fields: the plain path)."""
    if not os.path.isdir(exp):
        raise ValueError(f"bench: no trained sweep at analyze_dir={exp!r}")
    copy = os.path.join(tmp, 'analysis_pair')
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(exp, copy, ignore=shutil.ignore_patterns('analysis.json', 'similarity.npz', 'figures', 'resume*.pt'))
    base = dict(analyze.DEFAULTS, exp_dir=copy, device=dev, max_ckpts=n_ckpts)
    paths = {'float32': dict(base, **PLAIN_ANALYSIS), 'pick': base}
    secs, records = {k: [] for k in paths}, {}
    try:
        for _ in range(2):
            for k, c in paths.items():
                cpu_reuse_memory(False)                # each starts from glibc's defaults; the pick turns reuse on
                t = time.perf_counter()
                records[k] = analyze.analyze(c)['records']
                secs[k].append(time.perf_counter() - t)
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    f32, pick, n = min(secs['float32']), min(secs['pick']), len(records['pick'])
    row = dict(row=f'analysis pair ({n} checkpoints)', E=None, peak_mem_gb=None, n_ckpts=n, float32_s=f32, pick_s=pick,
               seconds=secs, ckpts_per_s=n / pick, float32_ckpts_per_s=n / f32, ratio=f32 / pick,
               max_diff=pair_differences(records['float32'], records['pick']))
    print(f"{row['row']}: plain path (float32, vmap) {f32:.1f}s ({n / f32:.2f} checkpoints/s), CPU defaults {pick:.1f}s "
          f"({n / pick:.2f} checkpoints/s): {f32 / pick:.2f}x (best of 2 in turns); largest differences: "
          + ', '.join(f'{k} {v:.3f}' for k, v in row['max_diff'].items()))
    return row


PAIR_MEASURES = {  # what the analysis pair compares between its two paths: name -> a record's value
    'unification act': lambda r: dig(r, 'unification', metrics.HEADLINE, 'act', 'concat'),
    'unification grad': lambda r: dig(r, 'unification', metrics.HEADLINE, 'grad', 'concat'),
    'ood_acc_sample': lambda r: r.get('ood_acc_sample')}


def pair_differences(a, b):
    """Largest |difference| of each PAIR_MEASURES value between two analyses' records of the same
    checkpoints (checkpoints where either is None are skipped)."""
    key = lambda r: (r['run'], r['iter'])
    other = {key(r): r for r in b}
    out = {}
    for name, get in PAIR_MEASURES.items():
        d = [abs(get(r) - get(other[key(r)])) for r in a if get(r) is not None and get(other[key(r)]) is not None]
        out[name] = max(d, default=float('nan'))
    return out


def add_sweep_row(rows, cfg, dev, laptop):
    """The whole-sweep row, trained and analyzed in a folder beside out_file that is removed afterwards."""
    tmp = os.path.join(os.path.dirname(cfg['out_file']) or '.', 'bench_sweep')
    try:
        rows.append(r := sweep_row(cfg, dev, tmp, laptop))
        print(f"{r['row']}: training {r['train_s']:.1f}s (steps {r['step_s']:.1f}s, {r['outside_steps_frac']:.1%} "
              f"outside the steps), analysis {r['analyze_s']:.1f}s ({r['ckpts_per_s']:.1f} checkpoints/s)")
        if dev == 'cpu' and cfg['pair']:
            rows.append(analysis_pair(os.path.join(tmp, 'sweep'), dev, tmp, cfg['pair_ckpts']))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench(cfg):
    dev = pick_device(cfg['device'])
    cuda = dev.startswith('cuda')
    run_counts = cfg['run_counts'] or ([1, 16, 64] if cuda else [1, 4])
    n_steps, n_warm = cfg['steps'] or (200 if cuda else 10), cfg['warmup'] or (20 if cuda else 2)
    proj_dim = cfg['proj_dim'] or (4096 if cuda else 512)
    if cfg['cuda_graph'] and not cuda:
        raise ValueError(f"config error: cuda_graph=True needs a cuda device, not {dev}")
    on_grid = cfg['grid'] if cfg['grid'] != 'auto' else not cuda and all(cfg[k] == DEFAULTS[k] for k in SHAPE_KNOBS)
    n_reps = cfg['n_reps'] or (2048 if cuda else 256 if on_grid else 64)
    # the trainer's picks: bf16 autocast (+ torch.compile by default) on CUDA; on a CPU what train.py picks there
    dtype, use_compile, _ = system_settings(dict(train.DEFAULTS, compile=cfg['compile'], cuda_graph=False), dev)
    ctx = autocast(dev, dtype, cfg['cuda_graph'])
    path = data_gen.prepare(dict(data_gen.DATA_DEFAULTS, n_people=cfg['n_people'], data_dir=cfg['data_dir']))
    meta = data_gen.load_meta(path)
    examples = data_gen.load_split(path, 'train', meta)
    data = train.stack_splits([examples], [meta], dev)
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

    name = torch.cuda.get_device_name() if cuda else cpu_name()
    print(f"bench on {dev} ({name}, {os.cpu_count()} cores, {torch.get_num_threads()} threads), torch {torch.__version__}, "
          f"{cfg['block']} {cfg['n_layer']}x{cfg['n_embd']}, batch {cfg['batch_size']} x {meta['block_size']} tokens, "
          f"{dtype}, compile={use_compile}{' ' + cfg['compile_mode'] if cfg['compile_mode'] else ''}, cuda_graph={cfg['cuda_graph']}")
    laptop = laptop_knobs(cfg) if on_grid else None
    if on_grid:
        lap = dict(cfg, **{k: laptop[k] for k in SHAPE_KNOBS})
        rows += grid_rows(cfg, dev, [('laptop', lap, [1, cfg['laptop_runs']], data, meta),
                                     ('paper', cfg, run_counts, data, meta)], n_warm, n_steps)
        if dev == 'cpu':                               # single runs that cannot share a group: side by side?
            rows += [side_by_side(lap, n_warm, 5 * n_steps), side_by_side(cfg, n_warm, 2 * n_steps, shape='paper')]
        if cfg['profile']:                             # where the picked setting's step spends its time
            rows.append(profile_row(lap, data, meta, cfg['laptop_runs'], dev, n_warm))
    else:
        add('plain loop', 1, plain_loop(cfg, data, model_args, dev, use_compile, ctx), None)
        for E in run_counts:
            step = lockstep(cfg, data, model_args, E, dev, use_compile, ctx)
            add(f'lockstep E={E}', E, step, None)
            if cfg['profile'] and E == max(run_counts):
                rows[-1]['profile'] = profile_step(step, dev)
                print_profile(rows[-1]['profile'])
        if cfg['candidates']:
            for variant in CANDIDATES:
                E = max(run_counts)
                add(f'lockstep E={E} {variant}', E, lockstep(cfg, data, model_args, E, dev, use_compile, ctx, variant), None)
    one = GPT(GPTConfig(**model_args, n_runs=1)).to(dev).eval()
    sample = examples[:n_reps]
    ckpt = dict(adam_v={n: torch.rand_like(p[0]).mul(1e-6) for n, p in one.named_parameters()},
                adam_step=100, adam_eps=1e-8)
    acfg, _ = analyze.pick_settings(dict(analyze.DEFAULTS, proj_dim=proj_dim), dev)
    with torch.no_grad(), autocast(dev, acfg['dtype']):
        add('act reps', None, lambda: represent.activation_reps(one, [sample]), len(sample))
    add(f"grad reps ({proj_dim} dims, {acfg['proj_kind']})", None,
        lambda: represent.gradient_reps(one, [ckpt], [sample], acfg, [0.95]), len(sample))
    rows.append(live_unif_row(laptop or dict(train.DEFAULTS, **{k: cfg[k] for k in SHAPE_KNOBS}), data, examples,
                              meta, cfg['laptop_runs'] if on_grid else max(run_counts), dev, ctx, n_warm, n_steps))
    if on_grid and any(acfg[k] != v for k, v in PLAIN_ANALYSIS.items()):   # the picks against the plain path, in turns
        plain_rows(rows, one, ckpt, sample, acfg, proj_dim, dev)
    save(cfg, dev, name, rows)                     # before the long rows too: a failing one keeps these
    if cfg['analyze_dir']:
        rows.append(analysis_pair(cfg['analyze_dir'], dev, os.path.dirname(cfg['out_file']) or '.', cfg['pair_ckpts']))
        save(cfg, dev, name, rows)
    if cfg['sweep']:
        add_sweep_row(rows, cfg, dev, laptop)
        save(cfg, dev, name, rows)
    print(f"-> {cfg['out_file']}")
    return rows


def save(cfg, dev, name, rows):
    """The table so far as JSON in out_file, with the machine and its provenance."""
    os.makedirs(os.path.dirname(cfg['out_file']) or '.', exist_ok=True)
    with open(cfg['out_file'], 'w') as f:
        json.dump(dict(device=dev, device_name=name, torch=torch.__version__, config=cfg, rows=rows,
                       provenance=provenance(dev)), f, indent=1)


def print_profile(prof):
    print('\n'.join(f"    {p['share']:6.1%} {p['ms_per_step']:8.3f} ms/step  {p['calls']:>4}x  {p['op'][:60]}" for p in prof[:8]))


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
