"""
The experiments of the reproduction, in one place. reproduce.sh, the time-budgeted queue
(dev/run_queue.py), the results staging and the README's tables (dev/report.py) and the tests all
read this file; add an experiment here and everything else picks it up.

Each experiment runs at two scales from two config files that differ only in scale:
  paper   config/<name>.py           1,000 people, Pythia-14m shape, batch 256, 12,000 steps: a GPU
  laptop  config/laptop/<name>.py    the same experiment on the laptop regime of config/laptop/base.py
Results go to assets/<name>/ (paper) and assets/laptop/<name>/ (laptop).

    python config/experiments.py                  # every paper experiment in order: name, shards, run-steps, analyze args
    python config/experiments.py --scale=laptop   # the same for the laptop twins
"""
import os
import sys

# name: findings it tests (docs/method.md section 1), what it varies, shards at paper scale (a sweep
# too long for one job splits into this many independent jobs), cost of a run-step relative to a
# word-tokenizer run (character tokenizers make ~5x longer sequences); optionally `analyze`, arguments of its
# analyze.py command (e.g. every checkpoint)
EXPERIMENTS = {
    'sweep_celeb': dict(findings='1, 2, 3, 5', what='ID vs OOD as parallel data grows', shards=1, cost=1.0),
    'balance': dict(findings='4', what='informativeness: src / balanced / imbalanced', shards=1, cost=1.0),
    'shared_tokens': dict(findings='4', what='extractability: filler words shared by the languages '
                          '(baseline of the controls)', shards=1, cost=1.0),
    'shared_tokens_role': dict(findings='4', what='extractability: shared filler words that keep their role '
                               '(template slot, fact type) in both languages', shards=1, cost=1.0),
    'word': dict(findings='4', what='extractability: word tokenizer, trained as long as the char twins', shards=1,
                 cost=1.0),
    'char_low': dict(findings='4', what='extractability: lowercase character tokenizer', shards=1, cost=5.0),
    'char_cased': dict(findings='4', what='extractability: cased character tokenizer', shards=1, cost=5.0),
    'selection': dict(findings='5', what='run and checkpoint selection over celeb_frac x lang_ratio', shards=4, cost=1.0),
    'selection_long': dict(findings='5', what='checkpoint selection where OOD peaks and then falls (long schedule)',
                           shards=1, cost=1.0, analyze='--max_ckpts=0'),
    'templates_02': dict(findings='4', what='extractability: 2 templates', shards=1, cost=1.0),
    'templates_10': dict(findings='4', what='extractability: 10 templates', shards=1, cost=1.0),
    'templates_20': dict(findings='4', what='extractability: 20 templates', shards=1, cost=1.0),
    'people_10x': dict(findings='4', what='control: 10x events', shards=1, cost=1.0),
    'steps_10x': dict(findings='4', what='control: 10x steps', shards=4, cost=1.0),
    'gemma2': dict(findings='1, 2', what='the main sweep with the Gemma-2 block', shards=1, cost=1.0),
    'regularization': dict(findings='', what='weight decay x learning rate: how the optimiser defaults were chosen',
                           shards=1, cost=1.0),
}
SCALES = ('paper', 'laptop')
CONFIG_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(CONFIG_DIR)


def check(name, scale='paper'):
    if name not in EXPERIMENTS:
        raise ValueError(f"experiments error: unknown experiment '{name}' (known: {', '.join(EXPERIMENTS)})")
    if scale not in SCALES:
        raise ValueError(f"experiments error: unknown scale '{scale}' (one of {', '.join(SCALES)})")


def config_path(name, scale='paper'):
    """The config file of an experiment at a scale."""
    check(name, scale)
    return os.path.join(CONFIG_DIR, *(['laptop'] if scale == 'laptop' else []), f'{name}.py')


def assets_dir(name, scale='paper', assets=os.path.join(ROOT, 'assets')):
    """Where the results of an experiment at a scale are kept."""
    check(name, scale)
    return os.path.join(assets, *(['laptop'] if scale == 'laptop' else []), name)


def out_dir(name, scale='paper'):
    """Where train.py writes the runs (as the config file says; relative to the repo)."""
    check(name, scale)
    return os.path.join('out', *(['laptop'] if scale == 'laptop' else []), name)


def run_steps(name, scale='paper'):
    """Run-steps of an experiment (runs x max_iters x cost, over all its shards): what the reproduction's
    time estimates weigh it by."""
    sys.path.insert(0, ROOT)
    import configurator
    import train
    cfg = dict(train.DEFAULTS, **configurator.run_config_file(config_path(name, scale), train.DEFAULTS))
    return round(len(train.expand_sweep(cfg)) * cfg['max_iters'] * EXPERIMENTS[name]['cost'])


if __name__ == '__main__':
    args = sys.argv[1:]
    scale = next((a.split('=', 1)[1] for a in args if a.startswith('--scale=')), 'paper')
    if scale not in SCALES or any(not a.startswith('--scale=') for a in args):
        sys.exit(f"usage: python config/experiments.py [--scale={'|'.join(SCALES)}]")
    for name, e in EXPERIMENTS.items():    # name, shards, run-steps, analyze.py arguments
        print(name, e['shards'] if scale == 'paper' else 1, run_steps(name, scale), e.get('analyze', ''))
