"""
Knowledge graph -> synthetic languages -> splits -> data/<dataset>/ (docs/method.md sections 2-5).

    python data_gen.py config/celeb_08.py [--key=value ...]

Three independent random streams: the knowledge graph comes from kg_seed, the languages from
lang_seed, the splits from split_seed. A family of datasets that differ only in celeb_frac therefore
shares the people, their facts and the templates.

Choices where the method is silent (all knobs below):
- Names, cities: Capitalized pronounceable letter strings, one pool each, all distinct; years are
  digits. Filler words: lowercase pronounceable letter strings; in char_cased the templates of
  languages 1.. are uppercased. Entities are spelled the same everywhere.
- Template lengths: per fact type, n_templates lengths are drawn once and every language gets them
  in its own random order, so all languages have the same number of filler words S and
  shared_token_frac is exact: round(frac * S) filler slots of each language hold words of a common
  pool (each common word once per language); all other filler words occur in one slot of one
  template of one language only. shared_token_mode 'random' (data versions <= 2) puts the common
  words in random slots of each language, so most sit in another fact type's template in the other
  language ("false friends"); 'role' puts each in the same word slot of the same template (same
  length, same fact type) in every language, the method's sense of a shared word. A template whose
  words all are shared then moves its subject off the other language's slot (no template is the same
  in two languages: its OOD examples would be training examples). The modes make the same draws and
  coincide at shared_token_frac 0.
- Celebrities: split_seed draws one random order of all events; the first round(celeb_frac * 2
  n_people) are celebrities, so celebrity sets are nested as celeb_frac grows. A non-celebrity
  event gets its language from its position counted from the END of that order through a fixed
  low-discrepancy sequence (language 0 weighted lang_ratio, each other language 1), so an event
  keeps its language across the family and the majority:minority split of the non-celebrity events
  is exact up to one event.
- Held-out template: drawn per fact (uniform) before celeb_frac is applied, with a random preference
  order of the fact's other templates. Constant training size (fixed_train_size): the size at
  celeb_frac=0, i.e. 4 n_people (n_templates - 1). Per (fact type, language) cell the non-celebrity
  training quota is proportional to the cell's facts (largest remainder) and spread evenly by event:
  with b = quota / facts, every fact keeps floor(b) or ceil(b) templates (the remainder goes to facts
  of a fixed random priority), its first ones in its preference order, so a fact's training templates
  shrink as nested subsets along a celeb_frac family; the rest go to the ID test. Infeasible
  celeb_frac is an error.
- Subject position (subject_pos): 'not_last' (default) puts the subject anywhere among the filler
  words but never right before the attribute, so the attribute always follows a template word, as in
  the method's examples ("Alice Brown was born in"); 'first' puts it first; 'any' allows every slot.
- balanced / imbalanced (2 languages): deficits |n_lang0(v) - n_lang1(v)| per fact type and value
  are measured on the training split; NEW people are made whose single verbalized event fills them:
  each new fact carries 1..n_templates-1 training verbalizations of its event's language, the year
  fact and the city fact of one event are paired where possible (a fact left unpaired has its
  partner attribute drawn at random and never verbalized; the person's other event is never
  verbalized either). balanced puts each new event in the language where its values are rarer;
  imbalanced uses the very same events, templates and counts in the other language. New facts get ID
  tests (their unused templates) and OOD tests like any other fact. n_extra_events caps the number
  of new events (0 = as many as needed).
- mi_lang_attr[ft] = I(language; attribute value) in bits over the training examples of fact type
  ft; 'mean' = unweighted mean over fact types. mi_token_lang = I(token id; language of the example)
  in bits over all prompt-token occurrences (BOS excluded) of the training split.
- Celebrity facts are all in train (no ID test of their own). Files are sorted by (person, fact
  type, language, template); shuffle when sampling. meta.json adds to the contract: 'name',
  'version', 'n_people' (base people; new ones have larger ids and 'extra': true), 'event_lang'
  {event: [lang per person, -1 = celebrity]}, 'extra_events' [[person, event, lang]].
- block_size: the longest example the pools and templates allow (reached with the word tokenizer),
  so a celeb_frac family shares it and its runs can train in lockstep.
- Dataset name: cfg['dataset'], else the knobs that differ from the defaults, numbers as key+value,
  strings as value ('celeb_frac0.08', 'char_low-lang_ratio20.0'), else 'default'.
- The command line also accepts train.py's settings (ignored here, read from train.py's source), so
  one config file such as config/celeb_08.py (which sets out_dir) serves both scripts.
- VERSION names the generator's output: a dataset made by another version is rebuilt, and results
  made on it show as stale (report.py).
"""
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile

import numpy as np

from configurator import cli, config_keys, configure, file_settings

