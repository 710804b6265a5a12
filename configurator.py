"""
Python-file configs plus --key=value overrides, for every script of the project.

    python train.py config/celeb_08.py --max_iters=2000 --device=cpu
    python train.py --help                     # every knob with its default and comment

A script keeps its settings as plain module-level assignments at the top, then:

    DEFAULTS = config_keys(globals())
    CHOICES = {'compile': ('auto', True, False)}          # knobs that take one of a few values
    if __name__ == '__main__':
        cli(lambda: main(configure(DEFAULTS, choices=CHOICES, sources=[__file__])))

Arguments are applied left to right: a path is a Python file executed with the current
settings in scope (its assignments become the new settings), `--key=value` sets one key.
Unlike nanoGPT's exec-based configurator, every mistake is a one-line error that names the
key: an unknown key (in a file or on the command line, with the closest known key), a value
of the wrong type or outside its choices, a malformed argument, a missing or broken config
file. Library code raises ValueError; `cli` turns it into one line on stderr and exit code 1.
"""
import ast
import copy
import difflib
import itertools
import os
import re
import sys
import textwrap

SIMPLE_TYPES = (bool, int, float, str, type(None), list, tuple, dict)


def config_keys(g):
    """The settings of a module: lowercase public names bound to plain values."""
    return {k: v for k, v in g.items()
            if not k.startswith('_') and k.islower() and isinstance(v, SIMPLE_TYPES)}


def _unknown(key, known):
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ''
    return ValueError(f"config error: unknown key '{key}'{hint}")


def _parse(value):
    """A command-line string as a Python value: True/False/true/false, literals, else the string."""
    if value.lower() in ('true', 'false'):
        return value.lower() == 'true'
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def _same(a, b):
    return a == b and type(a) is type(b)       # True == 1, but --compile=1 is not --compile=True


def coerce(key, value, default, choices=None):
    """Check `value` against the type of `default` (or against `choices`); strings (from the
    command line) are parsed. int -> float is allowed (--learning_rate=1), bools accept
    True/False/true/false, a None default takes any literal."""
    if choices is not None:
        v = _parse(value) if isinstance(value, str) else value
        if not any(_same(v, c) for c in choices):
            raise ValueError(f"config error: {key}={value!r} is not one of {', '.join(map(repr, choices))}")
        return v
    kind = type(default)
    if isinstance(value, str) and kind is not str:
        if kind is bool and value.lower() in ('true', 'false'):
            return value.lower() == 'true'
        parsed = _parse(value)
        if parsed is value and default is not None:
            raise ValueError(f"config error: {key}={value!r} is not a valid {kind.__name__}")
        value = parsed
    if default is None or isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind in (list, tuple) and isinstance(value, (list, tuple)):
        return kind(value)
    raise ValueError(f"config error: {key} expects {kind.__name__}, got {type(value).__name__} {value!r}")


def run_config_file(path, cfg):
    """Execute a config file with the current settings in scope; return what it assigned."""
    if not os.path.isfile(path):
        raise ValueError(f"config error: config file not found: {path}")
    scope = copy.deepcopy(cfg)          # a file that edits a dict in place must not edit the defaults

    def include(rel):                  # a config stacked on another (config/laptop/*.py): its path is relative to this file
        inner = os.path.join(os.path.dirname(path), rel)
        if not os.path.isfile(inner):
            raise FileNotFoundError(f"include('{rel}'): no {inner}")
        with open(inner) as f:
            exec(compile(f.read(), inner, 'exec'), scope)
    scope['include'] = include
    try:
        with open(path) as f:
            code = compile(f.read(), path, 'exec')
        exec(code, scope)
    except SyntaxError as e:
        raise ValueError(f"config error: {path} line {e.lineno}: {e.msg}") from None
    except Exception as e:             # a NameError or the like inside the file
        raise ValueError(f"config error: {path}: {type(e).__name__}: {e}") from None
    out = {}
    for k, v in scope.items():
        if k.startswith('_') or k == '__builtins__' or (k not in cfg and callable(v) or type(v).__name__ == 'module'):
            continue                   # helpers of the file itself: imports, functions, _private names
        if not isinstance(v, SIMPLE_TYPES):
            raise ValueError(f"config error: {k} in {path} has unsupported type {type(v).__name__}")
        if k not in cfg or v != cfg[k]:
            out[k] = v
    return out


def configure(defaults, argv=None, choices=None, sources=None):
    """Return a copy of `defaults` updated by the config files and --key=value in argv.
    choices: {key: allowed values}. sources: the files whose settings blocks `--help` prints."""
    argv = sys.argv[1:] if argv is None else argv
    choices = choices or {}
    if '--help' in argv or '-h' in argv:
        print(help_text(defaults, choices, sources or []))
        raise SystemExit(0)
    cfg = dict(defaults)
    for arg in argv:
        if arg.startswith('--'):
            key, eq, value = arg[2:].partition('=')
            if not eq or not key:
                raise ValueError(f"config error: malformed argument '{arg}' (expected --key=value)")
            items = {key: value}
        else:
            items = run_config_file(arg, cfg)
        for key, value in items.items():
            if key not in defaults:
                raise _unknown(key, defaults)
            cfg[key] = coerce(key, value, defaults[key], choices.get(key))
    return cfg


