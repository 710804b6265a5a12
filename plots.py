"""
Figures of an analysed experiment, redrawn from out/<exp>/analysis.json and similarity.npz
(analyze.py writes both and calls this), so a figure can be changed without recomputing:

    python plots.py out/sweep_celeb        # -> out/sweep_celeb/figures/*.png
"""
import json
import os
import sys
import textwrap

import numpy as np

from analyze import acc_of, pearson, sim_layers, spread


def load(exp):
    """-> runs, records, similarity matrices {(run, iter): {kind: {layer: (n, n)}}}, summary, settings."""
    path = os.path.join(exp, 'analysis.json')
    if not os.path.isfile(path):
        raise SystemExit(f"plots: no {path}; run analyze.py {exp} first")
    with open(path) as f:
        a = json.load(f)
    if 'runs' not in a:
        raise SystemExit(f"plots: {path} has no 'runs' section (written by an older analyze.py); rerun analyze.py")
    for run in a['runs']:                                              # JSON made the iteration keys strings
        run['log'] = {int(it): v for it, v in run['log'].items()}
    sims = {}
    npz = os.path.join(exp, 'similarity.npz')
    if os.path.isfile(npz):
        with np.load(npz) as z:
            for key in z.files:
                run, it, kind, layer = key.split('|')
                sims.setdefault((run, int(it)), {}).setdefault(kind, {})[layer] = z[key]
    return a['runs'], a['records'], sims, a, a['settings']


def plot(exp):
    runs, records, sims, summary, cfg = load(exp)
    make_figures(runs, records, sims, summary, dict(cfg, exp_dir=exp))


