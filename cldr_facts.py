"""
A parallel set of closed-book facts built from CLDR (the Unicode Common Locale Data Repository, read
with the babel package), in ECLeKTic's jsonl format: a stand-in for ECLeKTic that needs no download, so
llm_eval.py can run on a machine without a dataset hub (docs/llm.md).

    python cldr_facts.py                          # -> data/cldr_facts/facts.jsonl, paraphrases.jsonl, meta.json
    python cldr_facts.py --n_per_type=200 --languages=de,en,fr,ja
    python cldr_facts.py --help                   # every knob with its default

Three relations, each a (subject -> answer) pair whose names CLDR gives in every language:
    currency   territory -> the one currency in use there             "What is the currency of Japan?"  Japanese Yen
    language   territory -> its one official language                 "What is the official language of Chile?"  Spanish
    city       time-zone city -> the territory of its zone             "In which country is the city of Osaka?" ...
Subjects and answers are CLDR's display names in each language (the answers are thus translations of each
other); the questions come from the templates below (three per relation and language, written for this
set: the first is the question, the others are paraphrases in the fact's original language). Facts are
ranked by how common the subject's name is (wordfreq Zipf frequency, averaged over `popularity_langs`:
the `celebrity` field, llm_eval's celebrity baseline), capped per answer so that e.g. Euro or English
does not dominate, and dealt round-robin to original languages in a seeded order (ECLeKTic's original
language is where a fact is documented; here every fact is known everywhere, so it is only the language
a fact is asked in first). Every fact passes `check`: each answer is a CLDR name of its language, no
question holds a word of the English templates (unless it is English) or, in a language not written
in Latin script, any ASCII letter, and no question contains any language's answer; names that CLDR
disambiguates ("Congo - Kinshasa") are left out.
"""
import datetime
import functools
import json
import os
import random
import re
import time

from configurator import cli, configure, config_keys, overrides
from metrics import judge_match

# -----------------------------------------------------------------------------
out_dir = 'data/cldr_facts'          # facts.jsonl (ECLeKTic format), paraphrases.jsonl, meta.json
languages = 'de,en,es,fr,he,hi,id,it,ja,ko,pt,zh'  # comma-separated; each needs templates below (ECLeKTic's 12)
fact_types = 'currency,language,city'  # relations to include (see the docstring)
n_per_type = 150                     # facts per relation, most widely known first (0 = every fact that passes)
max_per_answer = 8                   # at most this many facts of one relation share an answer (Euro, English, ...)
max_per_country = 2                  # city facts: at most this many cities of one territory
n_paraphrases = 2                    # extra original-language questions per fact (0-2): llm_eval's unification baseline
currency_date = '2025-01-01'         # currencies in use (legal tender) on this date
popularity_langs = 'de,en,es,fr,he,hi,id,it,pt'  # wordfreq languages averaged for popularity (ja, ko, zh need extra tokenizers)
seed = 0                             # order in which facts are dealt to original languages
# -----------------------------------------------------------------------------
DEFAULTS = config_keys(globals())