# -----------------------------------------------------------------------------
# advanced: n_first_names, n_last_names, n_cities, n_birth_years, first_birth_year, n_lifespans,
# advanced: min_lifespan, kg_seed, template_len_min, template_len_max, shared_token_frac,
# advanced: shared_token_mode, subject_pos, lang_seed, fixed_train_size, n_extra_events, split_seed
dataset = ''               # folder name under data_dir; '' = derived from the knobs that differ from the defaults
data_dir = 'data'          # where datasets live
# knowledge graph (kg_seed)
n_people = 1000            # persons, two events each (birth, death), four facts each
n_first_names = 100        # first-name pool, smaller than n_people so that people share first names
n_last_names = 200         # last-name pool; n_first_names * n_last_names must cover every person
n_cities = 100             # city pool shared by birth and death
n_birth_years = 20         # consecutive birth years
first_birth_year = 1900    # earliest birth year
n_lifespans = 11           # consecutive lifespans; death year = birth year + lifespan
min_lifespan = 60          # shortest lifespan; >= n_birth_years keeps death years disjoint from birth years
kg_seed = 0                # seed of the knowledge graph
# synthetic languages (lang_seed)
n_langs = 2                # number of languages, named lang0, lang1, ...
n_templates = 5            # templates per language and fact type
template_len_min = 4       # filler words per template, at least
template_len_max = 8       # filler words per template, at most
shared_token_frac = 0.0    # fraction of each language's filler words drawn from a pool common to all languages
shared_token_mode = 'random'  # common words in random slots per language, or 'role': one slot of one fact type's template in all
subject_pos = 'not_last'   # where the subject goes among a template's fillers (not_last: never right before the attribute)
tokenizer = 'word'         # word: one token per word; char_low / char_cased: one per character
lang_seed = 0              # seed of the templates
# splits (split_seed)
celeb_frac = 0.1           # fraction of events verbalized with every template of every language (parallel data)
lang_ratio = 1.0           # majority:minority ratio of non-celebrity events (language 0 is the majority)
fixed_train_size = True    # keep the train split at its celeb_frac=0 size, surplus goes to the ID test
variant = 'src'            # balanced / imbalanced: new monolingual events on top of src
n_extra_events = 0         # cap on new events for balanced/imbalanced; 0 = as many as balancing needs
split_seed = 0             # seed of the splits
# -----------------------------------------------------------------------------
DATA_DEFAULTS = config_keys(globals())

FACT_TYPES = ['birth_year', 'birth_city', 'death_year', 'death_city']   # fact k belongs to event k // 2
EVENTS = ['birth', 'death']
SPLITS = ['train', 'id_test', 'ood_test']
SPECIALS = ['<pad>', '<bos>', '<eos>']
TOKENIZERS = ('word', 'char_low', 'char_cased')
VARIANTS = ('src', 'balanced', 'imbalanced')
SUBJECT_POS = ('not_last', 'any', 'first')
SHARED_MODES = ('random', 'role')
CHOICES = {'tokenizer': TOKENIZERS, 'variant': VARIANTS, 'subject_pos': SUBJECT_POS, 'shared_token_mode': SHARED_MODES}
CONSONANTS, VOWELS = 'bdfgklmnprstvz', 'aeiou'
VERSION = 2                # bump when the generator's output changes: prepare() rebuilds, results go stale
# 2: drops even by event under fixed_train_size; subject_pos (default: never right before the attribute)


def rng_for(seed, stream):
    # independent numpy streams per (seed, purpose): 0 kg, 1 languages, 2 splits, 3 extra events, 4 extra names
    return np.random.default_rng(np.random.SeedSequence([seed, stream]))


def data_cfg(cfg):
    """The data knobs of a (possibly larger, e.g. train.py's) config."""
    return {k: cfg.get(k, v) for k, v in DATA_DEFAULTS.items()}


def check(c):
    """A one-line ValueError naming the knob for every bad setting, before anything is written."""
    pools = c['n_first_names'] * c['n_last_names']
    rules = [
        (0 <= c['celeb_frac'] <= 1, f"celeb_frac={c['celeb_frac']} must be in [0, 1]"),
        (c['n_templates'] >= 2, f"n_templates={c['n_templates']} must be >= 2 (one per fact is held out)"),
        (c['lang_ratio'] >= 1, f"lang_ratio={c['lang_ratio']} must be >= 1 (majority:minority)"),
        *[(c[k] in v, f"{k}={c[k]!r} is not one of {', '.join(v)}") for k, v in CHOICES.items()],
        (c['n_langs'] >= 2, f"n_langs={c['n_langs']} must be >= 2"),
        (c['variant'] == 'src' or c['n_langs'] == 2, f"variant={c['variant']!r} needs n_langs=2"),
        *[(c[k] >= 1, f"{k}={c[k]} must be >= 1") for k in
          ('n_people', 'n_first_names', 'n_last_names', 'n_cities', 'n_birth_years', 'n_lifespans')],
        (c['n_people'] <= pools, f"n_people={c['n_people']} exceeds n_first_names * n_last_names = {pools}"
                                 f" (names are unique)"),
        (c['n_people'] > min(c['n_first_names'], c['n_last_names']),
         f"n_people={c['n_people']} is too small for the name pools n_first_names={c['n_first_names']}, "
         f"n_last_names={c['n_last_names']}: no name would have to be shared"),
        (1 <= c['template_len_min'] <= c['template_len_max'],
         f"template_len_min={c['template_len_min']}, template_len_max={c['template_len_max']}: need 1 <= min <= max"),
        (0 <= c['shared_token_frac'] <= 1, f"shared_token_frac={c['shared_token_frac']} must be in [0, 1]"),
        (c['min_lifespan'] >= c['n_birth_years'], f"min_lifespan={c['min_lifespan']} must be >= n_birth_years "
                                                  f"(death years disjoint from birth years)"),
        (c['n_extra_events'] >= 0, f"n_extra_events={c['n_extra_events']} must be >= 0"),
        (os.sep not in c['dataset'] and c['dataset'] not in ('.', '..'), f"dataset={c['dataset']!r} is no folder name"),
    ]
    for ok, msg in rules:
        if not ok:
            raise ValueError(f"data_gen error: {msg}")


