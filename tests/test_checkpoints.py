"""checkpoints.py: every file whole or absent, a full disk named as such, one writer per run."""
import errno
import json
import os
import subprocess
import sys

import pytest
import torch

import checkpoints

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(params=['tmpfs', 'injected'])
def full_disk(request, tmp_path, monkeypatch):
    """(folder, fill): fill(room=300) leaves the folder's filesystem `room` more bytes and returns
    a function that makes room again. 'tmpfs': a real 8 MiB filesystem (mounting needs root on
    Linux; skipped elsewhere); 'injected': writes through checkpoints' open() fail with ENOSPC once
    the folder holds `room` bytes more than when fill() ran."""
    d = tmp_path / 'disk'
    d.mkdir()
    if request.param == 'tmpfs':
        if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', str(d)], capture_output=True).returncode:
            pytest.skip('cannot mount a small filesystem here (needs root on Linux)')
        request.addfinalizer(lambda: subprocess.run(['umount', '-l', str(d)]))

        def fill(room=300):
            st = os.statvfs(d)
            (d / '.filler').write_bytes(b'x' * (st.f_bavail * st.f_frsize - room))
            return lambda: (d / '.filler').unlink()
        return d, fill
    limit = {}

    def used():
        return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)

    class Full:                                   # a file that takes bytes until the disk is "full"
        def __init__(self, f):
            self.f = f

        def write(self, b):
            left = limit['bytes'] - used() if limit else len(b)
            if left <= 0 and b:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.f.write(b[:left])
            self.f.flush()
            if left < len(b):                     # some bytes landed, then the disk was full
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return len(b)

        def __getattr__(self, k):
            return getattr(self.f, k)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def open_(file, mode='r', *args, **kw):       # files opened for writing fill the disk
        f = open(file, mode, *args, **kw)
        return Full(f) if set(mode) & set('wax+') else f
    monkeypatch.setattr(checkpoints, 'open', open_, raising=False)

    def fill(room=300):
        limit['bytes'] = used() + room
        return limit.clear
    return d, fill


def test_atomic_save_on_a_full_disk_names_it_and_keeps_the_old_file(full_disk):
    d, fill = full_disk
    path = str(d / 'ckpt_5.pt')
    checkpoints.atomic_save({'w': torch.ones(10)}, path)
    fill()
    with pytest.raises(OSError, match=f"write error: cannot write {path}: no space left on device$") as e:
        checkpoints.atomic_save({'w': torch.zeros(100_000)}, path)
    assert '\n' not in str(e.value) and 'enforce fail' not in str(e.value)
    assert torch.equal(torch.load(path, weights_only=True)['w'], torch.ones(10))   # the old file, whole
    assert sorted(os.listdir(d)) == sorted(['ckpt_5.pt'] + (['.filler'] if (d / '.filler').exists() else []))


def test_log_lines_are_whole_or_absent_on_a_full_disk(full_disk):
    d, fill = full_disk
    path = str(d / 'log.jsonl')
    checkpoints.append_lines(path, [json.dumps({'iter': 0, 'x': 'a'}) + '\n'])
    fill()
    lines = [json.dumps({'iter': i, 'x': 'b' * 50}) + '\n' for i in range(200)]    # ~12 KB: more than is left
    with pytest.raises(OSError, match=f'cannot write {path}: no space left on device'):
        checkpoints.append_lines(path, lines)
    assert open(path).read() == json.dumps({'iter': 0, 'x': 'a'}) + '\n'          # cut back: no torn line
    with pytest.raises(OSError, match='no space left on device'):
        checkpoints.atomic_write(str(d / 'config.json'), json.dumps({'k': 'v' * 20000}))
    assert not (d / 'config.json').exists() and not (d / 'config.json.tmp').exists()


def test_torch_full_disk_message_is_translated(tmp_path):
    """torch.save to a path reports a full disk as '[enforce fail ...] unexpected pos': the message
    names the disk when the filesystem has no room left (statvfs), else keeps torch's words."""
    err = RuntimeError('[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534')
    assert 'no space left' not in str(checkpoints.write_error(str(tmp_path / 'a.pt'), err))   # room left here
    chained = OSError(errno.ENOSPC, 'No space left on device')
    chained.__context__ = err
    assert str(checkpoints.write_error('x.pt', chained)) == 'write error: cannot write x.pt: no space left on device'


def hold_lock(exp, names):
    """Another process that takes the locks, says so, and keeps them until killed."""
    code = (f"import checkpoints, time; release = checkpoints.lock({str(exp)!r}, {names!r}); "
            "print('locked', flush=True); "
            "time.sleep(120)")
    p = subprocess.Popen([sys.executable, '-c', code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == 'locked'
    return p


def test_one_writer_per_run_and_stale_locks(tmp_path):
    exp = tmp_path / 'exp'
    other = hold_lock(exp, ['main', 'resume.pt'])
    try:
        with pytest.raises(ValueError, match=rf"out_dir {exp} is in use: main is being written by process "
                                             rf"{other.pid} on .* since .*--overwrite=True does not override"):
            checkpoints.lock(str(exp), ['main', 'resume.pt'])
        release = checkpoints.lock(str(exp), ['seed1'])                 # another run of the experiment: free
        release()
    finally:
        other.kill()                                                    # kill -9: no clean-up ran
        other.wait()
    assert (exp / '.locks' / 'main').read_text().startswith(f'process {other.pid} ')   # its file is still there...
    release = checkpoints.lock(str(exp), ['main', 'resume.pt'])        # ...but the lock died with the process
    assert (exp / '.locks' / 'main').read_text().startswith(f'process {os.getpid()} ')
    with pytest.raises(ValueError, match='is in use'):                 # held: also against this process
        checkpoints.lock(str(exp), ['main'])
    release()
    checkpoints.lock(str(exp), ['main'])()


def test_ckpt_iters_log_spaced_and_linear():
    """Log-spaced snapshots from `first` (dense early), and `linear` more every max_iters / linear steps
    (late checkpoints to choose among); the initialisation and the last step always."""
    log = checkpoints.ckpt_iters(2000, 12)
    assert log[:3] == [0, 50, 70] and log[-1] == 2000 and len(log) == 13
    both = checkpoints.ckpt_iters(2000, 12, linear=4)
    assert set(both) == set(log) | {500, 1000, 1500} and both == sorted(both)
    assert sum(it > 1000 for it in both) == sum(it > 1000 for it in log) + 1     # one more late snapshot: 1500
    with pytest.raises(ValueError, match='linear snapshots must be >= 0'):
        checkpoints.ckpt_iters(2000, 12, linear=-1)
