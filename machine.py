"""
The machine: device, dtype, compile, threads, memory and provenance picks, used by every script
(train.py, analyze.py, bench.py, llm_eval.py). model.py holds the model alone; what runs it where lives here.

    pick_device      'auto' -> cuda, then mps, then cpu; a named device checked
    system_settings  dtype, torch.compile and CUDA graph of a device ('auto' = what measures faster there)
    autocast         the mixed-precision context of a dtype
    select_shard     this process's share of a sweep's runs ('i/n', or its rank under torchrun)
    set_threads      torch's CPU threads (the cores other processes leave free)
    usable_cores     the cores this process may run on
    cpu_reuse_memory keep freed memory in the process (faster CPU steps)
    capture_step     a training step as one CUDA graph (one launch instead of hundreds)
    provenance       where and when a result was made: machine, torch, commit, date, command
"""
import ctypes
import datetime
import os
import platform
import subprocess
import sys
import time

import torch



def autocast(dev, dtype, graphed=False):
    """Mixed precision for dtype != 'float32' (its cache off under a CUDA graph); a no-op otherwise.
    Training (train.py) and the analysis' forward passes (analyze.py) both run under it."""
    if dtype == 'float32':
        return torch.autocast('cpu', enabled=False)
    return torch.autocast(dev.split(':')[0], dtype=getattr(torch, dtype), cache_enabled=not graphed)


def pick_device(name='auto'):
    """'auto' = cuda (under torchrun: cuda:LOCAL_RANK), then mps, then cpu; else the name given,
    checked: a device this torch build or machine does not have is a one-line error."""
    if name == 'auto':
        if torch.cuda.is_available():
            return f"cuda:{os.environ['LOCAL_RANK']}" if 'LOCAL_RANK' in os.environ else 'cuda'
        return 'mps' if torch.backends.mps.is_available() else 'cpu'
    kind, _, index = name.partition(':')
    if kind == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f"config error: device={name!r}, but torch {torch.__version__} sees no CUDA GPU here")
    if kind == 'cuda' and index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
        raise ValueError(f"config error: device={name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if kind == 'mps' and not torch.backends.mps.is_available():
        raise ValueError(f"config error: device={name!r}, but MPS is not available here")
    if kind not in ('cuda', 'mps', 'cpu'):
        raise ValueError(f"config error: device={name!r} is not one of auto, cpu, cuda, cuda:N, mps")
    return name


def cpu_has_bf16():
    """Does this CPU multiply bfloat16 natively (x86: AVX512-BF16 or AMX)? Elsewhere oneDNN emulates
    bfloat16 and float32 is faster, so 'auto' settings train in float32 there."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def cpu_can_compile():
    """Is there a C++ compiler for torch.compile's CPU backend (inductor writes C++, then builds it)?"""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
        get_cpp_compiler()
        return True
    except Exception:                              # none found, or a torch without inductor
        return False


def system_settings(cfg, dev):
    """-> (dtype, compile?, CUDA graph?) of the device. 'auto' = what measures faster there with the
    same results: on CUDA bf16 autocast, torch.compile and the step as a CUDA graph; on a CPU bf16
    autocast where it multiplies bfloat16 natively (AVX512-BF16, AMX; else float32, said in one line)
    and torch.compile where a C++ compiler is found (its CPU backend writes C++). bench.py's CPU table
    measures the picks, docs/speed.md has them and their accuracy against float32."""
    cuda, cpu = dev.startswith('cuda'), dev == 'cpu'
    bf16_cpu = cpu and cpu_has_bf16()
    if cfg['dtype'] == 'auto' and cpu and not bf16_cpu:
        print("dtype='auto': this CPU has no native bfloat16 (AVX512-BF16 or AMX): training in float32")
    dtype = cfg['dtype'] if cfg['dtype'] != 'auto' else ('bfloat16' if cuda or bf16_cpu else 'float32')
    use_compile = cfg['compile'] if cfg['compile'] != 'auto' else cuda or (cpu and cpu_can_compile())
    graphed = cfg['cuda_graph'] if cfg['cuda_graph'] != 'auto' else (cuda and use_compile)
    if graphed and not cuda:
        raise ValueError(f"config error: cuda_graph=True needs a cuda device, not {dev}")
    return dtype, use_compile, graphed


def cpu_deterministic(dev, use_compile):
    """Make a compiled CPU step reproducible run to run. inductor fuses the token embedding's backward
    with the first norm's and adds the rows of wte.grad with atomic adds across OpenMP threads, so with
    2+ threads the order of those float sums (and the last bits of every later step) changes from run to
    run; deterministic mode lowers that op to aten's index_put_ instead (no cost measurable at 1 thread,
    within noise at 2: docs/training.md). The setting is global and read when a graph is lowered: call it
    before the first compiled step. CUDA is left alone (deterministic cuBLAS needs a workspace setting)."""
    if dev == 'cpu' and use_compile:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.utils.deterministic.fill_uninitialized_memory = False   # no NaN fill of every torch.empty


def cpu_reuse_memory(on=True):
    """Keep freed memory in this process (glibc's malloc; elsewhere a no-op) -> whether it applied.
    glibc serves a block above its mmap threshold (at most 32 MB) with a fresh mapping and unmaps it
    when freed, so each new one is zero-filled page by page again; activations and per-example
    gradients are such blocks, freed and reallocated at every step. Keeping them (no mmap, no trim, one arena)
    makes CPU training and analysis markedly faster (bench.py's 'reuse' rows, docs/speed.md); the
    cost: the process keeps its peak memory until it exits. on=False restores glibc's defaults."""
    try:
        libc = ctypes.CDLL(None)
        mallopt, trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):              # not glibc (macOS, musl, Windows)
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
    ok = mallopt(M_MMAP_MAX, 0 if on else 65536)   # glibc's defaults: 65536 mappings, 128 KiB, 8 arenas per core
    ok &= mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1 if on else 128 * 1024)
    # one arena: a block freed in another thread's arena lives in a mapped heap that glibc unmaps once it
    # is empty, so those blocks were zero-filled page by page again too (bmm outputs, embedding backward)
    ok &= mallopt(M_ARENA_MAX, 1 if on else 8 * (os.cpu_count() or 1))
    if not on:
        trim(0)                                    # and hand back what was kept
    return bool(ok)