def dataset_name(cfg):
    """cfg['dataset'], or a short deterministic name from the knobs that differ from the defaults:
    numbers as key+value ('celeb_frac0.08'), strings as their value ('char_low'), joined by '-'."""
    cfg = data_cfg(cfg)
    if cfg['dataset']:
        return cfg['dataset']
    parts = [str(v) if isinstance(v, str) else f'{k}{v}' for k, v in cfg.items()
             if k not in ('dataset', 'data_dir') and v != DATA_DEFAULTS[k]]
    name = ''.join(c if c.isalnum() or c in '._-' else '_' for c in '-'.join(parts)) or 'default'
    if len(name) > 80:  # keep it a sane folder name; the hash keeps it unique
        name = name[:60] + '-' + hashlib.sha1(name.encode()).hexdigest()[:10]
    return name


def dataset_path(cfg):
    return os.path.join(data_cfg(cfg)['data_dir'], dataset_name(cfg))


# ----------------------------------------------------------------------------- knowledge graph

def make_words(rng, n, syllables, exclude=()):
    """n distinct pronounceable lowercase strings of syllables[0]..syllables[1] consonant-vowel
    syllables, 30% with a final consonant."""
    out, seen = [], set(exclude)
    while len(out) < n:
        m = 2 * (n - len(out)) + 16
        ns = rng.integers(syllables[0], syllables[1] + 1, m)
        c = rng.integers(0, len(CONSONANTS), (m, syllables[1] + 1))
        v = rng.integers(0, len(VOWELS), (m, syllables[1]))
        coda = rng.random(m) < 0.3
        for i in range(m):
            w = ''.join(CONSONANTS[c[i, j]] + VOWELS[v[i, j]] for j in range(ns[i]))
            w += CONSONANTS[c[i, -1]] if coda[i] else ''
            if w not in seen and len(out) < n:
                seen.add(w)
                out.append(w)
    return out


