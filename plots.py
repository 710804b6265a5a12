"""
Figures of an analysed experiment, redrawn from out/<exp>/analysis.json and out/<exp>/similarity.npz
(analyze.py writes both and calls this), so a figure can be changed without recomputing anything.

    python plots.py out/<exp>          # e.g. out/sweep_celeb -> out/sweep_celeb/figures/*.png

Reads analysis.json (required) and similarity.npz (optional: without it there are no similarity
figures); writes one PNG per figure (at most 400 KB each) to out/<exp>/figures/, replacing
figures of the same name and removing those this analysis has no data for (e.g. correlations
across runs: they need MIN_RUNS runs). Needs only numpy and matplotlib (no torch): figures redraw
anywhere analysis.json is. Without analysis.json (a sweep still training) it draws the one figure the
logs hold: live unification and OOD accuracy over training (unif_live.png, from each run's log.jsonl).
"""
import io
import json
import os
import sys

import numpy as np

from records import acc_of, dig, final_ood, live_unification, pearson, read_records, sim_layers, spread, stopped

MAX_BYTES = 400_000          # per PNG: a sweep's figures stay light enough to commit and to browse
DPI = 100                    # first try; a figure over MAX_BYTES is redrawn at a lower dpi
SIM_LEVELS = 32              # colours of the similarity colour map: cosine steps of 1/16, PNG-friendly
SETTINGS = dict(sim_runs=4, sim_ckpts=5, unif_rep='act', unif_layer='concat', unif_variant='normalized',
                footprint_at='peak')  # analyze.py's settings the figures read, for an analysis.json without them
MIN_RUNS = 3                 # correlations and run selection across runs need at least this many (analyze.py too)
SPLITS = (('ood_test', 'OOD', '-'), ('id_test', 'ID', '--'))   # (split, short name, line style) in every figure
SPLIT_LABELS = [(*SPLITS[0], 'other language (cross-lingual)'), (*SPLITS[1], 'held-out template, same language')]


def nan_for_none(xs):
    return [np.nan if x is None else x for x in xs]


# ----------------------------------------------------------------------------- loading and saving
def load(exp):
    """-> (analysis dict with int log keys, path of similarity.npz or None); ValueError if unusable."""
    path = os.path.join(exp, 'analysis.json')
    if not os.path.isfile(path):
        raise ValueError(f"no {path}; run analyze.py {exp} first")
    with open(path) as f:
        try:
            analysis = json.load(f)
        except json.JSONDecodeError as err:                            # e.g. analyze.py killed while writing it
            raise ValueError(f"{path} is not valid JSON ({err}); rerun analyze.py") from None
    missing = [k for k in ('runs', 'records', 'settings') if k not in analysis]
    if missing:
        raise ValueError(f"{path} has no {', '.join(missing)} section (an older analyze.py?); rerun analyze.py")
    for run in analysis['runs']:                                       # JSON made the iteration keys strings
        run['log'] = {int(it): v for it, v in run.get('log', {}).items()}
    npz = os.path.join(exp, 'similarity.npz')
    return analysis, npz if os.path.isfile(npz) else None


def square(v):
    """A symmetric matrix from its upper triangle, stored row by row (n (n + 1) / 2 values; uint8
    codes of cosines in [-1, 1] as analyze.py writes them, or floats)."""
    if v.dtype == np.uint8:
        v = v.astype(np.float32) / 127.5 - 1
    n = int(round((np.sqrt(8 * len(v) + 1) - 1) / 2))
    m = np.zeros((n, n), v.dtype)
    m[np.triu_indices(n)] = v
    return m + np.triu(m, 1).T


def sim_index(z):
    """Open similarity.npz -> {(run, iter): {kind: {layer: loader}}}: a matrix is read (and
    decompressed) only when drawn. analyze.py stores each as its upper triangle (1-D)."""
    sims = {}
    for key in z.files:
        run, it, kind, layer = key.split('|')
        sims.setdefault((run, int(it)), {}).setdefault(kind, {})[layer] = \
            lambda key=key: z[key] if z[key].ndim == 2 else square(z[key])
    return sims


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend, imported on first use: importing plots for
    its helpers stays cheap and leaves an interactive session's backend alone."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def save(fig, path, dpi=DPI, max_bytes=MAX_BYTES):
    """Writes fig as a PNG with an adaptive palette of 256 colours (these figures hold few colours,
    so it looks the same at a third of the RGBA size); while over max_bytes (panels of noisy
    similarities), redraws it with fewer pixels. -> path."""
    from PIL import Image                                              # matplotlib depends on Pillow
    while True:
        buf = io.BytesIO()
        fig.savefig(buf, format='png', dpi=dpi, bbox_inches='tight', pil_kwargs={'compress_level': 1})
        im = Image.open(buf).convert('RGB').quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        out = io.BytesIO()
        im.save(out, format='png')                                     # zlib level 6 (optimize: 6x slower, 2% smaller)
        if out.tell() <= max_bytes or dpi < 30:
            break
        dpi *= 0.95 * (max_bytes / out.tell()) ** 0.5                   # bytes ~ pixels ~ dpi^2
    with open(path, 'wb') as f:
        f.write(out.getvalue())
    pyplot().close(fig)
    return path


