import pytest

import subprocess
import sys

from configurator import cli, config_keys, configure, file_settings, overrides

DEFAULTS = dict(learning_rate=3e-3, max_iters=100, compile='auto', device='auto', resume=False,
                sweep={}, dataset='', extra=None)
CHOICES = {'compile': ('auto', True, False)}


def test_cli_overrides_and_types():
    cfg = configure(DEFAULTS, ['--learning_rate=1', '--max_iters=7', '--resume=true', '--compile=false',
                               '--device=cuda:0', "--sweep={'seed': [0, 1]}", '--dataset=a=b', '--extra=False'],
                    choices=CHOICES)
    assert cfg['learning_rate'] == 1.0 and isinstance(cfg['learning_rate'], float)   # --lr=1 on a float
    assert cfg['max_iters'] == 7 and cfg['resume'] is True
    assert cfg['compile'] is False and cfg['extra'] is False                        # 'false' is False, not a string
    assert cfg['device'] == 'cuda:0' and cfg['sweep'] == {'seed': [0, 1]}
    assert cfg['dataset'] == 'a=b'                                                   # '=' inside a value
    assert configure(DEFAULTS, ['--resume=True'])['resume'] is True
    assert DEFAULTS['max_iters'] == 100                                              # defaults untouched


def test_config_file_then_cli(tmp_path):
    f = tmp_path / 'c.py'
    f.write_text("import math\nmax_iters = 2 * max_iters\nlearning_rate = 1e-2\n_private = 3\n")
    cfg = configure(DEFAULTS, [str(f), '--learning_rate=5e-4'])
    assert cfg['max_iters'] == 200 and cfg['learning_rate'] == 5e-4


@pytest.mark.parametrize('argv, match', [
    (['--learning_rat=1'], "unknown key 'learning_rat'.*did you mean 'learning_rate'"),
    (['--max_iters=1.5'], 'max_iters expects int, got float'),
    (['--max_iters=abc'], "max_iters='abc' is not a valid int"),
    (['--resume=yes'], 'resume'),
    (['--max_iters'], "malformed argument '--max_iters'"),
    (['nope/missing.py'], 'config file not found: nope/missing.py'),
])
def test_errors_are_one_line(argv, match):
    with pytest.raises(ValueError, match=match) as e:
        configure(DEFAULTS, argv)
    assert '\n' not in str(e.value)


def test_unknown_key_in_config_file(tmp_path):
    f = tmp_path / 'c.py'
    f.write_text("max_iter = 5\n")
    with pytest.raises(ValueError, match="unknown key 'max_iter'.*'max_iters'"):
        configure(DEFAULTS, [str(f)])


def test_config_keys_and_overrides():
    g = dict(lr=1.0, _hidden=2, Upper=3, f=lambda: 0, name='x')
    assert config_keys(g) == dict(lr=1.0, name='x')
    assert overrides(dict(DEFAULTS, max_iters=5), DEFAULTS) == 'max_iters=5'


def test_config_file_edits_in_place_and_bad_types(tmp_path):
    f = tmp_path / 'c.py'
    f.write_text("sweep['seed'] = [0, 1]\n")
    assert configure(DEFAULTS, [str(f)])['sweep'] == {'seed': [0, 1]}
    assert DEFAULTS['sweep'] == {}                      # the defaults are not edited in place
    f.write_text("max_iters = {1, 2}\n")
    with pytest.raises(ValueError, match='max_iters in .* has unsupported type set'):
        configure(DEFAULTS, [str(f)])


def test_choices_are_typed():
    assert configure(DEFAULTS, ['--compile=True'], choices=CHOICES)['compile'] is True
    assert configure(DEFAULTS, ['--compile=auto'], choices=CHOICES)['compile'] == 'auto'
    for bad in ('--compile=1', '--compile=yes', '--compile=None'):
        with pytest.raises(ValueError, match="compile=.* is not one of 'auto', True, False"):
            configure(DEFAULTS, [bad], choices=CHOICES)


def test_broken_config_file_is_one_line(tmp_path):
    f = tmp_path / 'c.py'
    f.write_text("max_iters = 5\nlearning_rate = (\n")
    with pytest.raises(ValueError, match=r"c.py line \d+: ") as e:
        configure(DEFAULTS, [str(f)])
    assert '\n' not in str(e.value)
    f.write_text("max_iters = undefined_name\n")
    with pytest.raises(ValueError, match="c.py: NameError"):
        configure(DEFAULTS, [str(f)])


def test_file_settings_reads_a_settings_block_without_importing(tmp_path):
    f = tmp_path / 's.py'
    f.write_text("import sys\n# ---\nalpha = 1.5   # a comment\nname = 'x'\nDERIVED = 3\nf = sys.exit\n# ---\nbeta = 2\n")
    assert file_settings(str(f)) == {'alpha': 1.5, 'name': 'x'}


def test_cli_turns_errors_into_one_line(capsys):
    def bad():
        raise ValueError('config error: something named\nand more')
    with pytest.raises(SystemExit) as e:
        cli(bad)
    assert e.value.code == 1 and capsys.readouterr().err == 'config error: something named\n'
    with pytest.raises(SystemExit) as e:
        cli(lambda: (_ for _ in ()).throw(KeyboardInterrupt('stopped: resume with --resume=True')))
    assert e.value.code == 130 and 'resume with --resume=True' in capsys.readouterr().err


@pytest.mark.slow                                        # a subprocess each: ~1 s of imports
@pytest.mark.parametrize('script', ['train.py', 'data_gen.py', 'analyze.py', 'bench.py', 'toy.py', 'llm_eval.py',
                                    'plots.py', 'export_hf.py', '-m dev.report', '-m dev.run_queue',
                                    '-m dev.results'])
def test_every_script_answers_help(script):
    root = __file__.rsplit('/tests/', 1)[0]
    run = subprocess.run([sys.executable, *script.split(), '--help'], cwd=root, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and f'python {script}' in run.stdout and not run.stderr.strip(), run.stderr[-500:]
