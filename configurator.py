"""
Python-file configs plus --key=value overrides, for every script of the project.

    python train.py config/celeb_08.py --max_iters=2000 --device=cpu

A script keeps its settings as plain module-level assignments at the top, then:

    cfg = configure(config_keys(globals()))
    globals().update(cfg)

Arguments are applied left to right: a path is a Python file executed with the current
settings in scope (its assignments become the new settings), `--key=value` sets one key.
Unlike nanoGPT's exec-based configurator, every mistake is a one-line error that names the
key: an unknown key (in a file or on the command line, with the closest known key), a value
of the wrong type, a malformed argument, a missing config file.
"""
import ast
import copy
import difflib
import os
import sys

SIMPLE_TYPES = (bool, int, float, str, type(None), list, tuple, dict)


def config_keys(g):
    """The settings of a module: lowercase public names bound to plain values."""
    return {k: v for k, v in g.items()
            if not k.startswith('_') and k.islower() and isinstance(v, SIMPLE_TYPES)}


def _unknown(key, known):
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ''
    return SystemExit(f"config error: unknown key '{key}'{hint}")


def coerce(key, value, default):
    """Check `value` against the type of `default`; strings (from the command line) are parsed.
    int -> float is allowed (--lr=1), bools accept True/False/true/false, None takes anything."""
    kind = type(default)
    if isinstance(value, str) and kind is not str:
        if kind is bool and value.lower() in ('true', 'false'):
            return value.lower() == 'true'
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            if default is not None:
                raise SystemExit(f"config error: {key}={value!r} is not a valid {kind.__name__}")
    if default is None or isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind in (list, tuple) and isinstance(value, (list, tuple)):
        return kind(value)
    raise SystemExit(f"config error: {key} expects {kind.__name__}, got {type(value).__name__} {value!r}")


def run_config_file(path, cfg):
    """Execute a config file with the current settings in scope; return what it assigned."""
    if not os.path.isfile(path):
        raise SystemExit(f"config error: config file not found: {path}")
    scope = copy.deepcopy(cfg)          # a file that edits a dict in place must not edit the defaults
    with open(path) as f:
        code = compile(f.read(), path, 'exec')
    exec(code, scope)
    out = {}
    for k, v in scope.items():
        if k.startswith('_') or k == '__builtins__' or (k not in cfg and callable(v) or type(v).__name__ == 'module'):
            continue                   # helpers of the file itself: imports, functions, _private names
        if not isinstance(v, SIMPLE_TYPES):
            raise SystemExit(f"config error: {k} in {path} has unsupported type {type(v).__name__}")
        if k not in cfg or v != cfg[k]:
            out[k] = v
    return out


def configure(defaults, argv=None):
    """Return a copy of `defaults` updated by the config files and --key=value in argv."""
    argv = sys.argv[1:] if argv is None else argv
    cfg = dict(defaults)
    for arg in argv:
        if arg.startswith('--'):
            key, eq, value = arg[2:].partition('=')
            if not eq or not key:
                raise SystemExit(f"config error: malformed argument '{arg}' (expected --key=value)")
            items = {key: value}
        else:
            items = run_config_file(arg, cfg)
        for key, value in items.items():
            if key not in defaults:
                raise _unknown(key, defaults)
            cfg[key] = coerce(key, value, defaults[key])
    return cfg


def overrides(cfg, defaults):
    """The settings that differ from the defaults, as one compact line."""
    diff = {k: v for k, v in cfg.items() if defaults.get(k) != v}
    return ' '.join(f'{k}={v!r}' for k, v in diff.items()) or '(defaults)'
