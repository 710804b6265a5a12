"""
The files of a run on disk (out/<exp>/<run>/ckpt_<iter>.pt, log.jsonl, config.json) and of an
experiment (out/<exp>/resume.pt): every file is written whole or not at all (a temporary file and
a rename; a log line is appended whole or cut back), a full disk is named as such, and one process
at a time writes a run (advisory locks in out/<exp>/.locks/, released on any exit). Checkpoints are
written by a background thread while training goes on and read back one run at a time; the checks
of a fresh start (never mix two runs) and the log's truncation on resume live here too. train.py
writes, analyze.py, export_hf.py and the tests read.

A checkpoint holds one run (no run axis): 'model' (weights), 'model_args' (GPTConfig fields,
n_runs=1), 'iter', 'vocab' (the dataset's tokens), 'adam_v' (Adam second moments in bf16, for
gradient representations), 'adam_step', 'adam_eps'. What resuming needs (the whole sweep's
weights, optimizer state and pending loss records) is in the experiment's resume file, which is
rewritten at every checkpoint and every resume_every seconds (train.py).
"""
import errno
import glob
import hashlib
import json
import os
import queue
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import fields

import numpy as np
import torch

from model import GPT, GPTConfig, load_run
from records import read_records

try:
    import fcntl                                  # POSIX advisory locks
except ImportError:                               # Windows
    fcntl = None
    import msvcrt


# ----------------------------------------------------------------------------- writing

def write_error(path, err):
    """The OSError to raise when writing `path` failed with `err`: one line that names the file and,
    for a full disk, says so (torch reports one as '[enforce fail ...] unexpected pos')."""
    chain, e = [], err
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    full = any(getattr(e, 'errno', None) in (errno.ENOSPC, errno.EDQUOT) for e in chain)
    if not full and any('unexpected pos' in str(e) for e in chain):
        try:                                      # torch lost the errno: look at the disk itself
            full = os.statvfs(os.path.dirname(os.path.abspath(path))).f_bavail == 0
        except (OSError, AttributeError):
            pass
    why = 'no space left on device' if full else str(err).splitlines()[0][:120] if str(err) else type(err).__name__
    return OSError(f"write error: cannot write {path}: {why}")


def check_writable(paths):
    """Before a long job: can each of these files or folders be written (a folder, or the nearest
    existing one above a path still to be made, takes a new file; an existing file is writable)? Else
    the write_error of the first that cannot, so the job fails at its start, not after its work."""
    for path in paths:
        d = os.path.abspath(path) if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
        while not os.path.isdir(d) and os.path.dirname(d) != d:
            d = os.path.dirname(d)
        try:
            fd, probe = tempfile.mkstemp(dir=d, prefix='.writable-')
            os.close(fd)
            os.remove(probe)
            if os.path.exists(path) and not os.access(path, os.W_OK):
                raise PermissionError(errno.EACCES, 'Permission denied')
        except OSError as e:
            raise write_error(path, OSError(e.strerror or str(e))) from None


def atomic_save(obj, path):
    """torch.save through a temporary file and a rename: the file is whole or absent."""
    tmp = path + '.tmp'
    try:
        with open(tmp, 'wb') as f:                # a file object: a full disk surfaces as ENOSPC
            torch.save(obj, f)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:         # torch reports a full disk or a missing folder as RuntimeError
        if os.path.exists(tmp):
            os.remove(tmp)
        raise write_error(path, e) from None


def atomic_write(path, text):
    """A text file through a temporary file and a rename: whole or absent (config.json, timing.json)."""
    tmp = path + '.tmp'
    try:
        with open(tmp, 'w') as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise write_error(path, e) from None


def append_lines(path, lines):
    """Append whole lines to a log, or none: a write cut short (a full disk) is cut back to the
    file's previous end, so the log never ends in a torn line."""
    data = ''.join(lines).encode()
    if not data:
        return
    try:
        f = open(path, 'ab', buffering=0)         # unbuffered: nothing is left to flush at close
    except OSError as e:
        raise write_error(path, e) from None
    with f:
        end = f.seek(0, os.SEEK_END)
        try:
            done = 0
            while done < len(data):                # a full disk may take part of the bytes, then fail
                done += f.write(data[done:])
        except OSError as e:
            try:
                f.truncate(end)
            except OSError:
                pass
            raise write_error(path, e) from None


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


