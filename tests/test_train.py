import glob
import json
import math
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch

import checkpoints
import data_gen
import machine
import train
from configurator import configure
from checkpoints import load_checkpoint
from test_checkpoints import full_disk, hold_lock  # noqa: F401 (a fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny(tmp_path, **kw):
    """A run that trains in a second or two on a CPU."""
    cfg = dict(train.DEFAULTS, out_dir=str(tmp_path / 'out'), data_dir=str(tmp_path / 'data'),
               n_people=60, n_first_names=20, n_last_names=20, n_cities=10, n_templates=3,
               celeb_frac=0.2, n_layer=2, n_head=2, n_embd=32, batch_size=32, max_iters=40,
               warmup_iters=5, eval_interval=20, n_ckpts=3, ckpt_first=1, log_interval=10, eval_max=200,
               device='cpu', compile=False, resume_every=0.0, threads=1)
    cfg.update(kw)
    return cfg


def records(run_dir, split=None):
    with open(os.path.join(run_dir, 'log.jsonl')) as f:
        recs = [json.loads(l) for l in f]
    return [r for r in recs if split is None or r['split'] == split]


def ckpt_vocab(run_dir):
    with open(os.path.join(run_dir, 'config.json')) as f:
        return data_gen.load_meta(json.load(f)['dataset_path'])['vocab']


def final_weights(run_dir):
    path = max(glob.glob(os.path.join(run_dir, 'ckpt_*.pt')), key=lambda p: int(p.split('_')[-1][:-3]))
    return torch.load(path, weights_only=True)['model']


