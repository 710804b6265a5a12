"""cldr_facts.py: the parallel fact set built from CLDR, checked against babel directly (every answer a CLDR
name of its language, no English left in other languages' questions, no answer inside a question), and read
by llm_eval.py as ECLeKTic-format data."""
import json
import os
import re
import subprocess
import sys

import pytest

import cldr_facts
import llm_eval

pytest.importorskip('babel')
pytest.importorskip('wordfreq')
from babel import Locale  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LANGS = cldr_facts.DEFAULTS['languages'].split(',')


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    """The default fact set, written and read back."""
    out = tmp_path_factory.mktemp('cldr')
    cldr_facts.main(dict(cldr_facts.DEFAULTS, out_dir=str(out)))
    rows = [json.loads(l) for l in open(out / 'facts.jsonl', encoding='utf-8')]
    paras = [json.loads(l) for l in open(out / 'paraphrases.jsonl', encoding='utf-8')]
    return out, rows, paras, json.load(open(out / 'meta.json', encoding='utf-8'))


def subject_name(r, l, loc):
    """The subject's CLDR name in language l, looked up again from its code."""
    if r['fact_type'] == 'city':
        return cldr_facts.city_name(loc, r['subject'], l)
    return loc.territories[r['subject']]


def test_size_languages_and_balance(built):
    _, rows, paras, meta = built
    assert len(rows) >= 300 and len(LANGS) >= 8 and set(LANGS) <= set('de en es fr he hi id it ja ko pt zh'.split())
    assert len({r['q_id'] for r in rows}) == len(rows)
    assert set(meta['by_fact_type']) == {'currency', 'language', 'city'} and meta['cldr'] and meta['babel']
    counts = [sum(r['original_lang'] == l for r in rows) for l in LANGS]
    assert max(counts) - min(counts) <= 1                                 # dealt round-robin
    for r in rows:
        src = r['original_lang']
        assert r['question'] == r[f'{src}_q'] and r['answer'] == r[f'{src}_a']
        assert all(r[f'{l}_q'].strip() and r[f'{l}_a'].strip() for l in LANGS)
        assert isinstance(r['celebrity'], float) and 0 <= r['celebrity'] < 8
    # the most widely known facts first: Germany's currency is in, and facts are capped per answer
    assert 'currency:DE' in {r['q_id'] for r in rows}
    per_answer = {}
    for r in rows:
        per_answer[(r['fact_type'], r['answer_code'])] = per_answer.get((r['fact_type'], r['answer_code']), 0) + 1
    assert max(per_answer.values()) <= cldr_facts.DEFAULTS['max_per_answer']
    assert len(paras) == len(rows)


def test_answers_are_cldr_names_of_their_language(built):
    _, rows, _, _ = built
    for l in LANGS:
        loc = Locale.parse(l)
        for r in rows:
            names = {'currency': loc.currencies, 'language': loc.languages, 'city': loc.territories}[r['fact_type']]
            assert r[f'{l}_a'] == names[r['answer_code']], (l, r['q_id'])
            assert subject_name(r, l, loc) in r[f'{l}_q'] or l == 'fr', (l, r['q_id'])   # fr: "du Caire"


def test_no_english_left(built):
    """No question outside English holds a word of the English questions (their subjects removed); the
    languages not written in Latin script hold no ASCII letter at all; the answers differ from English
    in most facts of every language not written in Latin script."""
    _, rows, paras, _ = built
    para = {p['q_id']: p['questions'] for p in paras}
    en_words = set()
    for r in rows:
        en_words |= set(re.findall(r'\w+', r['en_q'].replace(subject_name(r, 'en', Locale('en')), ' ').casefold()))
    assert {'what', 'currency', 'official', 'language', 'country', 'city'} <= en_words
    for l in LANGS:
        if l == 'en':
            continue
        loc = Locale.parse(l)
        for r in rows:
            qs = [r[f'{l}_q']] + (para[r['q_id']] if r['original_lang'] == l else [])
            for q in qs:
                rest = q.replace(subject_name(r, l, loc), ' ').casefold()
                assert not set(re.findall(r'\w+', rest)) & en_words, (l, q)
                if l in ('he', 'hi', 'ja', 'ko', 'zh'):
                    assert not re.search('[A-Za-z]', q + r[f'{l}_a']), (l, q)
        if l in ('he', 'hi', 'ja', 'ko', 'zh'):
            assert sum(r[f'{l}_a'] != r['en_a'] for r in rows) == len(rows)


def test_no_answer_in_a_question(built):
    """A model that repeats the question is judged wrong with any language's answer (judge match_any)."""
    _, rows, paras, _ = built
    para = {p['q_id']: p['questions'] for p in paras}
    for r in rows:
        for l in LANGS:
            qs = [r[f'{l}_q']] + (para[r['q_id']] if r['original_lang'] == l else [])
            q = dict(question=qs[0], lang=l)
            for text in qs:
                assert llm_eval.answer_lang(dict(q, prediction=text), {a: r[f'{a}_a'] for a in LANGS}) is None


