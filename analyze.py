"""
Analyze every run and checkpoint of an experiment: activation and gradient representations of
training examples, cross-lingual unification, feature footprints, a language probe, name
confusion in OOD errors, recall by the number of training templates, and run / checkpoint
selection. Writes out/<exp>/analysis.json (one record per run and checkpoint, plus summaries),
out/<exp>/similarity.npz and PNG figures under out/<exp>/figures/ (plots.py).

    python analyze.py out/celeb_08
    python analyze.py out/sweep_celeb --proj_dim=1024 --device=cpu
    python analyze.py --help

The runs of an experiment that share a checkpoint iteration are analyzed in one batched pass:
their checkpoints are loaded into one model with a run axis (model.py), and activations,
per-example gradients and predictions are computed for all of them at once; the metrics are
then computed per run. A run analyzed alone gives the same numbers (tests/test_analyze.py).

Representations (represent.py; layer keys: 'emb' = embedding output, 'L1'..'Ln' = after each
block, 'head' = final norm / unembedding parameters (gradients only), 'concat' = everything, 'no_emb' =
everything but the input embeddings (gradients only: their sparse rows, docs/verdicts.md change C4)):
activations at the last prompt token, and Adam-preconditioned, projected per-example gradients
of the attribute loss (optionally whitened as in TrackStar).
Settings left at their default (0 / -1 / 'auto') are picked by device (a GPU, or a laptop:
<= 4 GB of RAM and minutes for a quick-sized run) and printed.
"""
import glob
import json
import os
import sys
import time
import zipfile

import numpy as np
import torch
from tqdm import tqdm

import checkpoints
import data_gen
import metrics
import machine
import model as model_lib
import represent
from configurator import cli, config_keys, configure
from records import (NO_PARALLEL, PARALLEL_FACTS, acc_of, attribute_tokens, dig, final_ood, parallel_sample, pearson,
                     read_records, sample_facts, sim_layers, spread, stopped)

# -----------------------------------------------------------------------------
# advanced: run_batch, proj_kind, proj_seed, proj_dtype, trackstar_damping, grad_batch, grad_impl,
# advanced: dtype, act_batch, reuse_memory, probe_l2, sim_values_per_type, sim_per_value,
# advanced: unif_min_z, select_repeats, select_frac, select_ks, ckpt_min_id, seed
exp_dir = ''                # out/<exp> to analyze (or give it as the first argument)
device = 'auto'             # 'auto' = cuda, then mps, then cpu
max_examples = 0            # training examples per run for footprints (whole facts); 0 = auto: 1000 cuda, 400 else
max_celeb_facts = 0         # celebrity facts per run for unification and the probe; 0 = auto: 100 cuda, 50 else
max_ckpts = -1              # checkpoints per run, evenly spread (first, last kept); 0 = all; -1 = auto: all cuda, 8 else
run_batch = 0               # runs analyzed together in one batched pass; 0 = auto: 16 cuda, 2 else
proj_dim = 0                # dims of a gradient representation after projection; 0 = auto: 4096 cuda, 512 else
proj_kind = 'auto'          # gaussian (dense N(0, 1/k)) or sketch (CountSketch); auto = gaussian on cuda, sketch else
proj_seed = 0               # seed of the fixed projection (same seed + device type -> same projection)
proj_dtype = 'auto'         # matmul dtype of the Gaussian projection: auto = bfloat16 on cuda, float32 elsewhere
grad_precond = 'adam'       # adam: g / (sqrt(v) + eps); trackstar: that, projected, then whitened by R^-1/2
trackstar_damping = 1e-3    # ridge added to R, relative to its mean eigenvalue
grad_batch = 0              # examples x runs per per-example-gradient call; 0 = auto: 2048 cuda, 128 else
grad_impl = 'auto'          # per-example gradients: vmap (torch.func) or runs (each example a run of its own); auto = vmap cuda, runs else
dtype = 'auto'              # forward passes (bf16: autocast) and per-example gradients: auto = bfloat16 on a bf16 CPU, else float32
act_batch = 1024            # examples per forward pass (activations, predictions)
reuse_memory = True         # on a CPU keep freed memory in the process (faster; it keeps its peak memory till exit)
ood_sample = 0              # OOD (and ID) test examples per checkpoint whose predictions we decode; 0 = auto: 2000 / 500
probe_l2 = 1.0              # ridge penalty of the language probe, relative to the mean kernel diagonal
sim_values_per_type = 2     # attribute values per fact type in the similarity figures (most frequent in celebrity data)
sim_per_value = 50          # examples per attribute value in a similarity matrix (split over languages)
sim_ckpts = 5               # checkpoints per similarity figure (log-spaced over the run's checkpoints)
sim_runs = 4                # runs that get similarity figures (spread over final OOD accuracy)
unif_rep = 'act'            # representation of the headline unification (metrics.HEADLINE): 'act' or 'grad'
unif_layer = 'concat'       # its layer: 'concat', 'emb', 'L<i>'
unif_min_z = 3.0            # unification is None where the fact signal is below this many standard errors
footprint_at = 'peak'       # language footprint per run in the MI figures: 'peak' after initialisation or 'final'
select_repeats = 1000       # random subsets of runs in the selection experiment
select_frac = 0.333         # share of the runs in each subset
select_ks = [1, 5, 10]      # % of the OOD test available to the 'small OOD test' criterion
ckpt_min_id = 0.9           # checkpoint selection's candidates: from the first checkpoint with ID acc >= this x the run's best
seed = 0                    # sampling of examples and subsets
figures = True              # write PNG figures
# -----------------------------------------------------------------------------
DEFAULTS = config_keys(globals())
CHOICES = {'unif_rep': ('act', 'grad'), 'footprint_at': ('peak', 'final'),
           'proj_dtype': ('auto', 'float32', 'bfloat16', 'float16'), 'proj_kind': ('auto', 'gaussian', 'sketch'),
           'grad_precond': ('adam', 'trackstar'), 'dtype': ('auto', 'float32', 'bfloat16'),
           'grad_impl': ('auto', 'vmap', 'runs')}
