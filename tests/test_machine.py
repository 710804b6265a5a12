"""The machine picks: dtype, compile and CUDA graph per device, CPU threads."""
import os

import pytest
import torch

import machine
from model import GPT, GPTConfig


def test_system_settings_follow_the_device(monkeypatch, capsys):
    """'auto' trains in bf16 on a CPU that multiplies bf16 natively, and compiled where a C++ compiler
    is found; without bf16, float32 and one line that says so (nothing when float32 was asked for).
    CUDA: bf16, compile and the CUDA graph; MPS: float32, no compile; a graph off CUDA is an error."""
    import train
    d = train.DEFAULTS
    for bf16, cc, want in [(True, True, ('bfloat16', True, False)), (False, False, ('float32', False, False))]:
        monkeypatch.setattr(machine, 'cpu_has_bf16', lambda bf16=bf16: bf16)       # stand in another CPU
        monkeypatch.setattr(machine, 'cpu_can_compile', lambda cc=cc: cc)
        assert machine.system_settings(d, 'cpu') == want
    out = capsys.readouterr().out
    assert out.count('\n') == 1 and 'no native bfloat16' in out and 'float32' in out
    assert machine.system_settings(dict(d, dtype='float32'), 'cpu')[0] == 'float32' and capsys.readouterr().out == ''
    assert machine.system_settings(dict(d, dtype='float32', compile=False), 'cpu') == ('float32', False, False)
    monkeypatch.setattr(machine, 'cpu_has_bf16', lambda: True)
    assert machine.system_settings(dict(d, compile=False), 'cpu') == ('bfloat16', False, False)
    assert machine.system_settings(d, 'cuda:0') == ('bfloat16', True, True)
    assert machine.system_settings(d, 'cuda') == ('bfloat16', True, True)
    assert machine.system_settings(dict(d, compile=False), 'cuda') == ('bfloat16', False, False)
    assert machine.system_settings(d, 'mps')[:2] == ('float32', False) and capsys.readouterr().out == ''
    with pytest.raises(ValueError, match='cuda_graph=True needs a cuda device'):
        machine.system_settings(dict(d, cuda_graph=True), 'cpu')
    monkeypatch.undo()
    assert isinstance(machine.cpu_can_compile(), bool) and isinstance(machine.cpu_has_bf16(), bool)


def test_threads_auto(monkeypatch):
    """threads=0: the cores this process may use less those other processes keep busy (at least 1);
    on resume, the count of the interrupted run; a count the user set (knob or OMP_NUM_THREADS) stays."""
    before = torch.get_num_threads()
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    monkeypatch.delenv('MKL_NUM_THREADS', raising=False)
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {0, 1, 2, 3}, raising=False)
    try:
        for busy, want in ((0, 4), (1, 3), (3, 1), (9, 1)):
            monkeypatch.setattr(machine, 'busy_cores', lambda busy=busy: busy)
            assert machine.set_threads(0, 'cpu') == want == torch.get_num_threads()
        assert machine.set_threads(0, 'cpu', saved=2) == 2 and machine.set_threads(3, 'cpu') == 3
        assert machine.set_threads(0, 'cuda:0') == 0 and torch.get_num_threads() == 3      # left alone off CPU
        monkeypatch.setenv('OMP_NUM_THREADS', '2')
        assert machine.set_threads(0, 'cpu') == 3
    finally:
        torch.set_num_threads(before)
    monkeypatch.undo()
    assert 0 <= machine.busy_cores() < 1000


def test_failed_capture_falls_back_to_the_plain_step(capsys):
    """Where a step cannot be captured (here: no CUDA at all), machine.capture_step says so in one line and
    returns the plain step, with the weights and optimizer state as they were."""
    model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, vocab_size=20, block_size=8, n_runs=2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in model.parameters()]

    def step():
        loss = model(torch.randint(0, 20, (2, 3, 8))).float().pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss.detach()
    if torch.cuda.is_available():
        pytest.skip('this machine can capture')
    out = machine.capture_step(step, model, opt)
    assert out is step and 'cuda_graph: capture failed' in capsys.readouterr().out
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))