# ----------------------------------------------------------------------------- what the figures share
def experiment(analysis, sims, exp):
    """The analysis as the figures see it: records by run (in iteration order), final records,
    final OOD accuracy and a colour per run."""
    plt = pyplot()
    runs, records = analysis['runs'], analysis['records']
    final = {r['run']: r for r in records if r['final']}
    ood = {n: final_ood(r) for n, r in final.items()}
    many = len(runs) > 8                                               # many runs: colour = OOD accuracy; few: one each
    cmap = plt.get_cmap('viridis')
    col = {run['name']: cmap(ood.get(run['name']) or 0.0) if many else f'C{i % 10}' for i, run in enumerate(runs)}
    by_run = {}
    for r in sorted(records, key=lambda r: r['iter']):
        by_run.setdefault(r['run'], []).append(r)
    return dict(runs=runs, records=records, by_run=by_run, final=final, ood=ood, many=many, cmap=cmap, col=col,
                sims=sims, summary=analysis, cfg={**SETTINGS, **analysis['settings'], 'exp_dir': exp})


def series(view, name, *keys):
    """(iters, values) of record field keys over a run's checkpoints; None -> NaN."""
    rs = view['by_run'].get(name, [])
    return [r['iter'] for r in rs], nan_for_none([dig(r, *keys) for r in rs])


def legend_or_colorbar(view, fig, axes):
    """Few runs: a legend per axis; many: one colour bar of the final OOD accuracy that colours them."""
    plt = pyplot()
    if view['many']:
        fig.colorbar(plt.cm.ScalarMappable(cmap=view['cmap'], norm=plt.Normalize(0, 1)), ax=axes,
                     label='final OOD accuracy of the run')
    else:
        for ax in np.atleast_1d(axes).ravel():
            ax.legend(fontsize=6)


# ----------------------------------------------------------------------------- figures: one function each
def sim_runs(view):
    """Runs with stored similarity matrices, a few spread over final OOD accuracy, and for each the
    checkpoints to show: [(run, [iters])]."""
    stored = {}
    for name, it in view['sims']:
        stored.setdefault(name, []).append(it)
    runs = sorted((r for r in view['runs'] if r['name'] in stored), key=lambda r: view['ood'].get(r['name']) or 0.0)
    return [(run, spread(sorted(stored[run['name']]), view['cfg']['sim_ckpts']))
            for run in spread(runs, view['cfg']['sim_runs'])]


LAYER_NAMES = {'emb': 'embeddings', 'concat': 'all layers', 'head': 'output head'}


def layer_name(group):
    """'L3' -> 'layer 3'; 'concat' -> 'all layers'."""
    return LAYER_NAMES.get(group, f"layer {group[1:]}" if group[:1] == 'L' and group[1:].isdigit() else group)


def value_blocks(run, n):
    """The blocks of a similarity matrix of n examples ordered by fact type > value > language:
    -> ([(centre, value label)], [(centre, fact type)], language bounds inside the blocks or [])."""
    edges = [0] + list(run.get('sim_bounds', [])) + [n]
    values = run.get('sim_values', [])
    if len(values) != len(edges) - 1:
        values = [''] * (len(edges) - 1)                               # an analysis without labels: lines only
    blocks = [((lo + hi) / 2 - 0.5, v.split('=', 1)[-1]) for lo, hi, v in zip(edges, edges[1:], values)]
    types = {}
    for lo, hi, v in zip(edges, edges[1:], values):
        span = types.setdefault(v.split('=')[0], [lo, hi])
        span[1] = hi
    return blocks, [((lo + hi) / 2 - 0.5, ft) for ft, (lo, hi) in types.items() if ft], run.get('sim_lang_bounds', [])


def sim_panel(ax, m, run, cmap, values=True, types=True):
    """One similarity matrix m (n, n) on ax, with lines between attribute values (dotted between languages
    where the analysis stores them); attribute values label the rows if `values`, fact types the columns if
    `types`. -> the image (for a colour bar)."""
    ax.set_xticks([]), ax.set_yticks([])
    # resampling the data (not the colours) keeps the panel to the map's colours: a small palette PNG
    img = ax.imshow(m, vmin=-1, vmax=1, cmap=cmap, interpolation='antialiased', interpolation_stage='data')
    blocks, fact_types, lang_bounds = value_blocks(run, len(m))
    for b, ls in ((np.asarray(run.get('sim_bounds', []), float) - 0.5, '-'), (np.asarray(lang_bounds, float) - 0.5, ':')):
        ax.hlines(b, -0.5, len(m) - 0.5, color='k', lw=0.3, ls=ls), ax.vlines(b, -0.5, len(m) - 0.5, color='k', lw=0.3,
                                                                             ls=ls)
    if values:
        ax.set_yticks([c for c, _ in blocks], [v for _, v in blocks], fontsize=6)
    if types:
        ax.set_xticks([c for c, _ in fact_types], [t.replace('_', '\n') for _, t in fact_types], fontsize=6)
    return img


