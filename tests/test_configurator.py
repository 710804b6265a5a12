import pytest

from configurator import config_keys, configure, overrides

DEFAULTS = dict(learning_rate=3e-3, max_iters=100, compile=None, device='auto', resume=False,
                sweep={}, dataset='')


def test_cli_overrides_and_types():
    cfg = configure(DEFAULTS, ['--learning_rate=1', '--max_iters=7', '--resume=true', '--compile=False',
                               '--device=cuda:0', "--sweep={'seed': [0, 1]}", '--dataset=a=b'])
    assert cfg['learning_rate'] == 1.0 and isinstance(cfg['learning_rate'], float)   # --lr=1 on a float
    assert cfg['max_iters'] == 7 and cfg['resume'] is True
    assert cfg['compile'] is False                                                   # None default overridden
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
    with pytest.raises(SystemExit, match=match) as e:
        configure(DEFAULTS, argv)
    assert '\n' not in str(e.value)


def test_unknown_key_in_config_file(tmp_path):
    f = tmp_path / 'c.py'
    f.write_text("max_iter = 5\n")
    with pytest.raises(SystemExit, match="unknown key 'max_iter'.*'max_iters'"):
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
    with pytest.raises(SystemExit, match='max_iters in .* has unsupported type set'):
        configure(DEFAULTS, [str(f)])