def test_paraphrases_and_llm_eval_reads_it(built):
    out, rows, paras, _ = built
    cfg = dict(llm_eval.DEFAULTS, data=str(out / 'facts.jsonl'), languages=','.join(LANGS))
    items = llm_eval.load_items(cfg)
    p = llm_eval.load_paraphrases(str(out / 'paraphrases.jsonl'), items)
    assert len(items) == len(rows) and all(len(p[r['q_id']]) == 2 for r in items)
    for r in items:
        assert len({r['question'], *p[r['q_id']]}) == 3                   # three distinct questions
    qs = llm_eval.build_questions(items, p, LANGS)
    assert len(qs) == len(rows) * (len(LANGS) + 2)
    # fewer languages: the same set read with a subset
    sub = llm_eval.load_items(dict(cfg, languages='en,ja'))
    assert {r['original_lang'] for r in sub} == {'en', 'ja'}


def test_deterministic(tmp_path):
    """Built twice, the same bytes; another seed deals the same facts to other languages (on 4 languages
    and 40 facts per type: the code path of the default set, a tenth of its size)."""
    small = dict(cldr_facts.DEFAULTS, languages='en,de,ja,zh', n_per_type=40)
    read = lambda d: [json.loads(l) for l in open(d / 'facts.jsonl', encoding='utf-8')]
    for d, seed in (('a', 0), ('b', 0), ('c', 1)):
        cldr_facts.main(dict(small, out_dir=str(tmp_path / d), seed=seed))
    assert (tmp_path / 'a' / 'facts.jsonl').read_bytes() == (tmp_path / 'b' / 'facts.jsonl').read_bytes()
    rows, other = read(tmp_path / 'a'), read(tmp_path / 'c')
    assert len(rows) == 120 and [r['q_id'] for r in other] == [r['q_id'] for r in rows]   # same facts, dealt differently
    assert [r['original_lang'] for r in other] != [r['original_lang'] for r in rows]


def test_check_finds_each_problem():
    """Facts broken on purpose: each breaks one check."""
    langs = ['en', 'de', 'ja']
    _, locs = cldr_facts.locales(langs)
    good = dict(fact_type='currency', subject='JP', answer='JPY', territory='JP',
                subj={l: locs[l].territories['JP'] for l in langs}, ans={l: locs[l].currencies['JPY'] for l in langs})
    good['questions'] = cldr_facts.questions(good, langs, 2)
    assert cldr_facts.check([good], langs, locs) == []
    bad = {
        'answer not a CLDR name': dict(good, ans=dict(good['ans'], de='Yen-Münze')),
        'English template words': dict(good, questions=dict(good['questions'], de=['What is die Währung von Japan?'])),
        'ASCII letters': dict(good, questions=dict(good['questions'], ja=['Japanの通貨は何ですか？'])),
        'answer in the question': dict(good, questions=dict(good['questions'], en=['Is it the Japanese Yen?'])),
        'disambiguated name': dict(good, subj=dict(good['subj'], en='Japan (Nippon)')),
    }
    for why, fact in bad.items():
        problems = cldr_facts.check([fact], langs, locs)
        assert problems and all(p.startswith('currency:JP: ') for p in problems), why
        assert any(why in p for p in problems), (why, problems)


def test_fill_forms():
    assert cldr_facts.fill('{s}은 어느 나라의 도시입니까?', '서울', 'ko') == '서울은 어느 나라의 도시입니까?'   # ends in a consonant
    assert cldr_facts.fill('{s}은 어느 나라의 도시입니까?', '도쿄', 'ko') == '도쿄는 어느 나라의 도시입니까?'   # ends in a vowel
    assert cldr_facts.fill('{s}이 속한 나라는 어디입니까?', '파리', 'ko') == '파리가 속한 나라는 어디입니까?'
    assert cldr_facts.fill('la ville de {s} ?', 'Amsterdam', 'fr') == "la ville d'Amsterdam ?"
    assert cldr_facts.fill('la ville de {s} ?', 'Le Caire', 'fr') == 'la ville du Caire ?'
    assert cldr_facts.fill('What is the currency of {s}?', 'United States', 'en') == \
        'What is the currency of the United States?'
    assert cldr_facts.fill('What is the currency of {s}?', 'Japan', 'en') == 'What is the currency of Japan?'


def test_command_line(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, 'cldr_facts.py', *a], cwd=ROOT, capture_output=True, text=True,
                                    timeout=300)
    r = run('--help')
    assert r.returncode == 0 and all(f'--{k}=' in r.stdout for k in cldr_facts.DEFAULTS)
    r = run('--languages=en,xx', f'--out_dir={tmp_path}')
    assert r.returncode == 1 and r.stderr.strip().startswith('cldr_facts: no question templates for xx')
    r = run('--fact_types=currency,capital', f'--out_dir={tmp_path}')
    assert r.returncode == 1 and 'capital' in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run('--languages=en,ja', '--fact_types=currency', '--n_per_type=20', f'--out_dir={tmp_path}')
    assert r.returncode == 0 and '20 facts (currency 20) in 2 languages' in r.stdout