def fig_similarity(view, run, its, kind):
    """Cosine similarity of the similarity examples: checkpoints as columns, layer groups as rows; each
    panel's axes are the examples, labelled by fact type (x) and attribute value (y), with lines between
    values (and between languages where the analysis stores them)."""
    plt = pyplot()
    cfg, name, sims = view['cfg'], run['name'], [view['sims'][(run['name'], it)].get(kind, {}) for it in its]
    stored = [g for s in sims for g in s]
    groups = [g for g in dict.fromkeys(sim_layers(run.get('n_layer', 1)) + stored) if g in stored]
    # a fixed grid, not constrained layout (which costs more than drawing the twenty panels); inches:
    # panels, then margins for the value labels (left), fact types (bottom), title (top), colour bar (right)
    w, h, left, bottom, top, bar = 1.9 * len(its), 2.05 * len(groups), 1.45, 0.75, 0.75, 0.9
    W, H = left + w + bar, bottom + h + top
    fig, axes = plt.subplots(len(groups), len(its), figsize=(W, H), squeeze=False,
                             gridspec_kw=dict(left=left / W, right=(left + w) / W, bottom=bottom / H,
                                              top=(bottom + h) / H, wspace=0.06, hspace=0.28))
    cmap, img = plt.get_cmap('RdBu_r', SIM_LEVELS), None
    for j, (it, sim) in enumerate(zip(its, sims)):
        rec = next((r for r in view['by_run'].get(name, []) if r['iter'] == it), {})
        for i, g in enumerate(groups):
            ax = axes[i, j]
            ax.set_xticks([]), ax.set_yticks([])
            head = f"iter {it}\n" if i == 0 else ''                     # checkpoints: column headers
            if j == 0:
                ax.set_ylabel(layer_name(g), fontsize=9, fontweight='bold', labelpad=4)
            if g not in sim:
                ax.set_title(head + 'not stored', fontsize=7)
                continue
            img = sim_panel(ax, load_sim(sim[g]), run, cmap, values=j == 0, types=i == len(groups) - 1)
            u = dig(rec, 'unification', cfg['unif_variant'], kind, g)
            ax.set_title(head + (f"unif {u:.2f}" if u is not None else ''), fontsize=7)
    axes[-1, len(its) // 2].set_xlabel('training examples by fact type > attribute value > language '
                                       '(in each value block language 0, then 1)', fontsize=7, labelpad=6)
    if img is not None:
        fig.colorbar(img, cax=fig.add_axes([(left + w + 0.2) / W, 0.25, 0.15 / W, 0.5]), label='cosine similarity')
    fig.suptitle(f"{name}: cosine similarity of the {'activations' if kind == 'act' else 'gradients'} of training "
                 f"examples (unif: {cfg['unif_variant']} unification score)\ntwo bright sub-blocks per value = "
                 "separated by language; one uniform block = unified", y=1 - 0.1 / H, va='top', fontsize=8)
    return fig


def load_sim(entry):
    """A stored similarity matrix (an array, or sim_index's loader of one) as float32 (n, n)."""
    return np.asarray(entry() if callable(entry) else entry, np.float32)