def make_kg(cfg):
    """People with unique (first, last) names and uniformly drawn attributes. Returns a dict of
    name pools, attribute value lists and per-person int arrays (indices into those lists)."""
    rng = rng_for(cfg['kg_seed'], 0)
    nf, nl, nc = cfg['n_first_names'], cfg['n_last_names'], cfg['n_cities']
    pool = [w.capitalize() for w in make_words(rng, nf + nl + nc, (2, 3))]
    P = cfg['n_people']
    combo = rng.choice(nf * nl, P, replace=False)           # (P,) unique name combinations
    nb, ns = cfg['n_birth_years'], cfg['n_lifespans']
    y0 = cfg['first_birth_year']
    attributes = {
        'birth_year': [str(y0 + i) for i in range(nb)],
        'birth_city': pool[nf + nl:],
        'death_year': [str(y0 + cfg['min_lifespan'] + i) for i in range(nb + ns - 1)],
        'death_city': pool[nf + nl:],
    }
    by, life = rng.integers(0, nb, P), rng.integers(0, ns, P)
    bc, dc = rng.integers(0, nc, P), rng.integers(0, nc, P)
    # val[p, k]: index of person p's attribute of fact type k in attributes[FACT_TYPES[k]]   (P, 4)
    val = np.stack([by, bc, by + life, dc], 1)
    return {'first': pool[:nf], 'last': pool[nf:nf + nl], 'attributes': attributes,
            'name_idx': np.stack([combo // nl, combo % nl], 1), 'val': val, 'n_base': P}


# ----------------------------------------------------------------------------- languages

def make_templates(cfg):
    """templates[l][k][t] = (words before the subject, words after it); the attribute follows.
    -> (templates, filler pool). The pool always holds n_langs x S words (S = filler slots per
    language), whatever shared_token_frac: the common words are its first ones, and every pool word
    is in the vocabulary, used or not, so that datasets differing only in shared_token_frac share
    their vocabulary size (and train in lockstep)."""
    rng = rng_for(cfg['lang_seed'], 1)
    L, T = cfg['n_langs'], cfg['n_templates']
    base = rng.integers(cfg['template_len_min'], cfg['template_len_max'] + 1, (len(FACT_TYPES), T))
    perm = [[rng.permutation(T) for _ in FACT_TYPES] for _ in range(L)]   # language l's template t is base template perm[l][k][t]
    lens = [[base[k][perm[l][k]] for k in range(len(FACT_TYPES))] for l in range(L)]  # same multiset per language
    S = int(base.sum())                                               # filler slots per language
    K = int(np.floor(cfg['shared_token_frac'] * S + 0.5))             # shared slots per language
    words = make_words(rng, L * S, (2, 3))
    common, own = words[:K], words[K:]
    # role of each filler slot in language l's order: (fact type, base template, word index)   [S per language]
    roles = [[(k, j, i) for k in range(len(FACT_TYPES)) for j in perm[l][k] for i in range(base[k][j])] for l in range(L)]
    # role mode: placed[(k, base template)] = [(fillers, subject position)] of the languages so far
    role, tpl, role_word, placed = cfg['shared_token_mode'] == 'role', [], {}, {}
    for l in range(L):
        fill_it = iter(own[l * (S - K):(l + 1) * (S - K)])
        slots = np.zeros(S, bool)
        slots[rng.choice(S, K, replace=False)] = True                 # which slots hold the common words
        order = iter(rng.permutation(K))
        if l and role:                                 # language 0's word of each role; the draws above still run, so
            flat = [role_word.get(r) or next(fill_it) for r in roles[l]]   # both modes share every other draw
        else:
            flat = [common[next(order)] if s else next(fill_it) for s in slots]
            role_word = {r: w for r, w, s in zip(roles[l], flat, slots) if s}
        case = str.upper if (cfg['tokenizer'] == 'char_cased' and l > 0) else str.lower
        tl, i = [], 0
        for k in range(len(FACT_TYPES)):
            tk = []
            for t in range(T):
                n = int(lens[l][k][t])
                ws = [case(w) for w in flat[i:i + n]]
                i += n
                # subject slot among the fillers; not_last: a template word, never the subject,
                # predicts the attribute (as 'Alice Brown was born in'), so recall is template-led
                pos = {'any': int(rng.integers(0, n + 1)), 'not_last': int(rng.integers(0, n)), 'first': 0}[cfg['subject_pos']]
                if role:   # the same words as in another language: move the subject, or OOD examples repeat training ones
                    done = placed.setdefault((k, perm[l][k][t]), [])
                    taken = {q for w, q in done if w == ws}
                    free = [q for q in range({'any': n + 1, 'not_last': n, 'first': 1}[cfg['subject_pos']]) if q not in taken]
                    pos = free[pos % len(free)] if pos in taken and free else pos
                    done.append((ws, pos))
                tk.append((ws[:pos], ws[pos:]))
            tl.append(tk)
        tpl.append(tl)
    if role and len({s for tl in template_strings(tpl) for ts in tl for s in ts}) < L * len(FACT_TYPES) * T:
        raise ValueError(f"data_gen error: shared_token_mode={cfg['shared_token_mode']!r} with subject_pos="
                         f"{cfg['subject_pos']!r} makes a template the same in two languages (OOD examples would be training "
                         f"examples); use subject_pos='not_last'")
    return tpl, words


def template_strings(tpl):
    return [[[' '.join(b + ['{subject}'] + a + ['{attr}']) for b, a in tk] for tk in tl] for tl in tpl]


# ----------------------------------------------------------------------------- splits

def lang_sequence(weights, n):
    """Languages for n slots such that every prefix matches the weights up to one slot."""
    w = np.asarray(weights, float) / sum(weights)
    counts, seq = np.zeros(len(w)), np.empty(n, np.int64)
    for j in range(n):
        l = int(np.argmax(w * (j + 1) - counts))
        seq[j] = l
        counts[l] += 1
    return seq


def base_split(cfg, kg):
    """Example keys (person, fact type, lang, template) per split, (N, 4) int arrays, for the
    people of the knowledge graph; plus the celebrity mask and language of every event."""
    rng = rng_for(cfg['split_seed'], 2)
    P, L, T = kg['n_base'], cfg['n_langs'], cfg['n_templates']
    E, F = 2 * P, 4 * P
    # every draw that does not depend on celeb_frac comes first, so a family shares them
    order = rng.permutation(E)                     # celebrity order: the first n_c events are celebrities
    keys = rng.random((F, T))                      # template preference per fact: the largest key is held out
    prio = rng.random(F)                           # which facts of a cell keep one template more
    n_c = int(np.floor(cfg['celeb_frac'] * E + 0.5))
    celeb = np.zeros(E, bool)
    celeb[order[:n_c]] = True
    lang = np.empty(E, np.int64)
    lang[order[::-1]] = lang_sequence([cfg['lang_ratio']] + [1.0] * (L - 1), E)
    lang[celeb] = -1
    fact_celeb, fact_lang = celeb[np.arange(F) // 2], lang[np.arange(F) // 2]   # fact f = 4p + k -> event f // 2
    nc_facts = np.flatnonzero(~fact_celeb)
    n_celeb_ex = int(fact_celeb.sum()) * L * T
    R = F * (T - 1) - n_celeb_ex if cfg['fixed_train_size'] else len(nc_facts) * (T - 1)
    if R < len(nc_facts):
        limit = (T - 2) / (L * T - 1)
        raise ValueError(f"data_gen error: celeb_frac={cfg['celeb_frac']} too large for fixed_train_size "
                         f"(every other fact needs a training example; at most about {limit:.3f})")
    # non-celebrity training quota per (fact type, language) cell, proportional to its facts
    cell = (nc_facts % 4) * L + fact_lang[nc_facts]
    nf_cell = np.bincount(cell, minlength=4 * L)
    quota = R * nf_cell // max(len(nc_facts), 1)
    frac = R * nf_cell % max(len(nc_facts), 1)
    quota[np.argsort(-frac, kind='stable')[:R - quota.sum()]] += 1
    # spread each cell's quota evenly over its facts: b = quota / facts, every fact keeps floor(b)
    # templates and the cell's remainder goes to the facts of highest priority (one more each)
    base, rem = np.divmod(quota, np.maximum(nf_cell, 1))
    by_cell = np.lexsort((-prio[nc_facts], cell))                  # facts grouped by cell, priority first
    rank = np.empty(len(nc_facts), np.int64)
    rank[by_cell] = np.arange(len(by_cell)) - np.searchsorted(cell[by_cell], cell[by_cell])
    n_keep = base[cell] + (rank < rem[cell])                         # training templates per fact  (N,)
    # a fact keeps its n_keep non-held templates of smallest key: nested as celeb_frac grows
    pref = np.argsort(keys[nc_facts], 1)                              # (N, T); the held-out one is last
    kept = np.arange(T)[None, :] < n_keep[:, None]
    kept[:, -1] = False
    tr_f, tr_j = np.nonzero(kept)
    te_f, te_j = np.nonzero(~kept)
    tr_t, te_t = pref[tr_f, tr_j], pref[te_f, te_j]
    tr_f, te_f = nc_facts[tr_f], nc_facts[te_f]

    def rows(f, l, t):
        return np.stack([f // 4, f % 4, l, t], 1).astype(np.int64)
    cf = np.flatnonzero(fact_celeb)
    cgrid = np.stack(np.meshgrid(cf, np.arange(L), np.arange(T), indexing='ij'), -1).reshape(-1, 3)
    train = [rows(cgrid[:, 0], cgrid[:, 1], cgrid[:, 2]), rows(tr_f, fact_lang[tr_f], tr_t)]
    idt = [rows(te_f, fact_lang[te_f], te_t)]
    ogrid = np.stack(np.meshgrid(nc_facts, np.arange(L), np.arange(T), indexing='ij'), -1).reshape(-1, 3)
    ogrid = ogrid[ogrid[:, 1] != fact_lang[ogrid[:, 0]]]
    ood = [rows(ogrid[:, 0], ogrid[:, 1], ogrid[:, 2])]
    return {'train': train, 'id_test': idt, 'ood_test': ood}, celeb, lang


def split_needs(needs, n, K):
    """Split each value's deficit D into facts of 1..K examples, n facts in all
    (sum ceil(D/K) <= n <= sum D). needs: [(value, D)] -> [(value, examples)]."""
    nf = [-(-D // K) for _, D in needs]
    extra = n - sum(nf)
    while extra > 0:
        for i, (_, D) in enumerate(needs):
            if extra and nf[i] < D:
                nf[i] += 1
                extra -= 1
    facts = []
    for (v, D), f in zip(needs, nf):
        q, r = divmod(D, f)
        facts += [(v, q + 1)] * r + [(v, q)] * (f - r)
    return facts


def add_extras(cfg, kg, splits):
    """balanced / imbalanced: new people whose single verbalized event fills the per-value
    language deficits of the training split. Extends kg in place; returns extra example keys per
    split and the list of new events [person, event, lang]."""
    rng = rng_for(cfg['split_seed'], 3)
    T, K, P = cfg['n_templates'], cfg['n_templates'] - 1, kg['n_base']
    train = np.concatenate(splits['train'])
    vals = kg['val'][train[:, 0], train[:, 1]]
    nv = max(len(v) for v in kg['attributes'].values())
    counts = np.zeros((4, nv, 2), np.int64)                         # (fact type, value, lang)
    np.add.at(counts, (train[:, 1], vals, train[:, 2]), 1)
    events = []                                                     # (event, lang, year value, n, city value, n)
    for e in range(2):
        for m in range(2):
            need = [[(v, int(d)) for v, d in enumerate(counts[k, :, 1 - m] - counts[k, :, m]) if d > 0]
                    for k in (2 * e, 2 * e + 1)]
            lo = [sum(-(-D // K) for _, D in nd) for nd in need]
            hi = [sum(D for _, D in nd) for nd in need]
            if max(lo) <= min(hi):
                n = [max(lo)] * 2
            else:
                n = [hi[0], lo[1]] if hi[0] < lo[1] else [lo[0], hi[1]]
            facts = [split_needs(nd, nn, K) for nd, nn in zip(need, n)]
            facts = [[f[i] for i in rng.permutation(len(f))] for f in facts]
            for i in range(max(n)):
                (yv, ya), (cv, ca) = [f[i] if i < len(f) else (-1, 0) for f in facts]
                events.append((e, m, yv, ya, cv, ca))
    if cfg['n_extra_events'] and len(events) > cfg['n_extra_events']:
        raise ValueError(f"data_gen error: n_extra_events={cfg['n_extra_events']} is too small: "
                         f"balancing needs {len(events)} new events")
    n_new = len(events)
    nf, nl = cfg['n_first_names'], cfg['n_last_names']
    free = np.setdiff1d(np.arange(nf * nl), kg['name_idx'][:, 0] * nl + kg['name_idx'][:, 1])
    if len(free) < n_new:
        raise ValueError(f"data_gen error: n_first_names * n_last_names = {nf * nl} cannot name "
                         f"{P} people plus {n_new} new ones for variant={cfg['variant']!r}")
    combo = rng_for(cfg['split_seed'], 4).choice(free, n_new, replace=False)
    nb, ns, ncity = cfg['n_birth_years'], cfg['n_lifespans'], cfg['n_cities']
    val = np.zeros((n_new, 4), np.int64)
    keys = {s: [] for s in SPLITS}
    new_events = []
    for i, (e, m, yv, ya, cv, ca) in enumerate(events):
        p = P + i
        by, life = int(rng.integers(0, nb)), int(rng.integers(0, ns))
        if e == 0 and ya:
            by = yv
        if e == 1 and ya:                                           # a death year fixes birth year + lifespan
            ok = [s for s in range(ns) if 0 <= yv - s < nb]
            life = ok[int(rng.integers(0, len(ok)))]
            by = yv - life
        val[i] = [by, int(rng.integers(0, ncity)), by + life, int(rng.integers(0, ncity))]
        if ca:
            val[i, 2 * e + 1] = cv
        lang = m if cfg['variant'] == 'balanced' else 1 - m          # imbalanced: the value's majority language
        new_events.append([p, EVENTS[e], lang])
        for k, a in ((2 * e, ya), (2 * e + 1, ca)):
            if a == 0:
                continue                                            # this fact is never verbalized
            perm = rng.permutation(T)
            keys['train'] += [(p, k, lang, t) for t in perm[:a]]
            keys['id_test'] += [(p, k, lang, t) for t in perm[a:]]
            keys['ood_test'] += [(p, k, 1 - lang, t) for t in range(T)]
    kg['name_idx'] = np.concatenate([kg['name_idx'], np.stack([combo // nl, combo % nl], 1)])
    kg['val'] = np.concatenate([kg['val'], val])
    return {s: np.array(v, np.int64).reshape(-1, 4) for s, v in keys.items()}, new_events


# ----------------------------------------------------------------------------- tokens and files

def make_vocab(cfg, kg, tpl, pool):
    words = {w for tl in tpl for tk in tl for b, a in tk for w in b + a} | set(pool)
    words |= set(kg['first']) | set(kg['last'])
    for vs in kg['attributes'].values():
        words |= set(vs)
    if cfg['tokenizer'] == 'word':
        return SPECIALS + sorted(words)
    return SPECIALS + sorted(set(''.join(words)) | {' '})


def max_len(cfg, kg, tpl):
    """Longest possible example (BOS ... EOS) given the templates and the name and value pools: an
    upper bound on every example that a celeb_frac family (and src/balanced/imbalanced) shares,
    so their runs can train in lockstep; with the word tokenizer it is reached."""
    if cfg['tokenizer'] == 'word':
        return 2 + max(len(b) + len(a) for tl in tpl for tk in tl for b, a in tk) + 2 + 1
    name = max(map(len, kg['first'])) + 1 + max(map(len, kg['last']))
    # char: fillers, one space after each word before the attribute, the name, the attribute
    return 2 + name + max(sum(len(w) + 1 for w in b + a) + 1 + max(map(len, kg['attributes'][ft]))
                          for tl in tpl for ft, tk in zip(FACT_TYPES, tl) for b, a in tk)


def encode(meta, text):
    """Token ids of a text (no BOS/EOS) under a dataset's tokenizer; meta from load_meta()."""
    index = {t: i for i, t in enumerate(meta['vocab'])}
    pieces = text.split() if meta['config']['tokenizer'] == 'word' else list(text)
    missing = [p for p in pieces if p not in index]
    if missing:
        raise ValueError(f"data_gen error: {missing[0]!r} is not in the vocabulary")
    return [index[p] for p in pieces]


def render(cfg, kg, tpl, vocab, keys, celeb):
    """Example dicts for (N, 4) keys (person, fact type, lang, template), in key order."""
    index = {t: i for i, t in enumerate(vocab)}
    char = cfg['tokenizer'] != 'word'

    def enc(s):
        return [index[c] for c in s] if char else [index[w] for w in s.split()]
    # text = pre + subject + post + attribute; pre ends with a space, post with one   (word: spaces are not tokens)
    parts = [[[(' '.join(b) + ' ' if b else '', ''.join(' ' + w for w in a) + ' ') for b, a in tk]
              for tk in tl] for tl in tpl]
    penc = [[[(enc(pre), enc(post)) for pre, post in tk] for tk in tl] for tl in parts]
    names, name_enc = {}, {}
    attr_enc = {k: [enc(v) for v in vs] for k, vs in kg['attributes'].items()}
    bos, eos = index['<bos>'], index['<eos>']
    out = []
    for p, k, l, t in keys.tolist():
        if p not in names:
            f, s = kg['name_idx'][p]
            names[p] = kg['first'][f] + ' ' + kg['last'][s]
            name_enc[p] = enc(names[p])
        ft = FACT_TYPES[k]
        v = int(kg['val'][p, k])
        attr = kg['attributes'][ft][v]
        pre, post = parts[l][k][t]
        epre, epost = penc[l][k][t]
        prompt = [bos] + epre + name_enc[p] + epost
        out.append({'text': pre + names[p] + post + attr, 'tokens': prompt + attr_enc[ft][v] + [eos],
                    'prompt_len': len(prompt), 'subject': names[p], 'person': p, 'fact_type': ft,
                    'attribute': attr, 'lang': l, 'template': t,
                    'celebrity': bool(p < kg['n_base'] and celeb[2 * p + k // 2])})
    return out


def mutual_information(joint):
    """I(X; Y) in bits from a 2-D array of joint counts (rows X, columns Y)."""
    joint = np.asarray(joint, np.float64)
    n = joint.sum()
    if n == 0:
        return 0.0
    outer = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)   # n p(x) * n p(y)
    nz = joint > 0
    return max(0.0, float((joint[nz] / n * np.log2(joint[nz] * n / outer[nz])).sum()))


def build(cfg, verbose=False):
    """Generate the dataset of cfg into dataset_path(cfg), atomically; return the path."""
    cfg = data_cfg(cfg)
    check(cfg)
    try:                                          # fail before the work, not after it
        os.makedirs(cfg['data_dir'], exist_ok=True)
    except OSError as e:
        raise ValueError(f"data_gen error: data_dir={cfg['data_dir']!r} is not writable ({e.strerror})")
    kg, (tpl, pool) = make_kg(cfg), make_templates(cfg)
    split_keys, celeb, event_lang = base_split(cfg, kg)
    new_events = []
    if cfg['variant'] != 'src':
        extra, new_events = add_extras(cfg, kg, split_keys)
        for s in SPLITS:
            split_keys[s].append(extra[s])
    vocab = make_vocab(cfg, kg, tpl, pool)
    langs = [f'lang{l}' for l in range(cfg['n_langs'])]
    data = {}
    for s in SPLITS:
        k = np.concatenate(split_keys[s])
        data[s] = render(cfg, kg, tpl, vocab, k[np.lexsort(k.T[::-1])], celeb)
    # informativeness and extractability on the training split
    train = data['train']
    nv = max(len(v) for v in kg['attributes'].values())
    joint = np.zeros((4, cfg['n_langs'], nv), np.int64)
    tl = np.array([(FACT_TYPES.index(x['fact_type']), x['lang']) for x in train]).reshape(-1, 2)  # (N, 2)
    vals = kg['val'][[x['person'] for x in train], tl[:, 0]]
    np.add.at(joint, (tl[:, 0], tl[:, 1], vals), 1)
    mi_attr = {ft: mutual_information(joint[k]) for k, ft in enumerate(FACT_TYPES)}
    mi_attr['mean'] = float(np.mean([mi_attr[ft] for ft in FACT_TYPES]))
    toks = np.concatenate([x['tokens'][1:x['prompt_len']] for x in train])
    tlang = np.repeat(tl[:, 1], [x['prompt_len'] - 1 for x in train])
    tok_joint = np.bincount(toks * cfg['n_langs'] + tlang, minlength=len(vocab) * cfg['n_langs'])
    counts = {s: {ft: {lg: 0 for lg in langs} for ft in FACT_TYPES} for s in SPLITS}
    for s in SPLITS:
        for x in data[s]:
            counts[s][x['fact_type']][langs[x['lang']]] += 1
    n_all = len(kg['val'])
    people = [{'id': p, 'name': kg['first'][kg['name_idx'][p, 0]] + ' ' + kg['last'][kg['name_idx'][p, 1]],
               'first': kg['first'][kg['name_idx'][p, 0]], 'last': kg['last'][kg['name_idx'][p, 1]],
               **{ft: kg['attributes'][ft][int(kg['val'][p, k])] for k, ft in enumerate(FACT_TYPES)},
               'extra': p >= kg['n_base']} for p in range(n_all)]
    celeb_ev = np.flatnonzero(celeb)
    meta = {
        'name': dataset_name(cfg), 'version': VERSION, 'config': cfg, 'vocab': vocab,
        'block_size': max_len(cfg, kg, tpl),
        'languages': langs, 'fact_types': FACT_TYPES, 'attributes': kg['attributes'],
        'templates': {lg: dict(zip(FACT_TYPES, ts)) for lg, ts in zip(langs, template_strings(tpl))},
        'splits': {s: len(data[s]) for s in SPLITS}, 'counts': counts,
        'mi_lang_attr': mi_attr, 'mi_token_lang': mutual_information(tok_joint.reshape(len(vocab), -1)),
        'n_people': kg['n_base'], 'people': people,
        'celebrity_events': [[int(e // 2), EVENTS[e % 2]] for e in celeb_ev],
        'celebrity_people': sorted({int(e // 2) for e in celeb_ev}),
        'event_lang': {EVENTS[i]: event_lang[i::2].tolist() for i in range(2)},   # -1 = celebrity
        'extra_events': new_events,
    }
    path = write_dataset(cfg, meta, data)
    if verbose:
        print_summary(path, meta, data)
    return path


def write_jsonl(path, rows):
    with open(path, 'w') as f:
        f.writelines(json.dumps(r) + '\n' for r in rows)


def write_meta(path, meta):
    with open(path, 'w') as f:
        json.dump(meta, f, indent=1)
        f.write('\n')


def temp_name(kind, path):
    """Prefix of a build's temporary folder beside `path`: it names the machine and process, so
    that the next build can tell a folder left by a killed build from one still being written."""
    return f".{os.path.basename(path)}.{kind}.{socket.gethostname()}.{os.getpid()}."


def remove_stale_temps(data_dir):
    """Delete the temporary folders of builds on this machine whose process is gone (a kill -9)."""
    for entry in os.listdir(data_dir):
        m = re.fullmatch(r'\..+\.(?:tmp|old)\.(.+)\.(\d+)\.[a-z0-9_]+', entry)
        if m and m.group(1) == socket.gethostname():
            try:
                os.kill(int(m.group(2)), 0)        # raises if no such process
            except ProcessLookupError:
                shutil.rmtree(os.path.join(data_dir, entry), ignore_errors=True)
            except OSError:
                pass                               # alive, someone else's


def write_dataset(cfg, meta, data):
    """Write into a temporary folder beside the target, then rename: never a half-written dataset.
    Temporary folders of killed builds are deleted first; a full disk is named as such."""
    path = dataset_path(cfg)
    try:
        os.makedirs(cfg['data_dir'], exist_ok=True)
        remove_stale_temps(cfg['data_dir'])
        tmp = tempfile.mkdtemp(prefix=temp_name('tmp', path), dir=cfg['data_dir'])
    except OSError as e:
        raise ValueError(f"data_gen error: data_dir={cfg['data_dir']!r} is not writable ({e.strerror})")
    try:
        os.chmod(tmp, 0o755)
        for s in SPLITS:
            write_jsonl(os.path.join(tmp, f'{s}.jsonl'), data[s])
        write_meta(os.path.join(tmp, 'meta.json'), meta)
        if os.path.exists(path):                  # replace an outdated dataset
            old = tempfile.mkdtemp(prefix=temp_name('old', path), dir=cfg['data_dir'])
            os.replace(path, os.path.join(old, 'd'))
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.replace(tmp, path)
            except OSError:
                if not os.path.isdir(path):
                    raise
                shutil.rmtree(tmp)                # another process just wrote the same dataset
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(f"data_gen error: cannot write dataset {path}: no space left on device") from None
        raise
    return path


def print_summary(path, meta, data):
    print(f"dataset {path}: vocab {len(meta['vocab'])}, block_size {meta['block_size']}, "
          f"{meta['n_people']} people, {len(meta['celebrity_events'])} celebrity events, "
          f"{len(meta['extra_events'])} new events")
    print('splits: ' + ', '.join(f'{s} {n}' for s, n in meta['splits'].items()))
    mi = meta['mi_lang_attr']
    print('mi_lang_attr (bits): ' + ', '.join(f'{k} {v:.4f}' for k, v in mi.items())
          + f"; mi_token_lang {meta['mi_token_lang']:.4f} bits")
    rng = np.random.default_rng(0)
    for s in SPLITS:
        for i in sorted(rng.choice(len(data[s]), min(3, len(data[s])), replace=False)):
            x = data[s][i]
            cut = len(x['text']) - len(x['attribute'])
            print(f"  {s:<8} {meta['languages'][x['lang']]} {x['fact_type']:<10} "
                  f"{x['text'][:cut]}| {x['attribute']}")


def line_count(path):
    with open(path, 'rb') as f:
        return sum(chunk.count(b'\n') for chunk in iter(lambda: f.read(1 << 20), b''))


def prepare(cfg):
    """Path of the dataset of cfg; built first unless a complete dataset made from the same knobs
    by this VERSION is there (a split file whose line count differs from meta.json's, e.g. cut
    short by a full disk, is rebuilt: the dataset is a pure function of the knobs)."""
    cfg = data_cfg(cfg)
    check(cfg)
    path = dataset_path(cfg)
    why = 'missing'
    try:
        with open(os.path.join(path, 'meta.json')) as f:
            meta = json.load(f)
        why = 'made by another version or from other knobs'
        if meta.get('version') == VERSION and all(meta['config'].get(k, DATA_DEFAULTS[k]) == v  # a knob newer than the
                                                   for k, v in cfg.items() if k != 'data_dir'):  # dataset: its default
            bad = [s for s in SPLITS if line_count(os.path.join(path, f'{s}.jsonl')) != meta['splits'][s]]
            if not bad:
                return path
            why = f"{bad[0]}.jsonl is incomplete"
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    print(f"building dataset {path} ({why})")
    return build(cfg)


def load_meta(path):
    try:
        with open(os.path.join(path, 'meta.json')) as f:
            return json.load(f)
    except OSError:
        raise ValueError(f"data_gen error: no dataset at {path} (meta.json missing); run data_gen.py first") from None
    except ValueError:
        raise ValueError(f"data_gen error: {path}/meta.json is not valid JSON") from None


def load_split(path, split, meta=None):
    """The examples of one split; a torn line or a line count that differs from meta.json's is a
    one-line error naming the file (delete the folder, and train.py or data_gen.py rebuilds it)."""
    if split not in SPLITS:
        raise ValueError(f"data_gen error: split {split!r} is not one of {', '.join(SPLITS)}")
    file = os.path.join(path, f'{split}.jsonl')
    try:
        with open(file) as f:
            lines = f.readlines()
    except OSError:
        raise ValueError(f"data_gen error: no {split} split at {path}; run data_gen.py first") from None
    out = []
    for i, line in enumerate(lines):
        try:
            out.append(json.loads(line))
        except ValueError:
            raise ValueError(f"data error: {file} line {i + 1} is not valid JSON (a torn file?); "
                             f"delete {path} to rebuild it") from None
    n = (meta or load_meta(path)).get('splits', {}).get(split)
    if n is not None and n != len(out):
        raise ValueError(f"data error: {file} has {len(out)} examples, meta.json says {n} (cut short?); "
                         f"delete {path} to rebuild it")
    return out


if __name__ == '__main__':
    # train.py's knobs are accepted (and ignored here) so that one config file, such as
    # config/celeb_08.py which also sets out_dir, serves both scripts; read from its source, not
    # imported, so that data_gen does not depend on train
    here = os.path.dirname(os.path.abspath(__file__))
    others = {k: v for k, v in file_settings(os.path.join(here, 'train.py')).items() if k not in DATA_DEFAULTS}
    cli(lambda: build(data_cfg(configure(dict(DATA_DEFAULTS, **others), choices=CHOICES,
                                         sources=[__file__])), verbose=True))