def snapshot_ckpts(gpt, opt, it, run_dirs, model_args, metas):
    """Copy every run's weights and Adam second moments to the host now; return the job that
    writes one checkpoint per run (weights without the run axis, for gradient representations
    its Adam v in bf16)."""
    names = {p: n for n, p in gpt.named_parameters()}
    weights = {n: p.detach().to('cpu', copy=True) for n, p in gpt.named_parameters()}      # (E, ...)
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


# ----------------------------------------------------------------------------- one writer per run

def lock(exp, names):
    """Take the advisory locks out/<exp>/.locks/<name> (one per run a process writes, and one for its
    resume file: shards of a sweep write different ones), held until release() or until the process
    ends however it ends: the kernel drops the locks of a dead process, so a lock file left by a
    kill -9 is free again. A lock that another live process holds is a one-line error naming that
    process. -> release()."""
    held = []

    def release():
        while held:
            held.pop().close()                     # closing the file drops its lock
    folder = os.path.join(exp, '.locks')
    try:
        os.makedirs(folder, exist_ok=True)
        for name in names:
            f = open(os.path.join(folder, name), 'a+')
            try:
                if fcntl:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                else:
                    f.seek(0)
                    msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
            except OSError:
                f.seek(0)
                holder = f.read().strip() or 'another process'
                f.close()
                raise ValueError(f"out_dir {exp} is in use: {name} is being written by {holder}; wait for it to end "
                                 "or stop it (--overwrite=True does not override a live run)") from None
            held.append(f)
            f.seek(0)
            f.truncate()
            f.write(f"process {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            f.flush()
    except OSError as e:
        release()
        raise write_error(folder, e) from None
    except BaseException:
        release()
        raise
    return release


# ----------------------------------------------------------------------------- starting and resuming

def check_fresh(run_dirs, resume_path, exp, overwrite):
    """Refuse to mix a new run with an earlier one's files; with overwrite, delete those files
    (the caller holds the runs' locks: no live process is writing them)."""
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
    resumed loop re-evaluates its first step), losses after it; and a torn last line. The log is
    rewritten through a temporary file: a full disk here loses nothing. A bad line elsewhere than
    last is an error naming it (records.read_records)."""
    if os.path.exists(path):
        keep = [json.dumps(r) + '\n' for r in read_records(path)
                if r['iter'] < upto or (r['iter'] == upto and r['split'] == 'loss')]
        atomic_write(path, ''.join(keep))


# ----------------------------------------------------------------------------- one run, trained once
def run_id(rc, data_keys, free):
    """A run's identity: its dataset's content (split files, vocabulary; not the knobs that named it,
    so two spellings of one dataset are one) and every training knob but those in `free` (system
    and bookkeeping knobs). Two runs with one id train the same path, step for step. -> 12 hex digits"""
    h = hashlib.sha1()
    for name in sorted(os.listdir(rc['dataset_path'])):
        if name.endswith('.jsonl'):
            with open(os.path.join(rc['dataset_path'], name), 'rb') as f:
                h.update(name.encode() + f.read())
    with open(os.path.join(rc['dataset_path'], 'meta.json')) as f:
        meta = json.load(f)
    knobs = {k: v for k, v in sorted(rc.items()) if k not in free and k not in data_keys and k != 'dataset_path'}
    h.update(json.dumps([meta['vocab'], meta['block_size'], knobs], default=str).encode())
    return h.hexdigest()[:12]


def finished(run_dir, max_iters, rid=None):
    """Did the run in run_dir end (its last checkpoint written, its final evaluation logged), and is it run
    `rid` (when given)? Unreadable or torn files: not finished."""
    try:
        with open(os.path.join(run_dir, 'config.json')) as f:
            if rid is not None and json.load(f).get('run_id') != rid:
                return False
        return os.path.exists(os.path.join(run_dir, f'ckpt_{max_iters}.pt')) and any(
            r['iter'] == max_iters and r['split'] != 'loss' for r in read_records(os.path.join(run_dir, 'log.jsonl')))
    except (OSError, ValueError):
        return False


def finished_runs(root):
    """{run id: directory} of the finished runs (finished()) under root/<exp>/<run>/, read in one pass; where
    two share an id, the first by name."""
    out = {}
    for d in sorted(glob.glob(os.path.join(root, '*', '*'))):
        try:
            with open(os.path.join(d, 'config.json')) as f:
                cfg = json.load(f)
        except (OSError, ValueError):
            continue
        if cfg.get('run_id') and cfg['run_id'] not in out and finished(d, cfg['max_iters']):
            out[cfg['run_id']] = d
    return out


def link_run(src, dst, config):
    """A finished run's files under another experiment: checkpoints hard-linked (copied where links
    cannot be made), the log copied, and this experiment's config.json for it (its own knobs and name:
    the same run may be spelled differently, e.g. a data knob that makes no difference at this setting)."""
    os.makedirs(dst, exist_ok=True)
    for path in glob.glob(os.path.join(src, 'ckpt_*.pt')):
        target = os.path.join(dst, os.path.basename(path))
        if not os.path.exists(target):
            try:
                os.link(path, target)
            except OSError:
                shutil.copy2(path, target)
    shutil.copy2(os.path.join(src, 'log.jsonl'), os.path.join(dst, 'log.jsonl'))
    atomic_write(os.path.join(dst, 'config.json'), json.dumps(dict(config, reused_from=src), indent=1, default=str))


# ----------------------------------------------------------------------------- resume points
def resume_file(shard=''):
    """The resume file's name in out_dir: resume.pt, or resume_<i>of<n>.pt for shard 'i/n'."""
    return f"resume_{shard.replace('/', 'of')}.pt" if shard else 'resume.pt'