AUTO = {  # setting: (value on cuda, value elsewhere), for settings left at their default (0 / -1 / 'auto')
    'max_examples': (1000, 400), 'max_celeb_facts': PARALLEL_FACTS, 'max_ckpts': (0, 8), 'run_batch': (16, 2),
    'proj_dim': (4096, 512), 'proj_kind': ('gaussian', 'sketch'),
    'grad_batch': (2048, 128), 'ood_sample': (2000, 500),
    'grad_impl': ('vmap', 'runs')}
SUMMARY_KEYS = ('unif_rep', 'unif_layer', 'footprint_at', 'select_repeats', 'select_frac', 'select_ks', 'ckpt_min_id',
                'seed')   # what summarise reads: an older analysis summarised again gets the defaults it lacks
RUN_KNOBS = [k for k in data_gen.DATA_DEFAULTS if k not in ('dataset', 'data_dir')] + ['seed', 'learning_rate',
                                                                                        'weight_decay']


SELECTION_SHOWN = 6        # runs from which the cross-run table is printed (a subset of a third holds >= 2 runs)


def pick_settings(cfg, dev):
    """Fill the automatic settings by device; -> (cfg, one line saying what was picked)."""
    cfg = dict(cfg)
    picked = []
    for k, (gpu, other) in AUTO.items():
        if cfg[k] == DEFAULTS[k]:                    # the default (0, -1 or 'auto') means: pick by device
            cfg[k] = gpu if dev.startswith('cuda') else other
            picked.append(f'{k}={cfg[k]}')
    if cfg.get('dtype', 'auto') == 'auto':           # bf16 on a CPU that multiplies it natively: faster there
        # (bench.py's grad reps rows and analysis pair), the same measures within the pair's differences (docs/speed.md)
        cfg['dtype'] = 'bfloat16' if dev == 'cpu' and machine.cpu_has_bf16() else 'float32'
        picked.append(f"dtype={cfg['dtype']}")
    return cfg, f"settings picked for {dev}: {', '.join(picked)}" if picked else ''


# ----------------------------------------------------------------------------- experiment data
def find_runs(exp):
    """Run directories of an experiment with their readable checkpoints. A missing directory, log
    or final checkpoint is a one-line error; an unreadable checkpoint is listed and skipped, up
    front, so that hours of analysis never end on a torn file."""
    if not exp or not os.path.isdir(exp):
        raise ValueError(f"analyze: experiment directory not found: {exp!r}")
    runs = sorted(os.path.dirname(p) for p in glob.glob(os.path.join(exp, '*', 'config.json')))
    if not runs:
        raise ValueError(f"analyze: no runs in {exp} (expected {exp}/<run>/config.json)")
    out, bad = [], []
    for d in runs:
        ckpts = {int(os.path.basename(p)[5:-3]): p for p in glob.glob(os.path.join(d, 'ckpt_*.pt'))
                 if os.path.basename(p)[5:-3].isdigit()}
        bad += [p for p in ckpts.values() if not zipfile.is_zipfile(p)]   # torch.save writes a zip; a torn one is not
        ckpts = {it: p for it, p in ckpts.items() if p not in bad}
        if not os.path.isfile(os.path.join(d, 'log.jsonl')):
            raise ValueError(f"analyze: missing {os.path.join(d, 'log.jsonl')}")
        with open(os.path.join(d, 'config.json')) as f:
            rc = json.load(f)
        pruned = stopped(read_records(os.path.join(d, 'log.jsonl')))   # stopped by train.py's prune_at: ends earlier
        if 'max_iters' in rc and rc['max_iters'] not in ckpts and not pruned:
            raise ValueError(f"analyze: missing or unreadable final checkpoint "
                             f"{os.path.join(d, 'ckpt_%d.pt' % rc['max_iters'])} (training unfinished?)")
        out.append(dict(name=os.path.basename(d), dir=d, cfg=rc, ckpts=dict(sorted(ckpts.items())),
                        stopped=pruned['iter'] if pruned else None))
    if bad:
        print(f"warning: skipping {len(bad)} unreadable checkpoint(s): {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}")
    return out, bad


def read_log(path):
    """-> {iter: {split: {fact_type: acc}}} from the evaluation records (lang 'all' aggregates,
    else the n-weighted mean over languages); per-template records are skipped, and a torn last line
    (a run still training), while a bad line elsewhere is an error (records.read_records)."""
    agg = {}
    for r in read_records(path):
        if r.get('split') not in data_gen.SPLITS or 'template' in r:
            continue
        d = agg.setdefault(r['iter'], {}).setdefault(r['split'], {}).setdefault(r['fact_type'], {})
        d[r['lang']] = (r['acc'], r['n'])
    out = {}
    for it, splits in agg.items():
        for s, fts in splits.items():
            for ft, by_lang in fts.items():
                if 'all' in by_lang:
                    acc = by_lang['all'][0]
                else:
                    n = sum(v[1] for v in by_lang.values())
                    acc = sum(a * k for a, k in by_lang.values()) / max(n, 1)
                out.setdefault(it, {}).setdefault(s, {})[ft] = acc
    return dict(sorted(out.items()))