# Question templates: {s} is the subject's name. Three per relation and language; the first is the question,
# the rest are paraphrases. French and German questions name the territory after a colon, which avoids the
# article and case a territory's name would take in the sentence ("du Japon", "der Schweiz").
TEMPLATES = {
    'en': {'currency': ['What is the currency of {s}?', 'Which currency is used in {s}?',
                        'What is the official currency of {s}?'],
           'language': ['What is the official language of {s}?', 'Which language is official in {s}?',
                        'Which language has official status in {s}?'],
           'city': ['In which country is the city of {s}?', 'Which country is the city of {s} located in?',
                    'To which country does the city of {s} belong?']},
    'de': {'currency': ['Welche Währung hat das folgende Land: {s}?', 'Land: {s}. Welche Währung wird dort verwendet?',
                        'Welches Geld benutzt man im folgenden Land: {s}?'],
           'language': ['Welche Amtssprache hat das folgende Land: {s}?', 'Land: {s}. Welche Sprache ist dort Amtssprache?',
                        'Welche Sprache ist die offizielle Sprache dieses Landes: {s}?'],
           'city': ['Zu welchem Land gehört die Stadt {s}?', 'Welchem Land gehört die Stadt {s} an?',
                    'Die Stadt {s} liegt im Staatsgebiet welches Landes?']},
    'es': {'currency': ['¿Cuál es la moneda de {s}?', '¿Qué moneda se usa en {s}?', '¿Con qué moneda se paga en {s}?'],
           'language': ['¿Cuál es el idioma oficial de {s}?', '¿Qué idioma es oficial en {s}?',
                        '¿Qué lengua se habla oficialmente en {s}?'],
           'city': ['¿En qué país está la ciudad de {s}?', '¿En qué país se encuentra la ciudad de {s}?',
                    '¿A qué país pertenece la ciudad de {s}?']},
    'fr': {'currency': ['Quelle est la monnaie du pays suivant : {s} ?', 'Pays : {s}. Quelle est sa monnaie ?',
                        'Avec quelle monnaie paie-t-on dans ce pays : {s} ?'],
           'language': ['Quelle est la langue officielle du pays suivant : {s} ?',
                        'Pays : {s}. Quelle est sa langue officielle ?',
                        'Quelle langue parle-t-on officiellement dans ce pays : {s} ?'],
           'city': ['Dans quel pays se trouve la ville de {s} ?', 'Dans quel pays est située la ville de {s} ?',
                    'À quel pays appartient la ville de {s} ?']},
    'it': {'currency': ['Qual è la valuta del seguente paese: {s}?', 'Paese: {s}. Qual è la sua valuta?',
                        'Con quale moneta si paga nel seguente paese: {s}?'],
           'language': ['Qual è la lingua ufficiale del seguente paese: {s}?', 'Paese: {s}. Qual è la sua lingua ufficiale?',
                        'Quale lingua si parla ufficialmente nel seguente paese: {s}?'],
           'city': ['Di quale paese fa parte la città di {s}?', 'A quale paese appartiene la città di {s}?',
                    'La città di {s} si trova nel territorio di quale paese?']},
    'pt': {'currency': ['Qual é a moeda do seguinte país: {s}?', 'País: {s}. Qual é a sua moeda?',
                        'Com que moeda se paga no seguinte país: {s}?'],
           'language': ['Qual é a língua oficial do seguinte país: {s}?', 'País: {s}. Qual é a sua língua oficial?',
                        'Que idioma se fala oficialmente no seguinte país: {s}?'],
           'city': ['Em que país fica a cidade de {s}?', 'A que país pertence a cidade de {s}?',
                    'Em qual país está localizada a cidade de {s}?']},
    'id': {'currency': ['Apa mata uang {s}?', 'Mata uang apa yang digunakan di {s}?',
                        'Orang membayar dengan mata uang apa di {s}?'],
           'language': ['Apa bahasa resmi {s}?', 'Bahasa apa yang menjadi bahasa resmi di {s}?',
                        'Bahasa resmi apa yang digunakan di {s}?'],
           'city': ['Kota {s} terletak di negara mana?', 'Di negara manakah kota {s} berada?',
                    'Kota {s} termasuk wilayah negara apa?']},
    'he': {'currency': ['מהו המטבע של {s}?', 'באיזה מטבע משתמשים במדינת {s}?', 'מה המטבע הרשמי של {s}?'],
           'language': ['מהי השפה הרשמית של {s}?', 'איזו שפה היא השפה הרשמית של {s}?',
                        'באיזו שפה מדברים באופן רשמי במדינת {s}?'],
           'city': ['באיזו מדינה נמצאת העיר {s}?', 'לאיזו מדינה שייכת העיר {s}?', 'העיר {s} נמצאת באיזו מדינה?']},
    'hi': {'currency': ['{s} की मुद्रा क्या है?', '{s} में कौन सी मुद्रा इस्तेमाल होती है?',
                        '{s} में लोग किस मुद्रा से भुगतान करते हैं?'],
           'language': ['{s} की आधिकारिक भाषा क्या है?', '{s} में कौन सी भाषा आधिकारिक है?', '{s} की राजभाषा कौन सी है?'],
           'city': ['{s} शहर किस देश में है?', '{s} शहर किस देश में स्थित है?', '{s} शहर किस देश का हिस्सा है?']},
    'ja': {'currency': ['{s}の通貨は何ですか？', '{s}ではどの通貨が使われていますか？', '{s}で使われているお金は何ですか？'],
           'language': ['{s}の公用語は何ですか？', '{s}ではどの言語が公用語ですか？', '{s}で公式に使われている言語は何ですか？'],
           'city': ['{s}はどの国の都市ですか？', '{s}という都市はどこの国にありますか？', '都市{s}はどの国に属していますか？']},
    'ko': {'currency': ['{s}의 통화는 무엇입니까?', '{s}에서는 어떤 통화를 사용합니까?', '{s}에서 쓰는 돈은 무엇입니까?'],
           'language': ['{s}의 공용어는 무엇입니까?', '{s}에서는 어떤 언어가 공용어입니까?',
                        '{s}에서 공식적으로 쓰는 언어는 무엇입니까?'],
           'city': ['{s}은 어느 나라의 도시입니까?', '도시 {s}은 어느 나라에 있습니까?', '{s}이 속한 나라는 어디입니까?']},
    'zh': {'currency': ['{s}的货币是什么？', '{s}使用哪种货币？', '在{s}用什么货币付款？'],
           'language': ['{s}的官方语言是什么？', '{s}的官方语言是哪种语言？', '{s}官方使用哪种语言？'],
           'city': ['{s}位于哪个国家？', '{s}这座城市属于哪个国家？', '城市{s}在哪个国家？']},
}
RELATIONS = ('currency', 'language', 'city')
ODD_NAME = re.compile(r'[()&,.]| - |SAR')  # CLDR's disambiguated names ("Congo - Kinshasa", "Myanmar (Burma)")
ZONE_AREAS = ('Europe/', 'Asia/', 'Africa/', 'America/', 'Australia/')  # zones named after a city (not islands, bases)
EN_THE = re.compile(r'^(United|Isle) |(Islands|Republic|Emirates)$|^(Netherlands|Philippines|Bahamas|Gambia|Maldives|Comoros|Seychelles)$')


