"""The demo of the README's quick start (config/demo.py): its config resolves to the regime it claims, and the
analysis' last lines show its contrast. Fast: no training (the demo itself takes ~10 minutes on 2 CPU cores)."""
import os

import analyze
import checkpoints
import train
from configurator import configure

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_config_resolves_to_the_laptop_regime():
    cfg = configure(train.DEFAULTS, [os.path.join(ROOT, 'config', 'demo.py')], choices=train.CHOICES)
    laptop = configure(train.DEFAULTS, [os.path.join(ROOT, 'config', 'laptop', 'base.py')], choices=train.CHOICES)
    assert cfg['out_dir'] == 'out/demo' and cfg['n_people'] == 1000 and cfg['n_layer'] == 4
    same = ('n_head', 'n_embd', 'batch_size', 'learning_rate', 'weight_decay', 'warmup_iters', 'eval_max')
    assert {k: cfg[k] for k in same} == {k: laptop[k] for k in same}  # the laptop regime and the paper's optimiser
    assert (cfg['learning_rate'], cfg['weight_decay']) == (train.DEFAULTS['learning_rate'], train.DEFAULTS['weight_decay'])
    fracs = cfg['sweep']['celeb_frac']
    assert list(cfg['sweep']) == ['celeb_frac'] and len(fracs) >= 3 and min(fracs) == 0 and max(fracs) >= 0.2
    runs = train.expand_sweep(cfg)                                   # lockstep: one process, one run per value
    assert [name for name, _ in runs] == [f'celeb_frac{f}' for f in fracs]
    # every checkpoint it writes is analysed by analyze.py's CPU pick (max_ckpts), the last one included
    ckpts = checkpoints.ckpt_iters(cfg['max_iters'], cfg['n_ckpts'], cfg['ckpt_first'])
    assert len(ckpts) <= analyze.AUTO['max_ckpts'][1] and ckpts[-1] == cfg['max_iters'] == 2000


def test_run_table_shows_the_contrast():
    """One line per run: its final ID and OOD accuracy and both unification scores, or why one is missing."""
    def rec(run, ood, unif, why=None):
        r = dict(run=run, iter=2000, final=True, acc={'id_test': {'all': 0.99}, 'ood_test': {'all': ood}},
                 unification=unif and {'normalized': {'act': {'concat': unif, 'L1': 0.1}}})
        return dict(r, unification_null_reason=why) if why else r
    final = [rec('celeb_frac0.0', 0.47, None, 'no celebrity (parallel) facts in the training set'),
             rec('celeb_frac0.2', 0.96, 0.981)]
    lines = analyze.run_table(final, dict(analyze.DEFAULTS), {'celeb_frac0.0': 0.123, 'celeb_frac0.2': 0.876})
    assert 'all layers concatenated' in lines[0] and 'activations' in lines[0] and len(lines) == 4
    assert lines[2].split() == ['celeb_frac0.0', 'ID', '0.99', 'OOD', '0.47', 'unification:', 'facts', 'n/a,', 'values',
                                '0.12', '(no', 'celebrity', '(parallel)', 'facts', 'in', 'the', 'training', 'set)']
    assert lines[3].split() == ['celeb_frac0.2', 'ID', '0.99', 'OOD', '0.96', 'unification:', 'facts', '0.98,', 'values',
                                '0.88']
    layer1 = analyze.run_table(final[1:], dict(analyze.DEFAULTS, unif_layer='L1'), {})
    assert 'layer 1' in layer1[0] and layer1[2].split()[-3:] == ['0.10,', 'values', 'n/a']