def make_figures(runs, records, sims, summary, cfg):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fdir = os.path.join(cfg['exp_dir'], 'figures')
    os.makedirs(fdir, exist_ok=True)
    final = {r['run']: r for r in records if r['final']}
    ood = {n: acc_of(r, 'ood_test') if acc_of(r, 'ood_test') is not None else r['ood_acc_sample'] for n, r in final.items()}
    cmap = plt.get_cmap('viridis')
    many = len(runs) > 8                                               # many runs: colour = OOD accuracy, else one colour each
    col = {run['name']: cmap(ood[run['name']] or 0.0) if many else f'C{i}' for i, run in enumerate(runs)}

    def save(fig, name, colorbar_ax=None):
        if colorbar_ax is not None and many:
            fig.colorbar(plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, 1)), ax=colorbar_ax,
                         label='final OOD accuracy of the run')
        elif colorbar_ax is not None:
            for a in np.atleast_1d(colorbar_ax):
                a.legend(fontsize=6)
        fig.savefig(os.path.join(fdir, name), dpi=110, bbox_inches='tight')
        plt.close(fig)

    def series(run, f):                                                 # (iters, values) over checkpoints
        rs = [r for r in records if r['run'] == run['name']]
        return [r['iter'] for r in rs], [f(r) for r in rs]

    # similarity matrices for a few runs spread over final OOD accuracy
    order = sorted(runs, key=lambda r: ood[r['name']] or 0.0)
    for run in spread(order, cfg['sim_runs']):
        its = spread(list(run['ckpts']), cfg['sim_ckpts'])
        if (run['name'], its[0]) not in sims:
            continue
        groups = sim_layers(run['n_layer'])
        for kind in ('act', 'grad'):
            fig, axes = plt.subplots(len(groups), len(its), figsize=(2.2 * len(its), 2.3 * len(groups) + 0.8),
                                     squeeze=False, constrained_layout=True)
            for j, it in enumerate(its):
                rec = next(r for r in records if r['run'] == run['name'] and r['iter'] == it)
                for i, g in enumerate(groups):
                    ax = axes[i, j]
                    ax.imshow(sims[(run['name'], it)][kind][g].astype(np.float32), vmin=-1, vmax=1, cmap='RdBu_r')
                    for b in run['sim_bounds']:
                        ax.axhline(b - 0.5, color='k', lw=0.3), ax.axvline(b - 0.5, color='k', lw=0.3)
                    u = rec['unification'][cfg['unif_variant']][kind].get(g) if rec['unification'] else None
                    ax.set_title(f"iter {it}, {g}" + (f"\nunif {u:.2f}" if u is not None else ''), fontsize=7)
                    ax.set_xticks([]), ax.set_yticks([])
            fig.suptitle(textwrap.fill(
                f"{run['name']}: cosine similarity of {'activations' if kind == 'act' else 'gradients'} of training "
                f"examples ordered by fact type > attribute value > language (values: {', '.join(run['sim_values'])}). "
                "Lines separate values; each value block holds language 0 then language 1: two bright sub-blocks "
                "= separated by language, a uniform block = unified.", 40 * len(its) // 2 + 40), fontsize=8)
            save(fig, f"sim_{kind}_{run['name']}.png")

    # final ID / OOD accuracy against every swept knob
    knobs = [k for k in dict.fromkeys(['celeb_frac'] + [k for k in runs[0]['cfg'] if k in records[0]['knobs']])
             if k != 'seed' and not k.endswith('_seed')]
    fig, axes = plt.subplots(1, len(knobs), figsize=(4 * len(knobs), 3.2), squeeze=False)
    for ax, k in zip(axes[0], knobs):
        others = [o for o in knobs if o != k]
        for gi, key in enumerate(sorted({tuple(str(final[n]['knobs'][o]) for o in others) for n in final})):
            rs = [r for r in final.values() if tuple(str(r['knobs'][o]) for o in others) == key]
            xs = sorted({r['knobs'][k] for r in rs}, key=lambda v: (str(type(v)), v))
            lab = ','.join(f'{o}={v}' for o, v in zip(others, key)) or 'runs'
            for split, ls in (('ood_test', '-'), ('id_test', '--')):
                ys = [np.mean([acc_of(r, split) or 0.0 for r in rs if r['knobs'][k] == x]) for x in xs]
                ax.plot([str(x) for x in xs], ys, ls, marker='o', color=f'C{gi}',
                        label=f"{'OOD' if split == 'ood_test' else 'ID'} {lab}" if gi < 6 else None)
        ax.set_xlabel(k), ax.set_ylabel('final accuracy (mean over seeds)'), ax.set_ylim(-0.02, 1.02)
        ax.tick_params(axis='x', labelsize=7, rotation=45)
        ax.legend(fontsize=6)
    fig.suptitle('ID (dashed) and cross-lingual OOD (solid) recall at the end of training', fontsize=9)
    save(fig, 'acc_vs_knobs.png')

    # unification vs OOD across runs (one row per baseline: their scales differ), Pearson r per layer
    names = list(final)
    y = [ood[n] for n in names]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), constrained_layout=True)
    for row, v in enumerate(('same_fact', 'distinct_fact')):
        for ax, kind, layer in ((axes[row, 0], 'act', cfg['unif_layer']), (axes[row, 1], 'grad', 'concat')):
            x = [(final[n]['unification'][v][kind].get(layer) if final[n]['unification'] else None) for n in names]
            ax.scatter([np.nan if a is None else a for a in x], y, c=[col[n] for n in names])
            r = summary['correlations'][v][kind].get(layer)
            ax.set_title(f"{v} baseline: r = {'n/a' if r is None else f'{r:.2f}'}", fontsize=8)
            ax.set_xlabel(f"unification ({'activations' if kind == 'act' else 'gradients'}, {layer})", fontsize=8)
            ax.set_ylabel('final OOD accuracy', fontsize=8)
        corr = summary['correlations'][v]
        layers = list(dict.fromkeys([*corr['act'], *corr['grad']]))
        for i, kind in enumerate(('act', 'grad')):
            axes[row, 2].bar(np.arange(len(layers)) + 0.4 * i, [corr[kind].get(l) or 0.0 for l in layers], 0.4,
                             label='activations' if kind == 'act' else 'gradients')
        axes[row, 2].set_xticks(np.arange(len(layers)) + 0.2, layers, fontsize=7)
        axes[row, 2].axhline(0, color='k', lw=0.5), axes[row, 2].set_ylim(-1, 1), axes[row, 2].legend(fontsize=7)
        axes[row, 2].set_title(f'{v} baseline: Pearson r with OOD accuracy per layer', fontsize=8)
    fig.suptitle('Does unification of the two languages on training facts predict cross-lingual recall? '
                 '(one point per run, final checkpoint)', fontsize=9)
    save(fig, 'unif_vs_ood.png')

    # informativeness / extractability of language vs its footprint
    def fp(run):
        its, vals = series(run, lambda r: r['footprint']['lang'][cfg['unif_rep']][cfg['unif_layer']])
        return max(vals) if cfg['footprint_at'] == 'max' else vals[-1]
    for fname, xlab, getx in (('mi_vs_footprint.png', 'I(language; attribute | fact type) in training data (bits)',
                               lambda r: (r.get('mi_lang_attr') or {}).get('mean')),
                              ('extract_vs_footprint.png', 'I(token; language) (bits): extractability of language',
                               lambda r: r.get('mi_token_lang'))):
        fig, ax = plt.subplots(figsize=(4.5, 3.6))
        xs = [getx(final[run['name']]) for run in runs]
        xs = [np.nan if a is None else a for a in xs]
        ys = [fp(run) for run in runs]
        ax.scatter(xs, ys, c=[col[run['name']] for run in runs])
        r = pearson(xs, ys)
        ax.set_xlabel(xlab, fontsize=8)
        ax.set_ylabel(f"language footprint R^2 ({cfg['footprint_at']} over training)", fontsize=8)
        ax.set_title(f"one point per run{', colour = OOD accuracy' if many else ''}; "
                     f"r = {'n/a' if r is None else f'{r:.2f}'}", fontsize=8)
        save(fig, fname)

    # language vs fact footprint over (early) training
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for run in runs:
        its, lf = series(run, lambda r: r['footprint']['lang'][cfg['unif_rep']][cfg['unif_layer']])
        _, ff = series(run, lambda r: r['footprint']['fact'][cfg['unif_rep']][cfg['unif_layer']])
        axes[0].plot(its, lf, '-', color=col[run['name']], label=None if many else f"{run['name']} language")
        axes[0].plot(its, ff, '--', color=col[run['name']], label=None if many else f"{run['name']} fact")
        axes[1].plot(lf, ff, '-o', ms=2, color=col[run['name']], label=None if many else run['name'])
    axes[0].set_xscale('symlog', linthresh=1), axes[0].set_xlabel('iteration (log)'), axes[0].set_ylabel('R^2')
    axes[0].set_title('language (solid) and fact (dashed) footprint', fontsize=8)
    axes[1].set_xlabel('language footprint R^2'), axes[1].set_ylabel('fact footprint R^2')
    axes[1].set_title('trajectory over checkpoints (early ones first)', fontsize=8)
    fig.suptitle(f"Share of representation variance ({cfg['unif_rep']}, {cfg['unif_layer']}) explained by language "
                 "id vs by fact id", fontsize=9)
    save(fig, 'footprint_early.png', colorbar_ax=axes)

    # per-fact-type accuracy over training, from the logs
    fts = runs[0]['fact_types']
    fig, axes = plt.subplots(1, len(fts), figsize=(3.4 * len(fts), 3.2), squeeze=False, sharey=True)
    for ax, ft in zip(axes[0], fts):
        for run in runs:
            its = [i for i in run['log'] if ft in run['log'][i].get('ood_test', {})]
            ax.plot(its, [run['log'][i]['ood_test'][ft] for i in its], '-', color=col[run['name']],
                    label=None if many else f"{run['name']} OOD")
            ax.plot(its, [run['log'][i].get('id_test', {}).get(ft, np.nan) for i in its], ':', color=col[run['name']],
                    label=None if many else f"{run['name']} ID")
        ax.set_xscale('symlog', linthresh=1), ax.set_title(ft, fontsize=9), ax.set_xlabel('iteration (log)')
    axes[0, 0].set_ylabel('accuracy')
    fig.suptitle('Recall over training per fact type: OOD (solid, other language) and ID (dotted, held-out template)', fontsize=9)
    save(fig, 'acc_curves.png', colorbar_ax=axes[0, -1:])

    # name confusion
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for run in runs:
        its, sh = series(run, lambda r: r['name_confusion']['share'])
        _, ch = series(run, lambda r: r['name_confusion']['chance'])
        ax.plot(its, [np.nan if a is None else a for a in sh], '-o', ms=2, color=col[run['name']], label=None if many else run['name'])
        ax.plot(its, [np.nan if a is None else a for a in ch], ':', color=col[run['name']])
    ax.set_xscale('symlog', linthresh=1), ax.set_xlabel('iteration (log)'), ax.set_ylabel('share of OOD errors')
    ax.set_title('OOD errors that name the attribute of a person sharing a first or last name\n'
                 '(dotted: share expected if errors picked a wrong value at random)', fontsize=8)
    save(fig, 'name_confusion.png', colorbar_ax=ax)

    # selection
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    sel = summary['selection']
    axes[0].bar(list(sel), list(sel.values()), color=['C0'] * (len(sel) - 2) + ['C2', 'C7'])
    axes[0].set_ylabel('mean OOD accuracy of the picked run'), axes[0].tick_params(axis='x', labelsize=7, rotation=30)
    axes[0].set_title(f"run selection from random thirds of {len(final)} runs", fontsize=8)
    cs = summary['ckpt_selection']
    for i, (lab, f) in enumerate((('last best-ID checkpoint', lambda d: d['last_best_id']['ood']),
                                  ('max-unification checkpoint', lambda d: d['unification']['ood'] if d['unification'] else None),
                                  ('best checkpoint (oracle)', lambda d: d['oracle']))):
        axes[1].bar(np.arange(len(cs)) + 0.27 * i, [f(d) or 0.0 for d in cs.values()], 0.27, label=lab)
    axes[1].set_xticks(np.arange(len(cs)) + 0.27, list(cs), fontsize=6, rotation=45)
    axes[1].set_ylabel('OOD accuracy'), axes[1].legend(fontsize=7)
    axes[1].set_title('checkpoint selection per run', fontsize=8)
    save(fig, 'selection.png')



if __name__ == '__main__':
    if len(sys.argv) != 2:
        raise SystemExit("usage: python plots.py out/<exp>")
    plot(sys.argv[1])