def words(s):
    return set(re.findall(r'\w+', s.casefold()))


EN_WORDS = words(' '.join(t.replace('{s}', ' ') for ts in TEMPLATES['en'].values() for t in ts))


def fill(template, name, lang):
    """A question: the subject's name in the slot, with the forms around it that depend on the name."""
    if lang == 'ko' and '가' <= name[-1] <= '힣' and (ord(name[-1]) - 0xAC00) % 28 == 0:  # ends in a vowel
        for a, b in (('은', '는'), ('이', '가'), ('을', '를')):
            template = template.replace('{s}' + a, '{s}' + b)
    if lang == 'fr' and name[0].casefold() in 'aeiouyàâéèêëîïôœûü':
        template = template.replace('de {s}', "d'{s}")
    if lang == 'fr' and name.startswith(('Le ', 'Les ')):                      # de Le Caire -> du Caire
        template, name = template.replace('de {s}', 'du {s}' if name[:3] == 'Le ' else 'des {s}'), name.split(' ', 1)[1]
    if lang == 'en' and EN_THE.search(name):
        template = template.replace('of {s}', 'of the {s}').replace('in {s}', 'in the {s}')
    return template.replace('{s}', name)


def lang_list(cfg, key='languages'):
    langs = [l.strip() for l in cfg[key].split(',') if l.strip()]
    bad = [l for l in langs if l not in TEMPLATES]
    if bad:
        raise ValueError(f"cldr_facts: no question templates for {', '.join(bad)} (have {', '.join(TEMPLATES)})")
    if key == 'languages' and len(langs) < 2:
        raise ValueError(f"cldr_facts: languages={cfg[key]!r} needs at least two languages")
    return langs


def locales(langs):
    try:
        import babel
        from babel import Locale
    except ImportError:
        raise ValueError("cldr_facts.py needs babel (CLDR data): pip install -r requirements-llm.txt") from None
    return babel, {l: Locale.parse(l) for l in langs}


@functools.lru_cache(maxsize=None)
def latin(lang):
    from babel.core import get_global
    return '_Latn' in get_global('likely_subtags').get(lang, '')


def city_name(loc, zone, lang):
    """CLDR's exemplar city of a time zone; where a locale gives none, CLDR's rule is the zone id's last
    part (Latin letters), which only a Latin-script language may use."""
    name = loc.time_zones.get(zone, {}).get('city')
    return name or (zone.split('/')[-1].replace('_', ' ') if latin(lang) else None)


