"""
The files of a run on disk (out/<exp>/<run>/ckpt_<iter>.pt, log.jsonl): checkpoints written while
training goes on, by a background thread, through a temporary file and a rename (never a partial
file), and read back one run at a time; the checks of a fresh start (never mix two runs) and the
log's truncation on resume. train.py writes, analyze.py and the tests read.

A checkpoint holds one run (no run axis): 'model' (weights), 'model_args' (GPTConfig fields,
n_runs=1), 'iter', 'vocab' (the dataset's tokens), 'adam_v' (Adam second moments in bf16, for
gradient representations), 'adam_step', 'adam_eps'.
"""
import glob
import json
import os
import queue
import threading
from dataclasses import fields

import torch

from model import GPT, GPTConfig, load_run


# ----------------------------------------------------------------------------- writing

def atomic_save(obj, path):
    """torch.save through a temporary file and a rename: the file is whole or absent."""
    tmp = path + '.tmp'
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:         # torch reports a full disk or a missing folder as RuntimeError
        if os.path.exists(tmp):
            os.remove(tmp)
        raise OSError(f"write error: cannot write {path} ({str(e).splitlines()[0][:120]})") from None


def background_writer(max_pending=2):
    """A thread that writes files while training goes on. submit(job) queues a function (and
    waits while max_pending jobs are queued, bounding host memory); close() waits for every job
    and re-raises the first error. Jobs write atomically, so no partial file is ever left."""
    jobs, errors = queue.Queue(max_pending), []

    def work():
        while (job := jobs.get()) is not None:
            try:
                if not errors:
                    job()
            except BaseException as e:           # kept for the main thread, which raises it
                errors.append(e)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()

    def submit(job):
        if errors:
            raise errors[0]
        jobs.put(job)

    def close():
        jobs.put(None)
        thread.join()
        if errors:
            raise errors[0]
    return submit, close


def host_copy(x):
    """A CPU copy of a tensor or a nest of them (a snapshot the next step cannot change)."""
    if torch.is_tensor(x):
        return x.detach().to('cpu', copy=True)
    if isinstance(x, dict):
        return {k: host_copy(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(host_copy(v) for v in x)
    return x


def snapshot_ckpts(raw, opt, it, run_dirs, model_args, metas):
    """Copy every run's weights and Adam second moments to the host now; return the job that
    writes one checkpoint per run (weights without the run axis, for gradient representations
    its Adam v in bf16)."""
    names = {p: n for n, p in raw.named_parameters()}
    weights = {n: p.detach().to('cpu', copy=True) for n, p in raw.named_parameters()}      # (E, ...)
    adam_v, step = {}, 0
    for p, st in opt.state.items():
        if 'exp_avg_sq' in st:
            adam_v[names[p]] = st['exp_avg_sq'].detach().to('cpu', torch.bfloat16, copy=True)
            step = int(st['step'])
    eps = opt.defaults['eps']

    def write():
        for r, d in enumerate(run_dirs):          # clone: a view would save every run's storage
            atomic_save(dict(model={n: w[r].clone() for n, w in weights.items()}, model_args=model_args, iter=it,
                             adam_v={n: v[r].clone() for n, v in adam_v.items()}, adam_step=step, adam_eps=eps,
                             vocab=metas[r]['vocab']), os.path.join(d, f'ckpt_{it}.pt'))
    return write


def check_fresh(run_dirs, resume_path, exp, overwrite):
    """Refuse to mix a new run with an earlier one's files; with overwrite, delete those files."""
    old = [p for d in run_dirs for p in [os.path.join(d, 'log.jsonl'), os.path.join(d, 'config.json')]
           + glob.glob(os.path.join(d, 'ckpt_*.pt')) if os.path.exists(p)]
    old += [resume_path] if os.path.exists(resume_path) else []
    if old and not overwrite:
        raise ValueError(f"out_dir {exp} already holds a run ({old[0]}): continue it with --resume=True "
                         "or start over with --overwrite=True")
    for p in old:
        os.remove(p)


def truncate_log(path, upto):
    """On resume, drop the records that will be written again: evaluations from `upto` on (the
    resumed loop re-evaluates its first step), losses after it; and a torn last line."""
    if os.path.exists(path):
        keep = []
        with open(path) as f:
            for line in f:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue                     # a line cut by a crash
                if r['iter'] < upto or (r['iter'] == upto and r['split'] == 'loss'):
                    keep.append(json.dumps(r) + '\n')
        with open(path, 'w') as f:
            f.writelines(keep)


# ----------------------------------------------------------------------------- reading
def load_checkpoint(path, device='cpu', vocab=None):
    """-> (GPT with n_runs=1 in eval mode on device, checkpoint dict). With `vocab` (the dataset's
    token list), a checkpoint trained on another vocabulary is an error, not silent nonsense."""
    if not os.path.isfile(path):
        raise ValueError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        raise ValueError(f"not a checkpoint: {path} ({type(e).__name__})")
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get('model'), dict) \
            or not isinstance(ckpt.get('model_args'), dict):
        raise ValueError(f"not a checkpoint: {path} (needs 'model' and 'model_args')")
    known = {f.name for f in fields(GPTConfig)}
    unknown = sorted(set(ckpt['model_args']) - known)
    if unknown:
        raise ValueError(f"checkpoint {path}: unknown model_args {unknown}")
    if vocab is not None and ckpt.get('vocab', vocab) != vocab:
        raise ValueError(f"checkpoint {path} was trained on another vocabulary "
                         f"({len(ckpt['vocab'])} tokens) than this dataset ({len(vocab)} tokens)")
    model = GPT(GPTConfig(**dict(ckpt['model_args'], n_runs=1)), init=False)
    load_run(model, 0, ckpt['model'])
    return model.to(device).eval(), ckpt