def same_weights(wa, wb, atol=1e-5):
    """Equal weights, except the key bias: its gradient is 0 in exact arithmetic (a constant added to
    every key's logit of a query), so Adam turns last-bit noise of a different matmul order into
    +-lr steps there."""
    def drop_key_bias(k, w):
        return torch.cat([w[:len(w) // 3], w[2 * len(w) // 3:]]) if k.endswith('b_qkv') else w
    return all(torch.allclose(drop_key_bias(k, wa[k]), drop_key_bias(k, wb[k]), atol=atol) for k in wa)


def test_tiny_run_learns(tmp_path):
    cfg = tiny(tmp_path, max_iters=300, learning_rate=1e-2, eval_interval=300, n_ckpts=2, ckpt_first=3)
    exp = train.train(cfg)
    run = os.path.join(exp, 'main')
    loss = [r['loss'] for r in records(run, 'loss')]
    assert loss[-1] < 0.6 * loss[0]
    agg = [r for r in records(run, 'train') if 'template' not in r]
    acc = {r['iter']: r['acc'] for r in agg if r['fact_type'] == 'all' and r['lang'] == 'all'}
    assert acc[0] < 0.15 and acc[300] > 0.5          # chance is ~1/n_cities or lower
    conf = json.load(open(os.path.join(run, 'config.json')))
    assert conf['model_args']['n_runs'] == 1 and conf['celeb_frac'] == 0.2
    # records per (split, fact type, language), aggregates 'all', and per template cells that add up
    keys = {(r['split'], r['fact_type'], r['lang']) for r in records(run) if r['split'] != 'loss'}
    assert ('ood_test', 'birth_year', 'lang0') in keys and ('id_test', 'all', 'all') in keys
    for split in data_gen.SPLITS:
        recs = [r for r in records(run, split) if r['iter'] == 300]
        cells = [r for r in recs if 'template' in r]
        assert {r['template'] for r in cells} <= {0, 1, 2} and all(isinstance(r['template'], int) for r in cells)
        for r in (x for x in recs if 'template' not in x and x['fact_type'] != 'all' and x['lang'] != 'all'):
            mine = [c for c in cells if c['fact_type'] == r['fact_type'] and c['lang'] == r['lang']]
            assert sum(c['n'] for c in mine) == r['n']
            assert sum(c['acc'] * c['n'] for c in mine) / r['n'] == pytest.approx(r['acc'], abs=1e-5)
    # checkpoints: the init, log-spaced from ckpt_first, the last; loadable alone
    its = sorted(int(p.split('_')[-1][:-3]) for p in glob.glob(os.path.join(run, 'ckpt_*.pt')))
    assert its == [0, 3, 300]
    model, ckpt = load_checkpoint(os.path.join(run, 'ckpt_300.pt'), vocab=ckpt_vocab(run))
    assert ckpt['iter'] == 300 and set(ckpt['adam_v']) == set(ckpt['model'])
    assert os.path.getsize(os.path.join(run, 'ckpt_300.pt')) < 1e6     # one run's weights, not the stack
    with pytest.raises(ValueError, match='trained on another vocabulary'):
        load_checkpoint(os.path.join(run, 'ckpt_300.pt'), vocab=ckpt_vocab(run)[:-1] + ['zzz'])
    with pytest.raises(ValueError, match='checkpoint not found'):
        load_checkpoint(os.path.join(run, 'ckpt_7.pt'))
    assert not glob.glob(os.path.join(exp, '**', '*.tmp'), recursive=True)
    assert not os.path.exists(os.path.join(exp, 'resume.pt'))            # finished: nothing to resume


def test_lockstep_equals_separate(tmp_path):
    """Each run of a sweep follows the path it follows alone: its own data order, and its own gradient
    clipping (a clip this low acts at every step; one norm across the runs would couple them)."""
    short = dict(max_iters=20, n_ckpts=2, eval_interval=20, dtype='float32', grad_clip=0.05)   # bf16 rounding would hide a mix-up
    exp = train.train(tiny(tmp_path / 'sweep', sweep={'celeb_frac': [0.0, 0.2], 'seed': [1]}, **short))
    for frac in (0.0, 0.2):
        alone = train.train(tiny(tmp_path / f'alone{frac}', celeb_frac=frac, seed=1, **short))
        a, b = os.path.join(exp, f'celeb_frac{frac}-seed1'), os.path.join(alone, 'main')
        ra = [r for r in records(a) if r['split'] != 'loss']
        rb = [r for r in records(b) if r['split'] != 'loss']
        assert [r['n'] for r in ra] == [r['n'] for r in rb]
        assert [r['acc'] for r in ra] == [r['acc'] for r in rb]
        assert all(abs(x['prob'] - y['prob']) < 1e-4 for x, y in zip(ra, rb))
        wa, wb = final_weights(a), final_weights(b)
        assert same_weights(wa, wb)


def test_lockstep_learning_rate_and_decay_per_run(tmp_path):
    """A sweep over learning_rate x weight_decay trains each run as AdamW with its own values."""
    short = dict(max_iters=20, n_ckpts=2, eval_interval=20, weight_decay=0.5, dtype='float32')
    exp = train.train(tiny(tmp_path / 'sweep', sweep={'learning_rate': [3e-3, 2e-2], 'weight_decay': [0.0, 1.0]},
                           **short))
    for lr, wd in ((3e-3, 1.0), (2e-2, 0.0)):
        alone = train.train(tiny(tmp_path / f'alone{lr}{wd}', **dict(short, learning_rate=lr, weight_decay=wd)))
        wa = final_weights(os.path.join(exp, f'learning_rate{lr}-weight_decay{wd}'))
        wb = final_weights(os.path.join(alone, 'main'))
        assert same_weights(wa, wb)
        loss = records(os.path.join(exp, f'learning_rate{lr}-weight_decay{wd}'), 'loss')
        assert loss[-1]['lr'] == pytest.approx(records(os.path.join(alone, 'main'), 'loss')[-1]['lr'])


def same_logs(a, b):
    """Equal log.jsonl files, loss records included."""
    return records(a) == records(b)


def test_resume_equals_uninterrupted(tmp_path):
    full = train.train(tiny(tmp_path / 'full'))
    cfg = tiny(tmp_path / 'cut')
    train.train(cfg, stop_after=25)             # as if killed at step 25 (last resume point: 20)
    with open(os.path.join(cfg['out_dir'], 'main', 'log.jsonl'), 'a') as f:
        f.write('{"iter": 30, "split": "lo')     # the kill tore the last line
    train.train(dict(cfg, resume=True, device='auto'))    # the device setting may change on resume
    a, b = os.path.join(full, 'main'), os.path.join(cfg['out_dir'], 'main')
    wa, wb = final_weights(a), final_weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert same_logs(a, b)


@pytest.mark.slow
def test_kill_before_the_first_timed_resume_point_resumes_from_the_newest_checkpoint(tmp_path, capsys):
    """The timer writes a resume point every resume_every seconds (an hour here), but every checkpoint
    writes one too: a run killed before the first timed one continues from its newest checkpoint, and
    ends as an uninterrupted run, loss records included (the losses not yet logged are in the resume point)."""
    kw = dict(max_iters=60, n_ckpts=6, ckpt_first=2, resume_every=3600.0, eval_interval=25, log_interval=7)
    full = train.train(tiny(tmp_path / 'full', **kw))
    cfg = tiny(tmp_path / 'cut', **kw)
    train.train(cfg, stop_after=40)             # checkpoints at 0, 2, 4, 8, 15, 30; killed at 40
    run = os.path.join(cfg['out_dir'], 'main')
    assert sorted(int(p.split('_')[-1][:-3]) for p in glob.glob(os.path.join(run, 'ckpt_*.pt'))) == [0, 2, 4, 8, 15, 30]
    assert torch.load(os.path.join(cfg['out_dir'], 'resume.pt'), weights_only=True)['iter'] == 30
    assert not os.path.exists(os.path.join(cfg['out_dir'], 'timing.json'))    # killed runs write no timing
    with pytest.raises(ValueError, match=r'already holds a run .*--resume=True'):    # a plain rerun is refused
        train.train(cfg)
    capsys.readouterr()
    train.train(dict(cfg, resume=True))
    assert 'resuming at iter 30 from' in capsys.readouterr().out
    a = os.path.join(full, 'main')
    wa, wb = final_weights(a), final_weights(run)
    assert all(torch.equal(wa[k], wb[k]) for k in wa) and same_logs(a, run)
    for it in (0, 15, 30, 60):                   # the checkpoints too (30 was written again on resume)
        ca, cb = (torch.load(os.path.join(d, f'ckpt_{it}.pt'), weights_only=True) for d in (a, run))
        assert all(torch.equal(ca['model'][k], cb['model'][k]) for k in ca['model'])
    assert not os.path.exists(os.path.join(cfg['out_dir'], 'resume.pt'))      # finished: nothing to resume
    timing = json.load(open(os.path.join(cfg['out_dir'], 'timing.json')))
    assert timing['n_steps'] == 30 and timing['threads'] == 1 and 0 < timing['step_s'] < timing['train_s']


def test_sigterm_stops_after_the_step_in_flight(tmp_path, monkeypatch):
    """SIGTERM (or Ctrl-C) during step 7: that step finishes, the resume point is the state before step
    8, the error says how to continue, and the continued run equals an uninterrupted one."""
    full = train.train(tiny(tmp_path / 'full'))
    cfg = tiny(tmp_path / 'cut', resume_every=3600.0)
    real_lr, sent = train.get_lr, []

    def get_lr(it, c):                           # called just before step `it`
        if it == 7 and not sent:
            sent.append(it)
            os.kill(os.getpid(), signal.SIGTERM)
        return real_lr(it, c)
    monkeypatch.setattr(train, 'get_lr', get_lr)
    with pytest.raises(KeyboardInterrupt, match=r'stopped at iter 8; resume point written to .*resume.pt: '
                                                r'continue with --resume=True'):
        train.train(cfg)
    assert torch.load(os.path.join(cfg['out_dir'], 'resume.pt'), weights_only=True)['iter'] == 8
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL           # the handlers are put back
    train.train(dict(cfg, resume=True))
    a, b = os.path.join(full, 'main'), os.path.join(cfg['out_dir'], 'main')
    wa, wb = final_weights(a), final_weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa) and same_logs(a, b)


@pytest.mark.slow
def test_a_compiled_cpu_run_is_the_same_run_to_run(tmp_path):
    """Two threads, torch.compile: the same config gives the same bits twice (inductor's embedding backward
    would otherwise add wte.grad's rows in a thread order that changes from run to run)."""
    if not machine.cpu_can_compile():
        pytest.skip('torch.compile on a CPU needs a C++ compiler')
    kw = dict(compile=True, threads=2, dtype='float32', max_iters=30, n_ckpts=2, eval_interval=30)
    a, b = (os.path.join(train.train(tiny(tmp_path / name, **kw)), 'main') for name in 'ab')
    wa, wb = final_weights(a), final_weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa) and same_logs(a, b)


def test_resume_needs_checkpoint_and_same_config(tmp_path):
    cfg = tiny(tmp_path, max_iters=40)
    with pytest.raises(ValueError, match=r'nothing to resume in .* \(no resume point, no checkpoint\): start without'):
        train.train(dict(cfg, resume=True))
    train.train(cfg, stop_after=25)
    with pytest.raises(ValueError, match='config differs .* learning_rate'):
        train.train(dict(cfg, resume=True, learning_rate=1.0))
    train.train(dict(cfg, resume=True))
    with pytest.raises(ValueError, match='nothing to resume: every run has its final checkpoint'):
        train.train(dict(cfg, resume=True))
    os.remove(os.path.join(cfg['out_dir'], 'main', 'ckpt_40.pt'))       # checkpoints of an older version
    with pytest.raises(ValueError, match='no resume point at .*resume.pt, and the checkpoints hold no optimizer'):
        train.train(dict(cfg, resume=True))


def test_resume_file_errors(tmp_path):
    cfg = tiny(tmp_path, max_iters=40)
    train.train(cfg, stop_after=25)
    log = os.path.join(cfg['out_dir'], 'main', 'log.jsonl')
    lines = open(log).readlines()
    open(log, 'w').writelines(lines[:2] + ['{"iter": 10, "spl\n'] + lines[2:])   # damage, not a torn last line
    with pytest.raises(ValueError, match=r'main.log\.jsonl line 3 is not a JSON record') as e:
        train.train(dict(cfg, resume=True))
    assert '\n' not in str(e.value) and len(open(log).readlines()) == len(lines) + 1   # left as it was
    open(log, 'w').writelines(lines)
    path = os.path.join(cfg['out_dir'], 'resume.pt')
    data = open(path, 'rb').read()
    open(path, 'wb').write(data[:len(data) // 2])                     # truncated
    with pytest.raises(ValueError, match='resume.pt is unreadable') as e:
        train.train(dict(cfg, resume=True))
    assert '\n' not in str(e.value)

    class Evil:                                 # a resume file from a shared folder must not run code
        def __reduce__(self):
            return (open, (str(tmp_path / 'pwned'), 'w'))
    torch.save({'model': {}, 'cfg': Evil()}, path, pickle_module=pickle)
    with pytest.raises(ValueError, match='unreadable'):
        train.train(dict(cfg, resume=True))
    assert not (tmp_path / 'pwned').exists()


def test_existing_out_dir_needs_resume_or_overwrite(tmp_path):
    cfg = tiny(tmp_path, max_iters=20, eval_interval=10, n_ckpts=2, ckpt_first=10)
    train.train(cfg)
    with pytest.raises(ValueError, match=r'already holds a run .*--resume=True .*--overwrite=True'):
        train.train(dict(cfg, max_iters=10))
    run = os.path.join(cfg['out_dir'], 'main')
    assert os.path.exists(os.path.join(run, 'ckpt_20.pt'))             # nothing was touched
    train.train(dict(cfg, max_iters=10, overwrite=True))
    assert sorted(os.listdir(run)) == ['ckpt_0.pt', 'ckpt_10.pt', 'config.json', 'log.jsonl']
    assert max(r['iter'] for r in records(run)) == 10


@pytest.mark.slow
def test_overwrite_is_refused_while_another_process_writes_the_run(tmp_path):
    """One writer per run: --overwrite=True does not delete the files of a live run; once that
    process is gone (killed: its lock file stays), the run is free again."""
    cfg = tiny(tmp_path, max_iters=10, eval_interval=10, n_ckpts=1)
    train.train(cfg)
    other = hold_lock(cfg['out_dir'], ['main'])                         # as a training of this run would
    try:
        with pytest.raises(ValueError, match=rf"out_dir .* is in use: main is being written by process {other.pid}"):
            train.train(dict(cfg, overwrite=True))
        assert os.path.exists(os.path.join(cfg['out_dir'], 'main', 'ckpt_10.pt'))   # nothing was deleted
    finally:
        other.kill()
        other.wait()
    train.train(dict(cfg, overwrite=True))


@pytest.mark.slow
def test_full_disk_is_named_and_loses_nothing(tmp_path, full_disk):
    """Training into a filesystem that fills up stops with a one-line error naming the file and the
    full disk; no file is half-written (no .tmp, every log line whole); with room made, --resume=True
    ends as an uninterrupted run."""
    disk, fill = full_disk
    kw = dict(max_iters=60, n_ckpts=6, ckpt_first=2, eval_interval=30, data_dir=str(tmp_path / 'data'))
    full = train.train(tiny(tmp_path / 'full', **kw))
    cfg = tiny(tmp_path, **dict(kw, out_dir=str(disk / 'out')))
    make_room = fill(room=1_600_000)                                   # room for the first few checkpoints
    with pytest.raises(OSError, match=r'^write error: cannot write .*: no space left on device$') as e:
        train.train(cfg)
    assert '\n' not in str(e.value)
    run = os.path.join(cfg['out_dir'], 'main')
    assert not glob.glob(os.path.join(cfg['out_dir'], '**', '*.tmp'), recursive=True)
    for r in records(run):                                             # json.loads of every line: none torn
        assert r['iter'] <= 60
    json.load(open(os.path.join(run, 'config.json')))
    assert torch.load(os.path.join(cfg['out_dir'], 'resume.pt'), weights_only=True)['iter'] > 0
    make_room()
    train.train(dict(cfg, resume=True))
    a = os.path.join(full, 'main')
    wa, wb = final_weights(a), final_weights(run)
    assert all(torch.equal(wa[k], wb[k]) for k in wa) and same_logs(a, run)


@pytest.mark.parametrize('kw, match', [
    (dict(eval_interval=0), 'eval_interval=0 must be >= 1'),
    (dict(max_iters=0), 'max_iters=0 must be >= 1'),
    (dict(max_iters=-5), 'max_iters=-5 must be >= 1'),
    (dict(batch_size=0), 'batch_size=0 must be >= 1'),
    (dict(learning_rate=0.0), 'learning_rate=0.0 must be > 0'),
    (dict(device='cuda'), "device='cuda', but torch .* sees no CUDA"),
    (dict(shard='3/4', sweep={'seed': [0, 1]}), "shard='3/4' has no runs: the sweep has only 2"),
    (dict(shard='4/4'), "shard='4/4' is not 'i/n'"),
    (dict(sweep={'learning_rate': [1e-3, -1.0]}), 'learning_rate=-1.0 must be > 0'),
    (dict(resume=True, overwrite=True), 'contradict'),
])
def test_bad_settings_are_one_line_errors(tmp_path, kw, match):
    if kw.get('device') == 'cuda' and torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    with pytest.raises(ValueError, match=match) as e:
        train.train(tiny(tmp_path, **kw))
    assert '\n' not in str(e.value)
    assert not os.path.exists(tmp_path / 'out' / 'main' / 'log.jsonl')


def test_typed_knobs_on_the_command_line():
    cfg = configure(train.DEFAULTS, ['--compile=false', '--cuda_graph=True', '--dtype=float32'], choices=train.CHOICES)
    assert cfg['compile'] is False and cfg['cuda_graph'] is True
    assert configure(train.DEFAULTS, ['--compile=auto'], choices=train.CHOICES)['compile'] == 'auto'
    for bad, match in (('--compile=maybe', "compile='maybe' is not one of 'auto', True, False"),
                       ('--dtype=bf16', "dtype='bf16' is not one of"), ('--block=llama', "block='llama'")):
        with pytest.raises(ValueError, match=match):
            configure(train.DEFAULTS, [bad], choices=train.CHOICES)


def test_nan_loss_stops_with_run_and_step(tmp_path, monkeypatch):
    monkeypatch.setattr(train, 'get_lr', lambda it, cfg: float('nan'))   # weights become NaN at step 0
    cfg = tiny(tmp_path)
    with pytest.raises(ValueError, match="run 'main' diverged at iter 1"):
        train.train(cfg)
    run = os.path.join(cfg['out_dir'], 'main')
    assert os.path.exists(os.path.join(run, 'ckpt_0.pt')) and not os.path.exists(os.path.join(run, 'ckpt_1.pt'))


def test_sweep_errors(tmp_path):
    with pytest.raises(ValueError, match='differs with template_len_max'):
        train.train(tiny(tmp_path, sweep={'template_len_max': [4, 8]}, template_len_min=4))
    with pytest.raises(ValueError, match="sweep over 'n_layer'"):
        train.train(tiny(tmp_path, sweep={'n_layer': [1, 2]}))
    with pytest.raises(ValueError, match="block='foo' is not one of pythia, gemma2"):
        train.train(tiny(tmp_path, block='foo'))
    with pytest.raises(ValueError, match="unknown key 'celeb'"):
        train.train(tiny(tmp_path, sweep={'celeb': [0.1]}))


def test_ckpt_iters():
    its = checkpoints.ckpt_iters(12000, 20, first=50)
    assert its[0] == 0 and its[1] == 50 and its[-1] == 12000 and len(its) == 21   # init + 20, the last included
    gaps = [b / a for a, b in zip(its[1:], its[2:])]
    assert max(gaps) / min(gaps) < 1.1                   # geometric spacing
    assert checkpoints.ckpt_iters(120000, 20, first=50)[1] == 50    # long runs sample the early phase as densely
    assert checkpoints.ckpt_iters(6, 2, first=50) == [0, 6] and checkpoints.ckpt_iters(10, 1) == [0, 10]


def test_learning_rate_schedule_in_the_log(tmp_path):
    """The loss records carry the learning rate of their last step: linear warmup to the peak, then a
    cosine down to learning_rate * min_lr_frac at max_iters."""
    cfg = tiny(tmp_path, learning_rate=1e-2, warmup_iters=10, max_iters=40, min_lr_frac=0.1, log_interval=1,
               eval_interval=40, n_ckpts=1)
    lrs = {r['iter'] - 1: r['lr'] for r in records(os.path.join(train.train(cfg), 'main'), 'loss')}
    assert sorted(lrs) == list(range(40))
    assert lrs[0] == pytest.approx(1e-2 / 11) and lrs[9] < lrs[10] == pytest.approx(1e-2)
    assert all(lrs[i] >= lrs[i + 1] for i in range(10, 39))               # cosine decays monotonically
    assert lrs[25] == pytest.approx(1e-3 + 0.5 * 9e-3) and lrs[39] == pytest.approx(1e-3 + 4.5e-3 * (1 + math.cos(math.pi * 29 / 30)))


def test_background_writer_drains_and_reports(tmp_path):
    submit, close = checkpoints.background_writer()
    for i in range(5):
        submit(lambda i=i: checkpoints.atomic_save({'i': i}, str(tmp_path / f'{i}.pt')))
    close()
    assert sorted(os.listdir(tmp_path)) == [f'{i}.pt' for i in range(5)]
    submit, close = checkpoints.background_writer()
    submit(lambda: checkpoints.atomic_save({'x': 1}, str(tmp_path / 'missing' / 'x.pt')))
    with pytest.raises(OSError):
        close()


def tiny_config_file(tmp_path, **kw):
    cfg = tiny(tmp_path, **kw)
    keys = ('out_dir', 'data_dir', 'n_people', 'n_first_names', 'n_last_names', 'n_cities', 'n_templates',
            'celeb_frac', 'n_layer', 'n_head', 'n_embd', 'batch_size', 'max_iters', 'warmup_iters',
            'eval_interval', 'n_ckpts', 'ckpt_first', 'log_interval', 'eval_max', 'device', 'compile',
            'resume_every', 'sweep')
    path = tmp_path / 'tiny.py'
    path.write_text(''.join(f'{k} = {cfg[k]!r}\n' for k in keys))
    return str(path), cfg


@pytest.mark.slow
def test_ctrl_c_writes_a_resume_point_and_says_how_to_continue(tmp_path):
    path, cfg = tiny_config_file(tmp_path, max_iters=100000, eval_interval=1000, n_ckpts=2, resume_every=3600.0,
                                 log_interval=1000)
    proc = subprocess.Popen([sys.executable, 'train.py', path], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:                    # wait for the first evaluation: training has started
        if line.startswith('iter 0'):
            break
    time.sleep(1.0)
    t = time.time()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert time.time() - t < 5                  # after the step in flight, not at the next log or evaluation
    assert proc.returncode == 130, err
    assert 'after the step in flight' in out and '--resume=True' in err and 'Traceback' not in err
    resume = os.path.join(cfg['out_dir'], 'resume.pt')
    st = torch.load(resume, weights_only=True)
    assert 0 < st['iter'] < 1000 and len(st['losses']) == st['iter']   # the losses not yet logged, kept
    run = run_script(path, '--max_iters=50')
    assert run.returncode == 1 and 'already holds a run' in run.stderr and len(run.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_torchrun_trains_one_shard_per_process(tmp_path):
    path, cfg = tiny_config_file(tmp_path, max_iters=10, eval_interval=10, n_ckpts=2, sweep={'seed': [0, 1, 2]})
    run = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
                          'train.py', path], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    for name in ('seed0', 'seed1', 'seed2'):                           # rank 0: seeds 0, 2; rank 1: seed 1
        assert os.path.exists(os.path.join(cfg['out_dir'], name, 'ckpt_10.pt'))
    assert '2 run(s) on cpu' in run.stdout and '1 run(s) on cpu' in run.stdout


@pytest.mark.slow
def test_help_prints_every_knob():
    run = subprocess.run([sys.executable, 'train.py', '--help'], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0
    for k, v in train.DEFAULTS.items():
        assert f'--{k}={v!r}' in run.stdout, k
    assert '[data_gen.py]' in run.stdout and '[train.py]' in run.stdout


def run_script(*args, timeout=120):
    return subprocess.run([sys.executable, 'train.py', *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def wait_for(path, proc, timeout=120):
    t = time.time()
    while not os.path.exists(path):
        assert proc.poll() is None and time.time() - t < timeout, proc.stderr.read() if proc.stderr else ''
        time.sleep(0.01)


@pytest.mark.slow
def test_kill_9_anywhere_then_resume_equals_uninterrupted(tmp_path):
    """kill -9 of the training process right after a checkpoint, with no timed resume point yet, and
    again right after the resume started: --resume=True ends with the weights and logs of a run that
    was never interrupted."""
    path, cfg = tiny_config_file(tmp_path, max_iters=300, eval_interval=100, n_ckpts=4, ckpt_first=20,
                                 resume_every=3600.0)
    full = run_script(path, f"--out_dir={tmp_path / 'full'}")
    assert full.returncode == 0, full.stderr
    run = os.path.join(cfg['out_dir'], 'main')
    assert checkpoints.ckpt_iters(300, 4, 20) == [0, 20, 49, 122, 300]
    for i, ckpt in enumerate(('ckpt_49.pt', 'ckpt_122.pt')):     # killed after one, then during the resumed run
        proc = subprocess.Popen([sys.executable, 'train.py', path] + ['--resume=True'] * i, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_for(os.path.join(run, ckpt), proc)
        proc.kill()                                                     # SIGKILL: no handler, no clean-up
        proc.wait()
    assert os.path.exists(os.path.join(cfg['out_dir'], 'resume.pt'))
    done = run_script(path, '--resume=True')
    assert done.returncode == 0 and 'resuming at iter' in done.stdout, done.stderr
    a = os.path.join(tmp_path / 'full', 'main')
    wa, wb = final_weights(a), final_weights(run)
    assert all(torch.equal(wa[k], wb[k]) for k in wa) and same_logs(a, run)


@pytest.mark.slow
def test_two_trainings_into_one_out_dir(tmp_path):
    """A second training into a run that a live process writes is refused, also with --overwrite=True,
    and the first goes on untouched (stopped by SIGTERM once the checks are done: its log holds every
    record from iteration 0, each once, and its resume point is where it stopped)."""
    path, cfg = tiny_config_file(tmp_path, max_iters=100000, eval_interval=1000, n_ckpts=2, log_interval=1)
    first = subprocess.Popen([sys.executable, 'train.py', path], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    for line in first.stdout:                   # wait for the first evaluation: training has started
        if line.startswith('iter 0'):
            break
    for extra in ([], ['--overwrite=True'], ['--resume=True']):
        second = run_script(path, *extra)
        assert second.returncode == 1 and len(second.stderr.strip().splitlines()) == 1, second.stderr
        assert f'is in use: main is being written by process {first.pid}' in second.stderr
    first.send_signal(signal.SIGTERM)
    out, err = first.communicate(timeout=120)
    assert 'resume point written' in err and 'continue with --resume=True' in err, err
    stop = torch.load(os.path.join(cfg['out_dir'], 'resume.pt'), weights_only=True)['iter']
    losses = [r['iter'] for r in records(os.path.join(cfg['out_dir'], 'main'), 'loss')]
    assert stop > 1 and losses == list(range(1, stop + 1))