def candidates(kind, locs, cfg):
    """Every fact of a relation whose subject and answer CLDR names in all languages:
    [dict(fact_type, subject, answer, territory, subj {lang: name}, ans {lang: name})]."""
    from babel.core import get_global
    from babel.languages import get_official_languages
    from babel.numbers import get_territory_currencies
    terr = [t for t in locs['en'].territories if len(t) == 2 and t.isalpha() and t not in ('EU', 'EZ', 'UN', 'ZZ')
            and all(t in loc.territories for loc in locs.values())]
    pairs = []
    if kind == 'currency':
        date = datetime.date.fromisoformat(cfg['currency_date'])
        for t in terr:
            cur = get_territory_currencies(t, start_date=date)
            if len(cur) == 1 and all(cur[0] in loc.currencies for loc in locs.values()):
                pairs.append((t, cur[0], t, {l: loc.territories[t] for l, loc in locs.items()},
                              {l: loc.currencies[cur[0]] for l, loc in locs.items()}))
    elif kind == 'language':
        for t in terr:
            off = get_official_languages(t, de_facto=True)
            if len(off) == 1 and all(off[0] in loc.languages for loc in locs.values()):
                pairs.append((t, off[0], t, {l: loc.territories[t] for l, loc in locs.items()},
                              {l: loc.languages[off[0]] for l, loc in locs.items()}))
    else:
        for zone, t in sorted(get_global('zone_territories').items()):
            names = {l: city_name(loc, zone, l) for l, loc in locs.items()}
            if zone.startswith(ZONE_AREAS) and t in terr and all(names.values()):
                pairs.append((zone, t, t, names, {l: loc.territories[t] for l, loc in locs.items()}))
    return [dict(fact_type=kind, subject=s, answer=a, territory=t, subj=sn, ans=an) for s, a, t, sn, an in pairs]


def popularity(names, langs):
    """Mean wordfreq Zipf frequency of a subject's names (0 = unseen, 7 = 'the'): how widely known it is."""
    import wordfreq
    return round(sum(wordfreq.zipf_frequency(names[l], l) for l in langs) / len(langs), 3)


def questions(fact, langs, n):
    """{lang: [question, paraphrase, ...]} of a fact: its first n + 1 templates in every language."""
    return {l: [fill(t, fact['subj'][l], l) for t in TEMPLATES[l][fact['fact_type']][:n + 1]] for l in langs}


def select(cands, langs, pop_langs, names, cfg):
    """The most widely known facts of one relation that pass `check`, at most max_per_answer per answer
    (and max_per_country per territory for cities), n_per_type of them (0 = all)."""
    for c in cands:
        c['popularity'] = popularity(c['subj'], pop_langs)
    cands.sort(key=lambda c: (-c['popularity'], c['subject']))
    out, per_answer, per_country, dropped = [], {}, {}, {}
    for c in cands:
        if cfg['n_per_type'] and len(out) == cfg['n_per_type']:
            break
        c['questions'] = questions(c, langs, cfg['n_paraphrases'])
        why = problems_of(c, langs, names)
        if why:
            dropped[why[0].split(':')[0]] = dropped.get(why[0].split(':')[0], 0) + 1
            continue
        if per_answer.get(c['answer'], 0) >= cfg['max_per_answer'] or \
                (c['fact_type'] == 'city' and per_country.get(c['territory'], 0) >= cfg['max_per_country']):
            dropped['cap'] = dropped.get('cap', 0) + 1
            continue
        per_answer[c['answer']] = per_answer.get(c['answer'], 0) + 1
        per_country[c['territory']] = per_country.get(c['territory'], 0) + 1
        out.append(c)
    return out, dropped


def problems_of(fact, langs, names=None):
    """Why a fact fails the checks (empty = it passes). names: {lang: set of CLDR display names} to
    check the answers against (None skips that check)."""
    out = []
    for l in langs:
        qs, a = fact['questions'][l], fact['ans'][l]
        if names is not None and a not in names[l]:
            out.append(f"answer not a CLDR name: {l} {a!r}")
        if ODD_NAME.search(fact['subj'][l]) or ODD_NAME.search(a):
            out.append(f"disambiguated name: {l} {fact['subj'][l]!r} / {a!r}")
        if not latin(l) and any(re.search('[A-Za-z]', x) for x in qs + [a]):
            out.append(f"ASCII letters in a {l} question or answer: {qs[0]!r}")
        if l != 'en' and any(words(q.replace(fact['subj'][l], ' ')) & EN_WORDS for q in qs):
            out.append(f"English template words in a {l} question: {qs[0]!r}")
        for la in langs:  # a model that repeats a question must not be judged correct, in any language
            if any(judge_match(None, fact['ans'][la], q, l) for q in qs):
                out.append(f"answer in the question: {l} {qs[0]!r} holds {la} {fact['ans'][la]!r}")
    return out


def cldr_names(locs):
    return {l: set(loc.territories.values()) | set(loc.currencies.values()) | set(loc.languages.values())
            for l, loc in locs.items()}


