"""The shape of the code: no import cycle between the scripts, no function over 80 lines, library
code raises ValueError (only --help and the command-line wrapper exit)."""
import ast
import glob
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = {os.path.basename(p)[:-3]: p for p in glob.glob(os.path.join(ROOT, '*.py'))}


def imports(path):
    """The project modules a script imports at any level (top or inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            out |= {a.name.split('.')[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module.split('.')[0])
    return out & set(SCRIPTS)


def test_no_import_cycle():
    graph = {m: imports(p) - {m} for m, p in SCRIPTS.items()}
    state = {}

    def visit(m, path):
        assert state.get(m) != 'open', f"import cycle: {' -> '.join(path + [m])}"
        if state.get(m) is None:
            state[m] = 'open'
            for n in graph[m]:
                visit(n, path + [m])
            state[m] = 'done'
    for m in graph:
        visit(m, [])
    assert graph['configurator'] == graph['records'] == graph['machine'] == set()      # the leaves
    assert graph['plots'] == {'records'} and 'train' not in graph['data_gen']
    assert not graph['model'] & {'machine', 'configurator'}                             # the model alone
    for m in ('plots', 'records'):
        assert 'import torch' not in open(SCRIPTS[m]).read()               # figures redraw without torch


def test_no_function_over_80_lines():
    long = [(m, n.name, n.end_lineno - n.lineno + 1) for m, p in SCRIPTS.items()
            for n in ast.walk(ast.parse(open(p).read())) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.end_lineno - n.lineno + 1 > 80]
    assert not long, long


def test_library_code_raises_value_errors():
    """SystemExit only in configurator (--help, the command-line wrapper) and under __main__."""
    found = []
    for m, p in SCRIPTS.items():
        tree = ast.parse(open(p).read())
        main = [n for n in tree.body if isinstance(n, ast.If) and 'main' in ast.unparse(n.test)]
        in_main = {id(x) for n in main for x in ast.walk(n)}
        for n in ast.walk(tree):
            if isinstance(n, ast.Raise) and n.exc is not None and 'SystemExit' in ast.unparse(n.exc) \
                    and id(n) not in in_main and m != 'configurator':
                found.append((m, n.lineno))
    assert not found, found