def settings_block(path):
    """The source lines between the first two '# ----' rulers of a script: its settings."""
    with open(path) as f:
        parts = f.read().split('\n# ---')
    return parts[1].split('\n', 1)[1] if len(parts) > 2 else ''


SETTING = re.compile(r'^([a-z_][a-z0-9_]*)\s*=\s*(.*?)\s*(?:#\s*(.*))?$')


ADVANCED = '# advanced'       # in a settings block: '# advanced' alone, the knobs below it are shown after the
                             # others; '# advanced: a, b' (where the order of the knobs means something), those named


def _prune(lines):
    """Help lines without the headings (file '\\n[...]' above group ' ...') that have no knob ('  --') under them."""
    level = lambda line: 2 if line.startswith('  --') else 0 if line.startswith('\n[') else 1
    out = []
    for i, line in enumerate(lines):
        for q in lines[i:]:
            if level(q) == 2:
                out.append(line)
                break
            if q is not line and level(q) <= level(line):
                break
    return out


def help_text(defaults, choices, sources):
    """Every knob with its default and comment, grouped as in the settings blocks of `sources`
    (the lines between the first two '# ----' rulers of each file): first the knobs a user sets,
    then, under their own heading, those below each block's ADVANCED line."""
    usage = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else 'script.py'
    main = sys.modules.get('__main__')
    if getattr(main, '__spec__', None) and main.__spec__.name != '__main__':    # python -m dev.report
        usage = f"-m {main.__spec__.name}"
    lines = [f"usage: python {usage} [config.py ...] [--key=value ...]",
             "config files and --key=value apply left to right; knobs (default, then what it does):"]
    parts, seen = ([], []), set()                 # (the knobs a user sets, the advanced ones), by file
    for path in sources:
        part, named = parts[0], set()
        for out in parts:
            out.append(f"\n[{os.path.basename(path)}]")
        for line in settings_block(path).splitlines():
            m = SETTING.match(line)
            if line.startswith(ADVANCED + ':'):
                named |= {k.strip() for k in line[len(ADVANCED) + 1:].split(",")}
            elif line.strip() == ADVANCED:
                part = parts[1]
            elif m and m.group(1) in defaults and m.group(1) not in seen:
                key, comment = m.group(1), m.group(3) or ''
                seen.add(key)
                if key in choices:
                    comment += f" (one of {', '.join(map(repr, choices[key]))})"
                (parts[1] if key in named else part).append(f"  --{key}={defaults[key]!r}".ljust(34) + f" {comment}")
            elif line.startswith('# ') and not m:
                for out in parts:
                    out.append(f" {line[2:]}")
    basic, advanced = (_prune(p) for p in parts)
    lines += basic + (['', 'advanced (tuning most runs leave alone):'] + advanced if advanced else [])
    rest = [k for k in defaults if k not in seen]
    if rest:
        lines += ['', 'also accepted (knobs of the other scripts that share config files):',
                  *textwrap.wrap(', '.join(rest), 96, initial_indent='  ', subsequent_indent='  ')]
    return '\n'.join(lines)


def file_settings(path):
    """The settings block of a script read from its source, without importing it: {name: value}
    of the literal assignments between its first two '# ----' rulers."""
    out = {}
    for node in ast.parse(settings_block(path)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass                   # not a literal: not a knob
    return config_keys(out)


def sweep_runs(cfg, defaults, choices=None, sweepable=None, why=''):
    """Every combination of cfg['sweep'] ({knob: [values]}) -> [(run name, run config)], each value
    checked as --knob=value would be; one run 'main' without a sweep. A knob outside `sweepable` is a
    one-line error saying `why`."""
    grid = cfg.get('sweep') or {}
    if not grid:
        return [('main', dict(cfg))]
    for k, values in grid.items():
        if k not in defaults:
            raise ValueError(f"config error: sweep over unknown key '{k}'")
        if sweepable is not None and k not in sweepable:
            raise ValueError(f"config error: sweep over '{k}': {why}")
        if not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"config error: sweep['{k}'] must be a non-empty list")
    return [('-'.join(f'{k}{v}' for k, v in zip(grid, combo)),
             dict(cfg, sweep={}, **{k: coerce(k, v, defaults[k], (choices or {}).get(k)) for k, v in zip(grid, combo)}))
            for combo in itertools.product(*grid.values())]


def cli(main, interrupted=None):
    """Run main() as a command line program: a ValueError or OSError is one line on stderr and
    exit code 1 (no traceback: the message names the problem); Ctrl-C prints the interrupt's
    message, else `interrupted` (a string, or a function returning one), and exits 130."""
    try:
        return main()
    except (ValueError, OSError) as e:
        print(str(e).splitlines()[0] if str(e) else type(e).__name__, file=sys.stderr)
        raise SystemExit(1)
    except KeyboardInterrupt as e:
        msg = str(e) or (interrupted() if callable(interrupted) else interrupted)
        print(f"\n{msg or 'interrupted'}", file=sys.stderr)
        raise SystemExit(130)


def overrides(cfg, defaults):
    """The settings that differ from the defaults, as one compact line."""
    diff = {k: v for k, v in cfg.items() if defaults.get(k) != v}
    return ' '.join(f'{k}={v!r}' for k, v in diff.items()) or '(defaults)'