def ckpt_iters(max_iters, n, first=50, linear=0):
    """The initialisation and n snapshots log-spaced from `first` to max_iters (the last step is
    one of the n): the early, separation phase is sampled the same way however long the run. And
    `linear` more, every max_iters / linear steps: log spacing leaves few late snapshots, and picking
    a checkpoint after same-language recall saturates needs several (docs/verdicts.md, change C3)."""
    if linear < 0:
        raise ValueError(f"checkpoint error: linear snapshots must be >= 0, got {linear}")
    first = min(first, max_iters)
    its = np.geomspace(first, max_iters, n) if n > 1 else [max_iters]
    late = np.linspace(0, max_iters, linear + 1)[1:]
    return sorted(set(np.round(its).astype(int).tolist()) | set(np.round(late).astype(int).tolist()) | {0, max_iters})


def load_resume(path, cfg, run_dirs, dev, free=()):
    """The resume file's state, checked: there, readable, and made by the same config (but for the
    knobs in `free`, which may change on resume)."""
    if not os.path.exists(path):
        ckpts = [glob.glob(os.path.join(d, 'ckpt_*.pt')) for d in run_dirs]
        if all(os.path.exists(os.path.join(d, f"ckpt_{cfg['max_iters']}.pt")) for d in run_dirs):
            raise ValueError("resume error: nothing to resume: every run has its final checkpoint")
        if any(ckpts):                           # an out_dir written before resume points came with checkpoints
            raise ValueError(f"resume error: no resume point at {path}, and the checkpoints hold no optimizer state "
                             "(made by an older version?): start over with --overwrite=True")
        raise ValueError(f"resume error: nothing to resume in {os.path.dirname(path) or '.'} (no resume point, no "
                         "checkpoint): start without --resume=True")
    try:
        state = torch.load(path, map_location=dev, weights_only=True)
        mine = {k: v for k, v in cfg.items() if k not in free}
        theirs = {k: v for k, v in state['cfg'].items() if k not in free}
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


# ----------------------------------------------------------------------------- reading
def load_checkpoint(path, device='cpu', vocab=None):
    """-> (GPT with n_runs=1 in eval mode on device, checkpoint dict). With `vocab` (the dataset's
    token list), a checkpoint trained on another vocabulary is an error, not silent nonsense."""
    if not os.path.isfile(path):
        raise ValueError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        raise ValueError(f"not a checkpoint: {path} (torch.load cannot read it: {type(e).__name__}: "
                         f"{str(e).splitlines()[0][:80] if str(e) else ''})") from None
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