def similarity_examples(train, celeb, meta, cfg, rng):
    """Examples of the similarity matrices: the most frequent attribute values of each fact type
    in the celebrity data, ordered by fact type > value > language. -> indices, labels, bounds."""
    pool = celeb or range(len(train))
    idx, values = [], []
    for ft in meta['fact_types']:
        counts = {}
        for i in pool:
            if train[i]['fact_type'] == ft:
                counts[train[i]['attribute']] = counts.get(train[i]['attribute'], 0) + 1
        for val in sorted(counts, key=lambda a: (-counts[a], a))[:cfg['sim_values_per_type']]:
            values.append(f'{ft}={val}')
            for lang in range(len(meta['languages'])):
                cand = [i for i, e in enumerate(train) if e['fact_type'] == ft and e['attribute'] == val and e['lang'] == lang]
                pick = rng.permutation(len(cand))[:cfg['sim_per_value'] // len(meta['languages'])]
                idx += sorted((cand[j] for j in pick), key=lambda i: (train[i]['person'], train[i]['template']))
    keys = [(train[i]['fact_type'], train[i]['attribute']) for i in idx]
    return idx, values, [j for j in range(1, len(keys)) if keys[j] != keys[j - 1]]


def prepare_run(run, cfg):
    """Dataset of a run and the example subsets analyzed at every checkpoint."""
    path = run['cfg'].get('dataset_path') or data_gen.dataset_path(run['cfg'])
    meta = data_gen.load_meta(path)
    train, idt, ood = (data_gen.load_split(path, s, meta) for s in data_gen.SPLITS)
    rng = np.random.default_rng(cfg['seed'])
    celeb = [i for i, e in enumerate(train) if e['celebrity']]
    celeb_idx = parallel_sample(train, rng, cfg['max_celeb_facts'])   # train.py's live sample too
    gen_idx = sample_facts(train, range(len(train)), rng, max_examples=cfg['max_examples'])
    sim_idx, sim_values, sim_bounds = similarity_examples(train, celeb, meta, cfg, rng)
    union = sorted(set(celeb_idx) | set(gen_idx) | set(sim_idx))
    pos = {i: j for j, i in enumerate(union)}
    tests = {s: [x[j] for j in sorted(rng.permutation(len(x))[:cfg['ood_sample']])] for s, x in
             (('ood_test', ood), ('id_test', idt))}
    n_train = {}                                                       # (person, fact type) -> training templates
    for e in train:
        n_train[(e['person'], e['fact_type'])] = n_train.get((e['person'], e['fact_type']), 0) + 1
    attr_map = {(e['fact_type'], tuple(attribute_tokens(e))): str(e['attribute']) for e in train + ood}
    people = {p['id']: p for p in meta['people']}
    by_name = {}
    for p in meta['people']:
        by_name.setdefault(('first', p['first']), []).append(p['id'])
        by_name.setdefault(('last', p['last']), []).append(p['id'])
    namesake = {(p['id'], ft): {str(people[q][ft]) for q in set(by_name[('first', p['first'])] + by_name[('last', p['last'])])
                                if q != p['id']} for p in meta['people'] for ft in meta['fact_types']}
    index = lambda ids: torch.tensor([pos[i] for i in ids], dtype=torch.long)
    return dict(meta=meta, union=[train[i] for i in union], celeb=index(celeb_idx), gen=index(gen_idx),
                sim=index(sim_idx), sim_values=sim_values, sim_bounds=sim_bounds, tests=tests, n_ood=len(ood),
                n_train=n_train, attr_map=attr_map, namesake=namesake, eos=meta['vocab'].index('<eos>'),
                n_values={ft: len(v) for ft, v in meta['attributes'].items()},
                max_attr=max(len(attribute_tokens(e)) for e in train + ood))


def name_confusion(pred, examples, inputs):
    """Per OOD example: correct or not; share of errors naming a namesake's attribute; chance share."""
    correct, n_err, n_conf, chance = [], 0, 0, 0.0
    for row, e in zip(pred.tolist(), examples):
        attr = attribute_tokens(e)
        ok = row[:len(attr)] == attr
        correct.append(ok)
        if ok:
            continue
        toks = tuple(row[:row.index(inputs['eos'])] if inputs['eos'] in row else row[:-1])   # up to <eos>
        names = inputs['namesake'][(e['person'], e['fact_type'])] - {str(e['attribute'])}
        n_err += 1
        n_conf += inputs['attr_map'].get((e['fact_type'], toks)) in names
        chance += len(names) / max(1, inputs['n_values'][e['fact_type']] - 1)
    return np.array(correct, bool), dict(share=n_conf / n_err if n_err else None, n_errors=n_err,
                                         chance=chance / n_err if n_err else None)


def acc_by_n_templates(correct, examples, inputs):
    """Accuracy of test examples by their fact's number of training templates: {n: {acc, n}}."""
    groups = {}
    for c, e in zip(correct, examples):
        groups.setdefault(inputs['n_train'].get((e['person'], e['fact_type']), 0), []).append(c)
    return {str(n): dict(acc=float(np.mean(v)), n=len(v)) for n, v in sorted(groups.items())}


# ----------------------------------------------------------------------------- metrics of a checkpoint
def layer_dict(act, grads):
    """Representations by kind and layer key: {'act': {key: (N, d)}, 'grad': {key: (N, k)}}."""
    a = {('emb' if i == 0 else f'L{i}'): act[i] for i in range(len(act))}
    a['concat'] = represent.concat_layers(act)
    return {'act': a, 'grad': grads}


def ckpt_metrics(act, grads, inputs, cfg, keep_sims):
    """Footprints, unification, language probe (and similarity matrices if keep_sims) of one run at
    one checkpoint, from its representations. -> (record fields, sims or None)."""
    reps = layer_dict(act, grads)
    ex, dev = inputs['union'], act.device
    ft_id = {ft: i for i, ft in enumerate(inputs['meta']['fact_types'])}
    lang = torch.tensor([e['lang'] for e in ex], device=dev)
    ftype = torch.tensor([ft_id[e['fact_type']] for e in ex], device=dev)
    fact = torch.tensor([e['person'] * len(ft_id) + ft_id[e['fact_type']] for e in ex], device=dev)
    g, c = inputs['gen'].to(dev), inputs['celeb'].to(dev)
    rec = {'footprint': {'fact_chance': (len(torch.unique(fact[g])) - 1) / max(1, len(g) - 1)}}
    for k, feat in (('lang', lang), ('fact', fact)):
        rec['footprint'][k] = {kind: {l: metrics.variance_explained(x[g], feat[g]) for l, x in layers.items()}
                               for kind, layers in reps.items()}
    rec['unification'] = rec['lang_probe'] = None
    if len(c) == 0:
        rec['unification_null_reason'] = NO_PARALLEL
    else:                                              # labelled as train.py's live score labels them
        cf, cl, ct = represent.unification_labels([ex[i] for i in c.tolist()], inputs['meta']['fact_types'], dev)
        u = {v: {kind: {} for kind in reps} for v in (*metrics.VARIANTS, 'signal_z')}
        why = None
        for kind, layers in reps.items():
            for l, x in layers.items():
                res, why = metrics.unification(x[c], cf, cl, ct, cfg['unif_min_z'])
                for v in u:
                    u[v][kind][l] = res[v] if res else None
        rec['unification'] = u if why is None else None
        if why:
            rec['unification_null_reason'] = why
        half = torch.from_numpy(np.random.default_rng(cfg['seed']).random(int(cf.max()) + 1) < 0.5).to(dev)[cf]
        if half.any() and (~half).any() and len(torch.unique(lang[c][half])) > 1:
            rec['lang_probe'] = {kind: {l: metrics.lang_probe(x[c], lang[c], half, cfg['probe_l2'])
                                        for l, x in layers.items()} for kind, layers in reps.items()}
    s = inputs['sim'].to(dev)
    groups = sim_layers(len(act) - 1)
    sims = {kind: {l: (metrics.unit(x[s]) @ metrics.unit(x[s]).T).half().cpu().numpy()
                   for l, x in layers.items() if l in groups} for kind, layers in reps.items()} \
        if len(s) and keep_sims else None
    return rec, sims


def load_group(items, dev):
    """Checkpoints of several runs at one iteration into one model with a run axis.
    items: [(run, it, path, vocab)] -> (model in eval mode, [ckpt dicts], [items that loaded], notes)."""
    loaded, notes = [], []
    for item in items:
        try:
            one, ckpt = checkpoints.load_checkpoint(item[2], 'cpu', vocab=item[3])
            loaded.append((item, one, ckpt))
        except ValueError as e:
            if 'another vocabulary' in str(e):
                raise
            notes.append(f"skipped unreadable checkpoint {item[2]} ({e})")
            print(f"warning: {notes[-1]}")
    if not loaded:
        return None, [], [], notes
    args = dict(model_lib.model_args(loaded[0][1]), n_runs=len(loaded))
    model = model_lib.GPT(model_lib.GPTConfig(**args), seeds=[0] * len(loaded), init=False)
    for r, (_, _, ckpt) in enumerate(loaded):
        model_lib.load_run(model, r, ckpt['model'])
    return model.to(dev).eval(), [c for _, _, c in loaded], [i for i, _, _ in loaded], notes


def grad_share(sq, examples):
    """Each layer group's share of an example's squared gradient norm, as the gradient is and after Adam's
    division (the one gradient_reps projects), averaged over the examples of each language: does the
    division let one group (the rarely updated input embeddings) outweigh the rest of the model?
    sq: {group: (N, 2)} -> {'raw' | 'adam': {group: [mean share in language 0, 1, ...]}}."""
    total = sum(sq.values())                                             # (N, 2)
    lang = torch.tensor([e['lang'] for e in examples], device=total.device)
    langs = sorted(set(lang.tolist()))
    return {how: {g: [round(float((v[lang == l, i] / total[lang == l, i].clamp_min(1e-30)).mean()), 4) for l in langs]
                  for g, v in sorted(sq.items())} for i, how in enumerate(('raw', 'adam'))}


def analyze_group(items, inputs_by_run, cfg, dev, keep):
    """One batched pass over the checkpoints of several runs at one iteration.
    -> ([(run, it, record fields, sims)], notes)."""
    model, ckpts, items, notes = load_group(items, dev)
    if model is None:
        return [], notes
    runs = [run for run, _, _, _ in items]
    union = [inputs_by_run[run['name']]['union'] for run in runs]
    last = [it == max(run['ckpts']) for run, it, _, _ in items]
    grads, sq = represent.gradient_reps(model, ckpts, union, cfg, [run['cfg'].get('beta2') for run in runs], any(last))
    max_attr = max(inputs_by_run[run['name']]['max_attr'] for run in runs)
    with machine.autocast(dev, cfg['dtype']):          # bf16: matmuls in bf16, norms and softmax in float32
        acts = represent.activation_reps(model, union, cfg['act_batch'])
        preds = {s: represent.predict(model, [inputs_by_run[run['name']]['tests'][s] for run in runs], max_attr,
                                      cfg['act_batch']) for s in ('ood_test', 'id_test')}
    out = []
    for r, (run, it, _, _) in enumerate(items):
        inputs = inputs_by_run[run['name']]
        rec, sims = ckpt_metrics(acts[r], grads[r], inputs, cfg, (run['name'], it) in keep)
        correct, rec['name_confusion'] = name_confusion(preds['ood_test'][r], inputs['tests']['ood_test'], inputs)
        rec['ood_acc_sample'] = float(correct.mean()) if len(correct) else None
        if last[r]:                                          # final: what selection and the breakdowns need
            rec['grad_share'] = grad_share(sq[r], inputs['union'])
            id_correct = represent.decoded_correct(preds['id_test'][r], inputs['tests']['id_test'])
            rec['acc_by_n_train_templates'] = {
                'id_test': acc_by_n_templates(id_correct, inputs['tests']['id_test'], inputs),
                'ood_test': acc_by_n_templates(correct, inputs['tests']['ood_test'], inputs)}
            rec.update(ood_correct=''.join('1' if c else '0' for c in correct), n_ood=inputs['n_ood'])
        out.append((run, it, rec, sims))
    return out, notes


# ----------------------------------------------------------------------------- main
def headline(rec, cfg, variant=metrics.HEADLINE):
    """A record's unification score of `variant` at the headline representation and layer (or None)."""
    return dig(rec.get('unification'), variant, cfg['unif_rep'], cfg['unif_layer'])


def footprint_course(iters, values):
    """A footprint over training -> {'init', 'peak', 'peak_iter', 'final'}: the value at iteration 0
    (the baseline: random weights already tell languages apart whose tokens differ), the largest
    value after initialisation and its iteration, and the last value. The initial checkpoint is
    never the peak: a footprint that only falls from its random start peaks at its first trained
    checkpoint."""
    pts = [(it, v) for it, v in zip(iters, values) if v is not None]
    after = [(v, it) for it, v in pts if it > 0]
    peak, peak_iter = max(after, key=lambda p: p[0]) if after else (None, None)
    return dict(init=next((v for it, v in pts if it == 0), None), peak=peak, peak_iter=peak_iter,
                final=pts[-1][1] if pts and pts[-1][0] > 0 else None)


def plan(runs, inputs_by_run, cfg):
    """Which (run, iter) keep similarity matrices (a few runs spread over their final OOD accuracy
    in the logs, a few checkpoints each), and the batches of the analysis: runs that share an
    iteration and a model shape, run_batch at a time."""
    final_ood = {r['name']: (r['log'].get(max(r['log'], default=0), {}).get('ood_test', {}).get('all') or 0.0)
                 for r in runs}
    keep = {(r['name'], it) for r in spread(sorted(runs, key=lambda r: final_ood[r['name']]), cfg['sim_runs'])
            for it in spread(list(r['ckpts']), cfg['sim_ckpts'])}
    by_it = {}
    for run in runs:
        shape = json.dumps(run['cfg'].get('model_args', {}), sort_keys=True)
        for it, path in run['ckpts'].items():
            by_it.setdefault((it, shape), []).append((run, it, path, inputs_by_run[run['name']]['meta']['vocab']))
    batches = [items[i:i + cfg['run_batch']] for _, items in sorted(by_it.items(), key=lambda kv: kv[0][0])
               for i in range(0, len(items), cfg['run_batch'])]
    return keep, batches


def analyze(cfg):
    """Analyze cfg['exp_dir']; writes analysis.json, similarity.npz and figures; returns the analysis."""
    t0 = time.time()
    exp = cfg['exp_dir']
    dev = machine.pick_device(cfg['device'])
    cfg, picked = pick_settings(cfg, dev)
    if dev == 'cpu' and cfg['reuse_memory']:
        machine.cpu_reuse_memory()                   # per-example gradients reallocated per batch stay in the process
    runs, bad = find_runs(exp)
    checkpoints.check_writable([os.path.join(exp, f) for f in ('analysis.json', 'similarity.npz')]
                               + [os.path.join(exp, 'figures')] * bool(cfg['figures']))
    notes = [f"skipped unreadable checkpoint {p}" for p in bad]
    if cfg['max_ckpts']:
        for run in runs:
            run['ckpts'] = {it: run['ckpts'][it] for it in spread(sorted(run['ckpts']), cfg['max_ckpts'])}
    if picked:
        print(picked)
    torch.backends.cuda.matmul.allow_tf32 = True
    varying = [k for k in RUN_KNOBS if len({json.dumps(r['cfg'].get(k)) for r in runs}) > 1]
    inputs_by_run = {}
    for run in runs:
        inputs_by_run[run['name']] = prepare_run(run, cfg)
        run['log'] = read_log(os.path.join(run['dir'], 'log.jsonl'))
    keep, batches = plan(runs, inputs_by_run, cfg)
    records, sims = [], {}
    bar = tqdm(total=sum(len(b) for b in batches), desc='checkpoints', dynamic_ncols=True)
    for items in batches:
        bar.set_postfix_str(f"iter {items[0][1]}, {len(items)} run(s)")
        results, more = analyze_group(items, inputs_by_run, cfg, dev, keep)
        notes += more
        for run, it, rec, sim in results:
            log = run['log']
            evals = [i for i in log if i <= it]
            if evals and evals[-1] != it:
                notes.append(f"{run['name']}: no eval at iter {it}, used iter {evals[-1]}")
            inputs = inputs_by_run[run['name']]
            records.append(dict(run=run['name'], iter=it, final=it == max(run['ckpts']),
                                knobs={k: run['cfg'].get(k) for k in varying + ['celeb_frac', 'seed']},
                                eval_iter=evals[-1] if evals else None, acc=log[evals[-1]] if evals else None,
                                mi_lang_attr=inputs['meta'].get('mi_lang_attr'), mi_token_lang=inputs['meta'].get('mi_token_lang'),
                                n_examples=dict(footprint=len(inputs['gen']), celebrity=len(inputs['celeb']),
                                                ood=len(inputs['tests']['ood_test'])), **rec,
                                **({'stopped': run['stopped']} if run['stopped'] is not None else {})))
            if sim is not None:
                sims[(run['name'], it)] = sim
        bar.update(len(items))
    bar.close()
    records.sort(key=lambda r: ([x['name'] for x in runs].index(r['run']), r['iter']))
    timing = dict(seconds=round(time.time() - t0, 2), device=dev, n_ckpts=len(records))
    timing['ckpts_per_s'] = round(len(records) / max(timing['seconds'], 1e-9), 3)
    return write_analysis(exp, cfg, runs, inputs_by_run, records, sims, varying, notes, timing)


def write_analysis(exp, cfg, runs, inputs_by_run, records, sims, varying, notes, timing):
    summary = summarise(records, cfg, notes)
    # what the figures need besides the records: plots.py redraws them from these two files
    fig_runs = [dict(name=r['name'], cfg=r['cfg'], ckpts=list(r['ckpts']), n_layer=r['cfg'].get('n_layer'),
                     log=r['log'], fact_types=inputs_by_run[r['name']]['meta']['fact_types'],
                     sim_values=inputs_by_run[r['name']]['sim_values'],
                     sim_bounds=inputs_by_run[r['name']]['sim_bounds']) for r in runs]
    out = dict(exp_dir=exp, settings=cfg, timing=timing, varying_knobs=varying, notes=notes, **summary,
               records=records, runs=fig_runs)
    with open(os.path.join(exp, 'analysis.json'), 'w') as f:
        json.dump(out, f, indent=1)
    # only for the figures, whose colour map has 32 levels: the upper triangle of each symmetric matrix,
    # cosines in [-1, 1] as uint8 (steps of 1/127.5); plots.square rebuilds it
    np.savez_compressed(os.path.join(exp, 'similarity.npz'), **{
        f'{run}|{it}|{kind}|{layer}': np.round((m[np.triu_indices(len(m))].astype(np.float32) + 1) * 127.5).astype(np.uint8)
        for (run, it), kinds in sims.items() for kind, layers in kinds.items() for layer, m in layers.items()})
    print(f"analysis of {len(runs)} run(s), {len(records)} checkpoint(s) in {timing['seconds']:.1f}s "
          f"({timing['ckpts_per_s']:.2f} checkpoints/s) -> {os.path.join(exp, 'analysis.json')}")
    import plots
    by_value = {}                                      # the score of figures/contrast.png, defined without parallel facts
    for r in fig_runs:
        m = dig(sims.get((r['name'], max(r['ckpts'], default=0))), cfg['unif_rep'], cfg['unif_layer'])
        if m is not None:
            by_value[r['name']] = plots.block_unification(m.astype(np.float32),
                                                          plots.lang_groups(r, len(m), cfg['sim_per_value']))
    final = [r for r in records if r['final']]
    table = summary['selection_table']
    if 3 <= len(final) < SELECTION_SHOWN:              # a third of 3-5 runs is one run: nothing to select among
        table = [f"correlations and run and checkpoint selection over {len(final)} runs: in analysis.json "
                 f"(printed from {SELECTION_SHOWN} runs on)"]
    for line in table + run_table(final, cfg, by_value):
        print(line)
    if cfg['figures']:
        names = sorted(os.path.basename(p) for p in plots.plot(exp))
        print(f"{len(names)} figures -> {os.path.join(exp, 'figures')}/"
              + (" (contrast.png: the runs with the least and the most parallel data side by side)"
                 if 'contrast.png' in names else ''))
    return out


def summarise(records, cfg, notes):
    """Correlations across runs, run selection and per-run checkpoint selection, from the records
    alone (so that the analyses of shards of a sweep can be merged and summarised again). The
    unification score is metrics.HEADLINE everywhere; the paper's ratio (metrics.PAPER_RATIO) is
    reported beside it with its own correlations and picks. Nothing is chosen by how well it tracks
    OOD accuracy: that is what the correlations then test. Runs that train.py's prune_at stopped early
    are analysed, but left out here: their last checkpoint is not the end of training."""
    cut = sorted({r['run'] for r in records if r.get('stopped') is not None})
    if cut:
        notes.append(f"{len(cut)} run(s) stopped by prune_at left out of the correlations and run and checkpoint "
                     f"selection: {', '.join(cut)}")
        records = [r for r in records if r.get('stopped') is None]
    final = [r for r in records if r['final']]
    ckpt_sel, ckpt_summary = checkpoint_selection(records, cfg)
    if len(final) < 3:                                                # a correlation of 2 points is +-1
        line = f"cross-run measures need >= 3 runs (got {len(final)}): no correlations and no run selection"
        notes.append(line)                                            # printed with the selection table
        return dict(correlations=None, selection=None, selection_scored=None, ckpt_selection=ckpt_sel,
                    ckpt_selection_summary=ckpt_summary, selection_table=[line])
    target = np.array([final_ood(r) for r in final], float)
    corr = {}
    for v in metrics.VARIANTS:
        for kind in ('act', 'grad'):
            layers = dict.fromkeys(l for r in final for l in dig(r, 'unification', v, kind) or {})
            corr.setdefault(v, {})[kind] = {l: pearson([dig(r, 'unification', v, kind, l) for r in final], target)
                                            for l in layers}
    scores = run_scores(final, cfg, notes)
    sel = metrics.select_runs(scores, target, cfg['select_repeats'], cfg['select_frac'], cfg['seed'])
    scored = np.isfinite(scores['unification'])                       # the same rules over the runs it can score
    sel_scored = metrics.select_runs({k: s[..., scored] for k, s in scores.items()}, target[scored],
                                     cfg['select_repeats'], cfg['select_frac'], cfg['seed']) if scored.sum() >= 3 else None
    at = f"{cfg['unif_rep']}/{cfg['unif_layer']}"
    table = [f"run selection over {len(final)} runs ({cfg['select_repeats']} subsets of {cfg['select_frac']:.0%}; "
             f"runs without a unification score rank last): mean OOD accuracy of the pick, all runs | "
             f"the {int(scored.sum())} with a score"]
    table += [f"  {k:<18s} {fmt(v)} | {fmt((sel_scored or {}).get(k))}" for k, v in sel.items()]
    table += [f"pearson r of unification ({at}) with OOD: "
              + ', '.join(f"{v}{' (headline)' if v == metrics.HEADLINE else ''} "
                          f"{fmt(dig(corr, v, cfg['unif_rep'], cfg['unif_layer']), '+.3f')}" for v in metrics.VARIANTS)]
    for rule, d in (ckpt_summary or {}).items():
        if d:
            table.append(f"checkpoint selection by {rule} over {d['n_runs']} runs, mean OOD of the pick: {d['ood']:.4f} "
                         f"(last best-ID {d['last_best_id']:.4f}, oracle {d['oracle']:.4f})")
    return dict(correlations=corr, selection=sel, selection_scored=sel_scored, ckpt_selection=ckpt_sel,
                ckpt_selection_summary=ckpt_summary, selection_table=table)


def fmt(x, spec='.4f'):
    return 'n/a' if x is None else format(x, spec)


def run_table(final, cfg, by_value):
    """The contrast an experiment is about, one line per run at its final checkpoint: ID and OOD accuracy
    (the logged evaluation) and the headline unification score, of the parallel facts (or why there is
    none) and of the similarity figures' examples that share an attribute value (by_value: {run: score},
    plots.block_unification). -> lines."""
    rep = 'activations at the last prompt token' if cfg['unif_rep'] == 'act' else 'gradients'
    layer = {'concat': 'all layers concatenated', 'emb': 'embeddings'}.get(cfg['unif_layer'], f"layer {cfg['unif_layer'][1:]}")
    lines = [f"last checkpoint of each run: ID / OOD accuracy; unification ({rep}, {layer}; 1 = the two languages",
             "share one representation, 0 = one each) of the parallel facts and of examples sharing a value (the figures)"]
    width = max((len(r['run']) for r in final), default=0)
    for r in final:
        u, v = headline(r, cfg), by_value.get(r['run'])
        why = f"  ({r.get('unification_null_reason') or 'no score'})" if u is None else ''
        lines.append(f"  {r['run']:<{width}s}  ID {fmt(acc_of(r, 'id_test'), '.2f')}  OOD {fmt(final_ood(r), '.2f')}  "
                     f"unification: facts {fmt(u, '.2f'):>4s}, values {fmt(v, '.2f'):>4s}{why}")
    return lines


def run_scores(final, cfg, notes):
    """What each run-selection rule ranks the final records by: {rule: (R,) or (select_repeats, R)},
    NaN where a rule cannot score a run. OOD on k% of the test: k% of its size drawn from the final
    predictions, anew in each repeat."""
    rng = np.random.default_rng(cfg['seed'] + 1)
    ids = np.array([np.nan if acc_of(r, 'id_test') is None else acc_of(r, 'id_test') for r in final], float)
    scores = {'id_test': ids}
    for k in cfg['select_ks']:
        est = np.full((cfg['select_repeats'], len(final)), np.nan)
        for j, r in enumerate(final):
            correct = np.array([c == '1' for c in r.get('ood_correct', '')])
            if not len(correct):                                      # no predictions kept: cannot score
                continue
            m = max(1, round(k / 100 * r.get('n_ood', 0)))
            if m > len(correct):
                notes.append(f"{r['run']}: {k}% of the OOD test is {m} examples > ood_sample; used {len(correct)}")
                m = len(correct)
            est[:, j] = [correct[rng.choice(len(correct), m, replace=False)].mean() for _ in range(cfg['select_repeats'])]
        scores[f'ood_{k}pct'] = est
    unif = {v: np.array([np.nan if headline(r, cfg, v) is None else headline(r, cfg, v) for r in final], float)
            for v in (metrics.HEADLINE, metrics.PAPER_RATIO)}
    scores.update(unification=unif[metrics.HEADLINE], unif_x_id=unif_x_id(unif[metrics.HEADLINE], ids),
                  unification_paper=unif[metrics.PAPER_RATIO])
    return scores


def unif_x_id(u, ids):
    """Unification x ID accuracy, rising in both: the plain product where unification >= 0; below 0
    (the headline score can be: cross-language similarity under the baseline) the product would rank a
    more accurate run lower, so there unification is divided by ID accuracy instead."""
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(u >= 0, u * ids, u / np.maximum(ids, 1e-9))


CKPT_RULES = ('unification_plus', 'unification', 'unification_paper', 'unification_any')   # the first decides (finding 5)
CKPT_REFERENCES = ('last_best_id', 'last_best_ood', 'oracle', 'final')


def checkpoint_selection(records, cfg):
    """Per run, the checkpoint each rule picks and its OOD accuracy. The candidates are the checkpoints
    after same-language recall saturates: at and after the first whose ID accuracy reaches ckpt_min_id x
    the run's best (early in training every representation is alike, so unification is high before
    anything is learnt). Of equal scores the later wins; a candidate a rule cannot score ranks last.
      unification_plus   the primary rule: the highest unification x ID accuracy (unif_x_id, the
                         method's Unification+, as for runs) among the candidates
      unification        the highest headline unification among the candidates
      unification_paper  the same with the paper's ratio
      unification_any    the highest headline unification over every checkpoint after initialisation
                         (the rule before the candidates; docs/verdicts.md, change C3)
      last_best_id       the method's reference: the last checkpoint with the best ID accuracy
      last_best_ood      the last with the best OOD accuracy (its OOD is the oracle's)
    -> (per run {rule: {iter, ood, id} or None, 'oracle': best OOD, 'final': final OOD},
        {rule: mean OOD of its pick and of the references over the runs it scores, or None})."""
    out = {}
    for name in dict.fromkeys(r['run'] for r in records):
        recs = sorted((r for r in records if r['run'] == name and r['acc'] and r['iter'] > 0), key=lambda r: r['iter'])
        if not recs:
            continue
        ids = [acc_of(r, 'id_test') or 0.0 for r in recs]
        start = next(i for i, a in enumerate(ids) if a >= cfg['ckpt_min_id'] * max(ids))
        cands = recs[start:]
        pick = lambda key, cs: max(reversed(cs), key=key)                                # of ties, the later
        picks = dict(unification_plus=pick(ckpt_score(cfg, metrics.HEADLINE, times_id=True), cands),
                     unification=pick(ckpt_score(cfg, metrics.HEADLINE), cands),
                     unification_paper=pick(ckpt_score(cfg, metrics.PAPER_RATIO), cands),
                     unification_any=pick(ckpt_score(cfg, metrics.HEADLINE), recs),
                     last_best_id=pick(lambda r: acc_of(r, 'id_test') or 0.0, recs),
                     last_best_ood=pick(lambda r: acc_of(r, 'ood_test') or 0.0, recs))
        for v, rules in ((metrics.HEADLINE, ('unification_plus', 'unification', 'unification_any')),
                         (metrics.PAPER_RATIO, ('unification_paper',))):
            for rule in rules:                                        # nothing to rank: no pick, not a random one
                if all(headline(r, cfg, v) is None for r in (recs if rule == 'unification_any' else cands)):
                    picks[rule] = None
        out[name] = {k: r and dict(iter=r['iter'], ood=acc_of(r, 'ood_test'), id=acc_of(r, 'id_test'))
                     for k, r in picks.items()}
        out[name].update(oracle=max(acc_of(r, 'ood_test') or 0.0 for r in recs), final=acc_of(recs[-1], 'ood_test'))
    return out, {rule: ckpt_rule_summary(out, rule) for rule in CKPT_RULES} if out else None


def ckpt_score(cfg, variant, times_id=False):
    """A record -> its sort key under a checkpoint rule: (scored, unification or unification x ID);
    a record without a score sorts below every scored one."""
    def key(r):
        u = headline(r, cfg, variant)
        if u is None:
            return False, 0.0
        return True, float(unif_x_id(np.float64(u), np.float64(acc_of(r, 'id_test') or 0.0))) if times_id else u
    return key


def ckpt_rule_summary(per_run, rule):
    """Mean OOD of a rule's picks and of the references' over the runs the rule picks in; how often it
    picks earlier than the last best-OOD checkpoint, and the median ratio of the iterations."""
    runs = [d for d in per_run.values() if d[rule] and d[rule]['ood'] is not None]
    if not runs:
        return None
    ood = lambda k: float(np.mean([d[k]['ood'] if isinstance(d[k], dict) else d[k] for d in runs]))
    return dict(n_runs=len(runs), ood=ood(rule), **{k: ood(k) for k in CKPT_REFERENCES},
                earlier=float(np.mean([d[rule]['iter'] < d['last_best_ood']['iter'] for d in runs])),
                median_iter_ratio=float(np.median([d[rule]['iter'] / d['last_best_ood']['iter'] for d in runs])))


def parse_args(argv):
    """`out/<exp> [config.py] [--key=value ...]`: a first argument that is not a .py file is exp_dir."""
    if argv and not argv[0].startswith('-') and not argv[0].endswith('.py'):
        argv = [f'--exp_dir={argv[0]}'] + argv[1:]
    return configure(DEFAULTS, argv, choices=CHOICES, sources=[__file__])


if __name__ == '__main__':
    cli(lambda: analyze(parse_args(sys.argv[1:])))