def deal(facts, langs, seed_):
    """Original languages: each relation's facts in a seeded order, dealt round-robin (a running count, so
    languages get equal shares overall and within a relation up to one)."""
    rng, i = random.Random(seed_), 0
    for kind in RELATIONS:
        group = [f for f in facts if f['fact_type'] == kind]
        rng.shuffle(group)
        for f in group:
            f['original_lang'] = langs[i % len(langs)]
            i += 1


def record(f, langs):
    """One ECLeKTic-format line: q_id, original_lang, question, answer, {lang}_q, {lang}_a, plus what a
    reader needs (fact_type, CLDR codes of subject and answer, celebrity = popularity)."""
    src = f['original_lang']
    r = dict(q_id=f"{f['fact_type']}:{f['subject']}", original_lang=src, question=f['questions'][src][0],
             answer=f['ans'][src], fact_type=f['fact_type'], subject=f['subject'], answer_code=f['answer'],
             celebrity=f['popularity'])
    for l in langs:
        r[f'{l}_q'], r[f'{l}_a'] = f['questions'][l][0], f['ans'][l]
    return r


def check(facts, langs, locs):
    """Every check of the docstring, on the facts of `build` -> a list of problems (empty = all pass)."""
    names = cldr_names(locs)
    return [f"{f['fact_type']}:{f['subject']}: {p}" for f in facts for p in problems_of(f, langs, names)]


def build(cfg):
    """-> (facts, rows, paraphrase rows, meta) of the fact set."""
    langs, pop_langs = lang_list(cfg), lang_list(cfg, 'popularity_langs')
    kinds = [k.strip() for k in cfg['fact_types'].split(',') if k.strip()]
    if not kinds or any(k not in RELATIONS for k in kinds):
        raise ValueError(f"cldr_facts: fact_types={cfg['fact_types']!r}: each must be one of {', '.join(RELATIONS)}")
    if not 0 <= cfg['n_paraphrases'] <= 2 or cfg['n_per_type'] < 0 or cfg['max_per_answer'] < 1:
        raise ValueError("cldr_facts: need 0 <= n_paraphrases <= 2, n_per_type >= 0, max_per_answer >= 1")
    babel, locs = locales(langs)
    facts, dropped = [], {}
    for kind in kinds:
        sel, dropped[kind] = select(candidates(kind, locs, cfg), langs, [l for l in pop_langs if l in langs] or langs[:1],
                                    cldr_names(locs), cfg)
        facts += sel
    deal(facts, langs, cfg['seed'])
    rows = [record(f, langs) for f in facts]
    paras = [dict(q_id=r['q_id'], questions=f['questions'][f['original_lang']][1:]) for r, f in zip(rows, facts)
             if cfg['n_paraphrases']]
    from babel.core import get_global
    count = lambda key: {v: sum(r[key] == v for r in rows) for v in sorted({r[key] for r in rows})}
    meta = dict(config=cfg, babel=babel.__version__, cldr=get_global('cldr')['version'], n_facts=len(rows),
                languages=langs, by_fact_type=count('fact_type'), by_original_lang=count('original_lang'),
                dropped=dropped, templates={l: TEMPLATES[l] for l in langs})
    return facts, rows, paras, meta


def main(cfg):
    print(overrides(cfg, DEFAULTS))
    t0 = time.time()
    facts, rows, paras, meta = build(cfg)
    problems = check(facts, meta['languages'], locales(meta['languages'])[1])
    if problems:
        raise ValueError(f"cldr_facts: {len(problems)} facts fail the checks, e.g. {problems[0]}")
    os.makedirs(cfg['out_dir'], exist_ok=True)
    for name, recs in (('facts.jsonl', rows), ('paraphrases.jsonl', paras)):
        with open(os.path.join(cfg['out_dir'], name), 'w', encoding='utf-8') as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + '\n' for r in recs)
    with open(os.path.join(cfg['out_dir'], 'meta.json'), 'w', encoding='utf-8') as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
    print(f"{len(rows)} facts ({', '.join(f'{k} {v}' for k, v in meta['by_fact_type'].items())}) in "
          f"{len(meta['languages'])} languages, CLDR {meta['cldr']} (babel {meta['babel']}), checked, in "
          f"{time.time() - t0:.1f}s -> {cfg['out_dir']}")
    return rows, paras, meta


if __name__ == '__main__':
    cli(lambda: main(configure(DEFAULTS, sources=[__file__])))