def lang_groups(run, n, per_value):
    """The examples of an n x n similarity matrix by value block and language: [(fact type, [indices of
    language 0, of language 1, ...])]. Inside a value block analyze.py puts language 0 first, then 1, ...,
    per_value // n_langs examples each; where the analysis stores no language bounds, a block of another
    size (a language with fewer examples) cannot be split and is left out."""
    edges = [0] + list(run.get('sim_bounds', [])) + [n]
    values = run.get('sim_values') or [''] * (len(edges) - 1)
    n_langs = (run.get('cfg') or {}).get('n_langs', 2)
    lang_bounds = run.get('sim_lang_bounds')
    out = []
    for lo, hi, v in zip(edges, edges[1:], values):
        if lang_bounds:                                                # stored: split where they say
            cuts = [lo] + [b for b in lang_bounds if lo < b < hi] + [hi]
        elif hi - lo == n_langs * (per_value // n_langs):
            cuts = [lo + k * (per_value // n_langs) for k in range(n_langs + 1)]
        else:
            continue
        if len(cuts) == n_langs + 1:
            out.append((v.split('=')[0], [np.arange(a, b) for a, b in zip(cuts, cuts[1:])]))
    return out


def mean_within(m, x):
    """Mean cosine between the examples x (>= 2 indices) of a similarity matrix m, pairs i != j."""
    sub = m[np.ix_(x, x)]
    return (sub.sum() - np.trace(sub)) / (len(x) * (len(x) - 1))


def block_unification(m, groups):
    """The unification of a similarity matrix's examples, as metrics.unification's headline score but over
    attribute values instead of facts: sum (cross - base) / sum (within - base) over value blocks and
    languages, where within = mean cosine between examples of the value in one language (pairs i != j),
    cross = to its examples in the other languages, base = to the other values of its fact type in the same
    language. 1: the other language's examples are as close as the same language's; 0: no closer than
    other values (a language checkerboard). None where nothing can be scored or the value signal is <= 0.
    m (n, n); groups from lang_groups. Defined for every run, also one without parallel facts (whose
    unification score is None: it has no fact in two languages)."""
    num = den = 0.0
    for b, (ft, langs) in enumerate(groups):
        for a, x in enumerate(langs):
            others = [g[1][a] for c, g in enumerate(groups) if c != b and g[0] == ft and len(g[1]) > a]
            other_langs = [y for l, y in enumerate(langs) if l != a and len(y)]
            if len(x) < 2 or not others or not other_langs:
                continue
            base = m[np.ix_(x, np.concatenate(others))].mean()
            num += np.mean([m[np.ix_(x, y)].mean() for y in other_langs]) - base
            den += mean_within(m, x) - base
    return float(num / den) if den > 0 else None


def contrast_runs(view):
    """The two runs of the contrast figure, among those with stored similarity matrices: the lowest and
    the highest celeb_frac (of equal ones, the lower / higher final OOD accuracy), or, where celeb_frac
    does not vary, the lowest and the highest final OOD accuracy. -> (low, high) run dicts, or None."""
    stored = {name for name, _ in view['sims']}
    runs = [r for r in view['runs'] if r['name'] in stored]
    if len(runs) < 2:
        return None
    ood = lambda r: view['ood'].get(r['name']) or 0.0
    frac = lambda r: (r.get('cfg') or {}).get('celeb_frac')
    if len({frac(r) for r in runs}) > 1 and all(isinstance(frac(r), (int, float)) for r in runs):
        key = lambda r: (frac(r), ood(r))
    else:
        key = ood
    runs = sorted(runs, key=key)
    return runs[0], runs[-1]


def language_gap(m, groups):
    """How much brighter a similarity matrix's same-language sub-blocks are than its cross-language ones: the
    mean over value blocks and languages of within - cross (block_unification's terms, in cosine units, with
    no division: stable where a run's value signal is still small). 0: no checkerboard. None: nothing to score."""
    gaps = []
    for ft, langs in groups:
        for a, x in enumerate(langs):
            others = [y for l, y in enumerate(langs) if l != a and len(y)]
            if len(x) >= 2 and others:
                gaps.append(mean_within(m, x) - np.mean([m[np.ix_(x, y)].mean() for y in others]))
    return float(np.mean(gaps)) if gaps else None


def contrast_point(view, low, high, kind):
    """Where the two runs' similarity matrices differ most: the layer and checkpoint, among those stored
    for both, where the language checkerboard of `low` exceeds that of `high` the most (language_gap; the
    normalized block_unification would divide by a value signal that is near 0 early in training).
    -> (layer, iter, language_gap of low, of high); the last checkpoint at the headline layer (or the last
    stored) and None, None where no pair can be scored."""
    per_value = view['cfg'].get('sim_per_value', 50)
    common = sorted({it for name, it in view['sims'] if name == low['name']}
                    & {it for name, it in view['sims'] if name == high['name']})
    best, fallback = None, None
    for it in common:
        a, b = view['sims'][(low['name'], it)].get(kind, {}), view['sims'][(high['name'], it)].get(kind, {})
        for layer in [g for g in a if g in b]:
            if fallback is None or it > fallback[1] or layer == view['cfg']['unif_layer']:
                fallback = (layer, it, None, None)
            (ma, ga), (mb, gb) = [(m, lang_groups(r, len(m), per_value)) for m, r in
                                  ((load_sim(a[layer]), low), (load_sim(b[layer]), high))]
            gap_a, gap_b = language_gap(ma, ga), language_gap(mb, gb)
            if gap_a is not None and gap_b is not None and (best is None or gap_a - gap_b > best[0]):
                best = (gap_a - gap_b, (layer, it, gap_a, gap_b))
    return best[1] if best else fallback


def fig_contrast(view):
    """The phenomenon at a glance: the similarity matrices of the run with the least parallel data and of
    the one with the most, side by side, at the layer and checkpoint where they differ most (contrast_point):
    a language checkerboard (two sub-blocks per attribute value) against unified blocks."""
    plt = pyplot()
    pair = contrast_runs(view)
    kind = view['cfg']['unif_rep']
    point = pair and contrast_point(view, *pair, kind)
    if not point:
        return None
    layer, it, *scores = point
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.6), gridspec_kw=dict(left=0.1, right=0.88, bottom=0.12, top=0.76,
                                                                         wspace=0.08))
    cmap, img = plt.get_cmap('RdBu_r', SIM_LEVELS), None
    for j, (ax, run, score) in enumerate(zip(axes, pair, scores)):
        rec = next((r for r in view['by_run'].get(run['name'], []) if r['iter'] == it), {})
        img = sim_panel(ax, load_sim(view['sims'][(run['name'], it)][kind][layer]), run, cmap, values=j == 0)
        ood = acc_of(rec, 'ood_test')
        final = view['ood'].get(run['name'])
        ood_txt = f"OOD {ood:.2f}" if ood is not None else 'OOD n/a'
        if final is not None and rec and not rec.get('final'):
            ood_txt += f" (final {final:.2f})"
        ax.set_title(f"{run['name']}\nceleb_frac {(run.get('cfg') or {}).get('celeb_frac')}, {ood_txt}\n"
                     f"{layer_name(layer)}, iter {it}: language gap {'n/a' if score is None else f'{score:.2f}'}",
                     fontsize=8)
    axes[0].set_xlabel('training examples by fact type > attribute value > language', fontsize=7)
    fig.colorbar(img, cax=fig.add_axes([0.9, 0.25, 0.015, 0.45]), label='cosine similarity')
    fig.suptitle(f"Cosine similarity of the {'activations' if kind == 'act' else 'gradients'} of training examples "
                 "with the same attribute values, in language 0 then 1 inside each block\n"
                 "left: little parallel data, each value splits into two language sub-blocks (a checkerboard); "
                 "right: much, one uniform block per value (unified)\nshown where the two differ most in language "
                 "gap: mean similarity to the same language's examples of a value minus to the other language's",
                 fontsize=8)
    return fig


def fig_acc_vs_knobs(view):
    """Final ID / OOD accuracy against every swept knob, one line per setting of the other knobs."""
    plt = pyplot()
    final, runs = view['final'], view['runs']
    swept = next(iter(final.values()), {}).get('knobs', {})
    knobs = [k for k in dict.fromkeys(['celeb_frac'] + [k for k in runs[0].get('cfg', {}) if k in swept])
             if k in swept and k != 'seed' and not k.endswith('_seed')]
    if not knobs:
        return None
    fig, axes = plt.subplots(1, len(knobs), figsize=(4 * len(knobs), 3.2), squeeze=False)
    for ax, k in zip(axes[0], knobs):
        others = [o for o in knobs if o != k]
        setting = lambda r: tuple(str(r['knobs'].get(o)) for o in others)   # one line per setting of the others
        for gi, key in enumerate(sorted({setting(r) for r in final.values()})):
            rs = [r for r in final.values() if setting(r) == key]
            xs = sorted({r['knobs'].get(k) for r in rs}, key=lambda v: (str(type(v)), v))
            lab = ','.join(f'{o}={v}' for o, v in zip(others, key))         # '' when one knob is swept
            for split, short, ls in SPLITS:
                ys = [np.mean([acc_of(r, split) or 0.0 for r in rs if r['knobs'].get(k) == x]) for x in xs]
                ax.plot([str(x) for x in xs], ys, ls, marker='o', color=f'C{gi % 10}',
                        label=f"{short} {lab}".strip() if gi < 6 else None)
        ax.set_xlabel(k), ax.set_ylabel('final accuracy (mean over seeds)'), ax.set_ylim(-0.02, 1.02)
        ax.tick_params(axis='x', labelsize=7, rotation=45)
        ax.legend(fontsize=6)
    fig.suptitle('ID (dashed) and cross-lingual OOD (solid) recall at the end of training', fontsize=9)
    return fig


def fig_unif_vs_ood(view):
    """Unification vs final OOD accuracy across runs, one row per unification variant (their scales
    differ), with the Pearson r of every layer."""
    plt = pyplot()
    cfg, final, corrs = view['cfg'], view['final'], view['summary'].get('correlations') or {}
    if not corrs:
        return None
    names = list(final)
    y = nan_for_none([view['ood'][n] for n in names])
    fig, axes = plt.subplots(len(corrs), 3, figsize=(13, 3.3 * len(corrs) + 0.4), squeeze=False, layout='constrained')
    for row, (v, corr) in zip(axes, corrs.items()):
        corr = corr or {}
        tag = f"{v}{' (headline)' if v == cfg['unif_variant'] else ''}"
        for ax, kind, layer in ((row[0], 'act', cfg['unif_layer']), (row[1], 'grad', 'concat')):
            x = nan_for_none([dig(final[n], 'unification', v, kind, layer) for n in names])
            ax.scatter(x, y, c=[view['col'][n] for n in names])
            r = dig(corr, kind, layer)
            ax.set_title(f"{tag}: r = {'n/a' if r is None else f'{r:.2f}'}", fontsize=8)
            ax.set_xlabel(f"unification ({'activations' if kind == 'act' else 'gradients'}, {layer})", fontsize=8)
            ax.set_ylabel('final OOD accuracy', fontsize=8)
        layers = list(dict.fromkeys([*(corr.get('act') or {}), *(corr.get('grad') or {})]))
        for i, kind in enumerate(('act', 'grad')):
            row[2].bar(np.arange(len(layers)) + 0.4 * i, nan_for_none([dig(corr, kind, l) for l in layers]), 0.4,
                       label='activations' if kind == 'act' else 'gradients')
        row[2].set_xticks(np.arange(len(layers)) + 0.2, layers, fontsize=7)
        row[2].axhline(0, color='k', lw=0.5), row[2].set_ylim(-1, 1), row[2].legend(fontsize=7)
        row[2].set_title(f'{tag}: Pearson r with OOD accuracy per layer', fontsize=8)
    fig.suptitle('Does unification of the two languages on training facts predict cross-lingual recall? '
                 '(one point per run, final checkpoint)', fontsize=9)
    return fig


def lang_footprint(view, run):
    """A run's language footprint (headline rep and layer): its peak after initialisation (iteration 0
    is random weights, a baseline; older analyses called this setting 'max'), or the final one."""
    cfg = view['cfg']
    its, vals = series(view, run['name'], 'footprint', 'lang', cfg['unif_rep'], cfg['unif_layer'])
    trained = [v for it, v in zip(its, vals) if it > 0]
    if not trained or np.all(np.isnan(trained)):
        return np.nan
    return np.nanmax(trained) if cfg['footprint_at'] in ('peak', 'max') else trained[-1]


def fig_vs_footprint(view, xlab, getx):
    """A property of the training data (informativeness or extractability of language) vs the
    language footprint it leaves in the representations, one point per run."""
    plt = pyplot()
    runs = [run for run in view['runs'] if run['name'] in view['final']]
    fig, ax = plt.subplots(figsize=(4.5, 3.6))
    xs = nan_for_none([getx(view['final'][run['name']]) for run in runs])
    ys = [lang_footprint(view, run) for run in runs]
    ax.scatter(xs, ys, c=[view['col'][run['name']] for run in runs])
    r = pearson(xs, ys)
    ax.set_xlabel(xlab, fontsize=8)
    ax.set_ylabel(f"language footprint R^2 ({view['cfg']['footprint_at']} over training)", fontsize=8)
    ax.set_title(f"one point per run{', colour = OOD accuracy' if view['many'] else ''}; "
                 f"r = {'n/a' if r is None else f'{r:.2f}'}", fontsize=8)
    return fig


def fig_footprint_early(view):
    """Language vs fact footprint over training, and the trajectory of one against the other."""
    plt = pyplot()
    cfg, many = view['cfg'], view['many']
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for run in view['runs']:
        name, c = run['name'], view['col'][run['name']]
        its, lf = series(view, name, 'footprint', 'lang', cfg['unif_rep'], cfg['unif_layer'])
        _, ff = series(view, name, 'footprint', 'fact', cfg['unif_rep'], cfg['unif_layer'])
        axes[0].plot(its, lf, '-', color=c, label=None if many else f"{name} language")
        axes[0].plot(its, ff, '--', color=c, label=None if many else f"{name} fact")
        axes[1].plot(lf, ff, '-o', ms=2, color=c, label=None if many else name)
    axes[0].set_xscale('symlog', linthresh=1), axes[0].set_xlabel('iteration (log)'), axes[0].set_ylabel('R^2')
    axes[0].set_title('language (solid) and fact (dashed) footprint', fontsize=8)
    axes[1].set_xlabel('language footprint R^2'), axes[1].set_ylabel('fact footprint R^2')
    axes[1].set_title('trajectory over checkpoints (early ones first)', fontsize=8)
    fig.suptitle(f"Share of representation variance ({cfg['unif_rep']}, {cfg['unif_layer']}) explained by language "
                 "id vs by fact id", fontsize=9, y=1.02)
    legend_or_colorbar(view, fig, axes)
    return fig


def split_legend(fig, view, colours=None):
    """One legend above every panel of a figure: the line style of each split (in the split's colour
    where colours = {split: colour}, else black), then the colour of each run when runs have one."""
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], color=(colours or {}).get(split, 'k'), ls=ls, lw=1.6, label=f"{short}: {what}")
               for split, short, ls, what in SPLIT_LABELS]
    if not view['many'] and not colours:
        handles += [Line2D([], [], color=view['col'][run['name']], lw=3, label=run['name']) for run in view['runs']]
    ncol = min(len(handles), 6)
    fig.legend(handles=handles, loc='upper center', bbox_to_anchor=(0.5, 0.94), ncol=ncol, fontsize=7, frameon=False)
    rows = -(-len(handles) // ncol)
    for gs in {ax.get_subplotspec().get_gridspec() for ax in fig.axes if ax.get_subplotspec()}:
        gs.update(top=min(gs.top or fig.subplotpars.top, 0.86 - 0.06 * rows))   # panel titles below its last row


def log_iterations(ax, first):
    """The x axis of iterations, logarithmic from `first` (linear below it, down to 0). Ticks at 0 and at the
    decades above first / 2 only: symlog's own decade below `first` prints on top of the 0."""
    ax.set_xscale('symlog', linthresh=first), ax.set_xlabel(f'iteration (log from {first})')
    hi = ax.get_xlim()[1]
    ax.set_xticks([0] + [10 ** k for k in range(1, 10) if first / 2 < 10 ** k <= hi])


def fig_acc_curves(view):
    """Per-fact-type ID and OOD accuracy over training, from the evaluation logs: OOD solid, ID dashed
    (one run: also in two colours), one legend for every panel."""
    plt = pyplot()
    fts = view['runs'][0].get('fact_types') or []
    if not fts:
        return None
    one = len(view['runs']) == 1
    colours = {'ood_test': 'C0', 'id_test': 'C1'} if one else None
    fig, axes = plt.subplots(1, len(fts), figsize=(3.4 * len(fts), 3.6), squeeze=False, sharey=True,
                             gridspec_kw=dict(top=0.8))
    # log iterations from the first evaluation after 0 (linear below it): the axis spends no room on the
    # decades no evaluation falls in (a demo evaluating every few hundred steps)
    first = min((int(i) for run in view['runs'] for i in run['log'] if int(i) > 0), default=1)
    for ax, ft in zip(axes[0], fts):
        for run in view['runs']:
            log = run['log']
            its = sorted(i for i in log if ft in log[i].get('ood_test', {}))
            for split, _, ls in SPLITS:
                ax.plot(its, [log[i].get(split, {}).get(ft, np.nan) for i in its], ls, lw=1.3,
                        color=colours[split] if one else view['col'][run['name']])
        log_iterations(ax, first), ax.set_title(ft.replace('_', ' '), fontsize=9), ax.set_ylim(-0.02, 1.02)
    axes[0, 0].set_ylabel('accuracy (whole attribute, greedy)')
    fig.suptitle('Recall over training per fact type' + (f" ({view['runs'][0]['name']})" if one else ''),
                 fontsize=9, y=1.0, va='top')
    split_legend(fig, view, colours)
    if view['many']:
        legend_or_colorbar(view, fig, axes)
    return fig


def fig_name_confusion(view):
    """Share of OOD errors that name a namesake's attribute over training, against chance."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for run in view['runs']:
        its, sh = series(view, run['name'], 'name_confusion', 'share')
        _, ch = series(view, run['name'], 'name_confusion', 'chance')
        ax.plot(its, sh, '-o', ms=2, color=view['col'][run['name']], label=None if view['many'] else run['name'])
        ax.plot(its, ch, ':', color=view['col'][run['name']])
    ax.set_xscale('symlog', linthresh=1), ax.set_xlabel('iteration (log)'), ax.set_ylabel('share of OOD errors')
    ax.set_title('OOD errors that name the attribute of a person sharing a first or last name\n'
                 '(dotted: share expected if errors picked a wrong value at random)', fontsize=8)
    legend_or_colorbar(view, fig, ax)
    return fig


CKPT_CRITERIA = (('last_best_id', 'last best ID (the reference)'), ('unification_plus', 'unification x ID (the rule)'),
                 ('unification', 'max unification'), ('oracle', 'best checkpoint (oracle)'))


def fig_selection(view):
    """Run selection (mean OOD accuracy of the run each criterion picks; with >= MIN_RUNS runs) and,
    per run, the OOD accuracy of the checkpoint each checkpoint criterion present in the analysis picks."""
    plt = pyplot()
    run_sel, ckpt_sel = view['summary'].get('selection') or {}, view['summary'].get('ckpt_selection') or {}
    if not run_sel and not ckpt_sel:
        return None
    wide = max(5.5, 0.3 * len(ckpt_sel))                               # room for one label per run
    fig, axes = plt.subplots(1, 1 + bool(run_sel), figsize=(5.5 * bool(run_sel) + wide, 3.6), squeeze=False,
                             width_ratios=[5.5, wide] if run_sel else [wide])
    axes = axes[0]
    if run_sel:
        axes[0].bar(list(run_sel), nan_for_none(list(run_sel.values())),
                    color=[{'oracle': 'C2', 'random': 'C7'}.get(k, 'C0') for k in run_sel])
        axes[0].set_ylabel('mean OOD accuracy of the picked run')
        axes[0].tick_params(axis='x', labelsize=7, rotation=30)
        axes[0].set_title(f"run selection from random thirds of {len(view['final'])} runs", fontsize=8)
    ax = axes[-1]
    crit = [(k, lab) for k, lab in CKPT_CRITERIA if any(k in d for d in ckpt_sel.values())]
    w = 0.8 / max(1, len(crit))
    for i, (k, lab) in enumerate(crit):                               # a criterion is {'iter', 'ood'}, a number or None
        ys = [d.get(k)['ood'] if isinstance(d.get(k), dict) else d.get(k) for d in ckpt_sel.values()]
        ax.bar(np.arange(len(ckpt_sel)) + w * i, nan_for_none(ys), w, label=lab)
    ax.set_xticks(np.arange(len(ckpt_sel)) + w * (len(crit) - 1) / 2, list(ckpt_sel), fontsize=6, rotation=45,
                  ha='right')
    ax.set_ylabel('OOD accuracy of the picked checkpoint'), ax.set_ylim(0, 1.2)
    ax.legend(fontsize=7, ncol=2, loc='upper left')
    ax.set_title('checkpoint selection per run', fontsize=8)
    return fig


def fig_acc_by_n_templates(view):
    """Final ID and OOD accuracy against the number of training templates of the fact, one line per run."""
    plt = pyplot()
    runs = [run for run in view['runs'] if dig(view['final'].get(run['name']), 'acc_by_n_train_templates')]
    if not runs:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, (split, short, _) in zip(axes, SPLITS):
        for run in runs:
            by_n = dig(view['final'][run['name']], 'acc_by_n_train_templates', split) or {}
            ns = sorted(int(n) for n in by_n if by_n[n].get('n'))     # skip counts with no test fact
            ax.plot(ns, nan_for_none([by_n[str(n)].get('acc') for n in ns]), '-o', ms=3, color=view['col'][run['name']],
                    label=None if view['many'] else run['name'])
        ax.set_xlabel("number of the fact's training templates"), ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{short} test ({'other language' if split == 'ood_test' else 'held-out template'})", fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0].set_ylabel('final accuracy')
    fig.suptitle('Recall at the end of training by how many templates verbalise the fact in training',
                 fontsize=9, y=1.02)
    legend_or_colorbar(view, fig, axes)
    return fig


def live_runs(exp):
    """Every run's live unification (train.py's live_unif) and OOD accuracy over training, off its
    log.jsonl alone, with its celeb_frac and whether prune_at stopped it. -> [dict], [] when no run of exp
    logged a live score."""
    out = []
    for name in sorted(os.listdir(exp)) if os.path.isdir(exp) else []:
        log, conf = (os.path.join(exp, name, f) for f in ('log.jsonl', 'config.json'))
        if not os.path.isfile(log):
            continue
        recs = read_records(log)
        with open(conf) if os.path.isfile(conf) else io.StringIO('{}') as f:
            frac = json.load(f).get('celeb_frac')
        ood = sorted((r['iter'], r['acc']) for r in recs if r.get('split') == 'ood_test' and 'template' not in r
                     and r.get('fact_type') == r.get('lang') == 'all')
        out.append(dict(name=name, celeb_frac=frac or 0.0, unif=live_unification(recs), ood=ood, stopped=stopped(recs)))
    return out if any(r['unif'] for r in out) else []


def fig_unif_live(exp):
    """Live unification of each run's parallel training examples (train.py, every evaluation) beside its
    OOD accuracy over training, one line per run coloured by celeb_frac; x where prune_at stopped a run."""
    runs = live_runs(exp)
    if not runs:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6), sharex=True)
    cmap, norm = plt.get_cmap('viridis'), plt.Normalize(0, max(r['celeb_frac'] for r in runs) or 1)
    first = min((i for r in runs for i, _ in r['ood'] if i > 0), default=1)
    for r in runs:
        col = cmap(norm(r['celeb_frac']))
        for ax, (its, ys) in zip(axes, (r['unif'] or ([], []), tuple(zip(*r['ood'])) or ([], []))):
            ax.plot(its, nan_for_none(ys), '-', color=col, lw=1.2)
            if r['stopped'] and len(its):
                ax.plot(its[-1], nan_for_none(ys)[-1], 'x', color=col, ms=7, mew=2)
    axes[0].axhline(0, color='0.6', lw=0.8)
    axes[0].set_ylim(max(axes[0].get_ylim()[0], -1.05), 1.05)     # early scores far below 0 (little fact signal) off the scale
    axes[0].set_ylabel('unification of parallel facts (1 = one\nrepresentation for both languages)')
    axes[1].set_ylabel('OOD accuracy (other language)'), axes[1].set_ylim(-0.02, 1.02)
    for ax in axes:
        ax.set_xlim(left=0), log_iterations(ax, first)
    fig.colorbar(plt.cm.ScalarMappable(cmap=cmap, norm=norm), ax=axes, label='celeb_frac (share of parallel facts)')
    fig.suptitle('Live unification (left; runs without parallel data have none) and OOD accuracy over training'
                 + ('; x: stopped by prune_at' if any(r['stopped'] for r in runs) else ''), fontsize=9)
    return fig


# ----------------------------------------------------------------------------- driver
def make_figures(analysis, sims, exp):
    """Draws every figure whose data the analysis holds into exp/figures/. -> paths written."""
    view = experiment(analysis, sims, exp)
    fdir = os.path.join(exp, 'figures')
    os.makedirs(fdir, exist_ok=True)
    todo = [(f"sim_{kind}_{run['name']}.png", fig_similarity, run, its, kind) for run, its in sim_runs(view)
            for kind in ('act', 'grad') if any(kind in view['sims'][(run['name'], it)] for it in its)]
    todo += [('acc_vs_knobs.png', fig_acc_vs_knobs), ('unif_vs_ood.png', fig_unif_vs_ood),
             ('mi_vs_footprint.png', fig_vs_footprint, 'I(language; attribute | fact type) in training data (bits)',
              lambda r: dig(r, 'mi_lang_attr', 'mean')),
             ('extract_vs_footprint.png', fig_vs_footprint, 'I(token; language) (bits): extractability of language',
              lambda r: r.get('mi_token_lang')),
             ('footprint_early.png', fig_footprint_early), ('acc_curves.png', fig_acc_curves),
             ('contrast.png', fig_contrast),
             ('name_confusion.png', fig_name_confusion), ('selection.png', fig_selection),
             ('acc_by_n_templates.png', fig_acc_by_n_templates),
             ('unif_live.png', lambda view: fig_unif_live(view['cfg']['exp_dir']))]
    cross_run = {'acc_vs_knobs.png': 2, 'unif_vs_ood.png': MIN_RUNS, 'mi_vs_footprint.png': MIN_RUNS,
                 'extract_vs_footprint.png': MIN_RUNS}   # figures across runs: with fewer, one point or r = n/a
    ours = {t[0] for t in todo} | {f for f in os.listdir(fdir) if f.startswith('sim_') and f.endswith('.png')}
    todo = [t for t in todo if len(view['final']) >= cross_run.get(t[0], 0)]
    written = []
    for name, draw, *args in todo:
        fig = draw(view, *args)
        if fig is not None:
            written.append(save(fig, os.path.join(fdir, name)))
    for name in ours - {os.path.basename(p) for p in written}:       # a figure of an earlier analysis misleads
        if os.path.exists(os.path.join(fdir, name)):
            os.remove(os.path.join(fdir, name))
    return written


def plot(exp):
    """Redraws the figures of out/<exp> from its analysis.json and similarity.npz (without analysis.json,
    a sweep still training: its live figure alone, from the logs). -> paths written."""
    if not os.path.isfile(os.path.join(exp, 'analysis.json')) and live_runs(exp):
        os.makedirs(os.path.join(exp, 'figures'), exist_ok=True)
        return [save(fig_unif_live(exp), os.path.join(exp, 'figures', 'unif_live.png'))]
    analysis, npz = load(exp)
    if npz is None:
        return make_figures(analysis, {}, exp)
    with np.load(npz) as z:                                            # open while drawing: matrices load lazily
        return make_figures(analysis, sim_index(z), exp)


if __name__ == '__main__':
    args = sys.argv[1:]
    if '-h' in args or '--help' in args:
        print(__doc__.strip())
        sys.exit(0)
    if len(args) != 1 or args[0].startswith('-'):
        sys.exit(f"plots: expected one argument, the experiment directory out/<exp> (got {' '.join(args) or 'none'}); "
                 "see python plots.py --help")
    try:
        paths = plot(args[0])
    except ValueError as err:
        sys.exit(f"plots: {err}")
    print(f"plots: {len(paths)} figures -> {os.path.join(args[0], 'figures')}")