def busy_cores():
    """Cores that other processes keep busy now: runnable tasks other than this one, sampled a few
    times over 0.2 s (the lowest count: a task that ran for an instant is not load). Linux reads
    /proc/loadavg's instantaneous count; elsewhere the 1-minute load average stands in."""
    try:
        counts = []
        for _ in range(5):
            with open('/proc/loadavg') as f:
                counts.append(int(f.read().split()[3].split('/')[0]) - 1)   # 'running/total'; minus this reader
            time.sleep(0.05)
        return max(0, min(counts))
    except (OSError, ValueError, IndexError):
        try:
            return int(os.getloadavg()[0])
        except (OSError, AttributeError):
            return 0


def usable_cores():
    """The cores this process may run on (its affinity where the OS says, else every core)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1


def set_threads(threads, dev, saved=None):
    """torch's CPU threads for a run on `dev` -> the count (0 off CPU, where torch's default stays).
    threads=0 (auto): the cores this process may use less those other processes keep busy at start,
    at least 1; on resume, the count the interrupted run used (`saved`), since the thread count
    changes the last bits of a float sum. torch's default (every core) collapses when another
    process shares them: the threads wait for each other at every operation."""
    if not dev.startswith('cpu'):
        return 0
    if not threads and (os.environ.get('OMP_NUM_THREADS') or os.environ.get('MKL_NUM_THREADS')):
        return torch.get_num_threads()           # the user set torch's count already
    if not threads:
        threads = saved or max(1, usable_cores() - busy_cores())
    torch.set_num_threads(threads)
    return threads


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


def cpu_name():
    """The CPU's model name (Linux: /proc/cpuinfo; else what platform knows)."""
    try:
        with open('/proc/cpuinfo') as f:
            return next(l.split(':', 1)[1].strip() for l in f if l.startswith('model name'))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine() or 'cpu'


def provenance(dev):
    """Where and when the table was measured: machine, cores, torch, commit, date."""
    def git(*args):
        try:
            return subprocess.run(['git', *args], capture_output=True, text=True, timeout=10,
                                  cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ''
    commit = git('rev-parse', '--short', 'HEAD')
    dirty = bool(git('status', '--porcelain', '--untracked-files=no'))
    out = dict(device=dev, cpu=cpu_name(), cores=os.cpu_count(), threads=torch.get_num_threads(), torch=torch.__version__,
               python=platform.python_version(), commit=commit + (' (uncommitted changes)' if commit and dirty else ''),
               date=datetime.datetime.now().strftime('%Y-%m-%d %H:%M'), command=' '.join(['python', *sys.argv]))
    if not dev.startswith('cuda'):
        out['cpu_bf16'] = cpu_has_bf16()                      # what the CPU offers that the picks depend on
    else:
        out['gpu'] = torch.cuda.get_device_name()
    return out
