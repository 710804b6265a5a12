"""dev/verdicts.py under the rules of docs/verdicts.md's change log: finding 1's "most", finding 3's early
language footprint, finding 5's checkpoint picks after ID saturates and their regime gate, finding 6's
rank test, one seed of a sweep judged alone; on made-up summaries (test_report.py builds them)."""
from dev import verdicts
from test_report import fake_summary, state_of, sweep_summary


def test_finding1_reads_most_as_three_in_four():
    s = sweep_summary()
    for r in s['runs'][:3]:                                            # 13 of 16 runs near perfect: 81%
        r['final']['id_test']['all']['all'][0] = 0.9
    assert 'ID >= 0.95 in 81% of runs (rule >= 75%; ID 0.90-0.99) [holds]' in verdicts.finding1(state_of(s), 'paper')[1]
    for r in s['runs'][3:5]:                                           # 11 of 16: 69%
        r['final']['id_test']['all']['all'][0] = 0.9
    assert 'ID >= 0.95 in 69% of runs (rule >= 75%; ID 0.90-0.99) [fails]' in verdicts.finding1(state_of(s), 'paper')[1]


def with_early(s, footprint_sign):
    """Trajectories: unification at 5% of training rising with final OOD; the language footprint there
    falling (footprint_sign -1) or rising (+1) with it."""
    for r in s['runs']:
        o = r['final']['ood_test']['all']['all'][0]
        r['trajectory'] = dict(iter=[0, 60, 1000], unification=[None, o, o], unification_paper=[None, o, o],
                               lang_footprint=[0.02, 0.05 + footprint_sign * 0.04 * o, 0.01])
    return s


def test_finding3_reads_the_early_language_footprint():
    status, text, key = verdicts.finding3(state_of(with_early(sweep_summary(), -1)), 'paper')
    assert status == 'reproduced' and 'r(language footprint there, final OOD) = -1.00 over 16 runs (rule <= -0.7)' in text
    assert 'early_spread' not in text and key.startswith('r(early unification, final OOD) = 1.00')
    status, text, _ = verdicts.finding3(state_of(with_early(sweep_summary(), +1)), 'paper')
    assert status == 'mixed' and 'r(language footprint there, final OOD) = 1.00' in text
    bare = sweep_summary()                                             # no trajectories: nothing measured
    assert verdicts.finding3(state_of(bare), 'paper')[0] == 'not judged: no check could be measured'


def selection_summary(at_oracle):
    """A selection result (22 runs, 20 with parallel data) whose primary checkpoint pick matches last
    best ID; in `at_oracle` of the runs with a pick, last best ID is the best checkpoint."""
    corr = {'normalized': {'act': {'concat': 0.9}, 'grad': {'concat': 0.6, 'no_emb': 0.9, 'emb': 0.5, 'L1': 0.9}}}
    sel = dict(id_test=0.5, ood_1pct=0.9, unification=0.89, unification_paper=0.88, oracle=0.92, random=0.7)
    ref = dict(n_runs=20, ood=0.8, last_best_id=0.79, last_best_ood=0.82, oracle=0.82, final=0.8, earlier=0.4)
    ckpt = dict(unification_plus=ref, unification=dict(ref, ood=0.7), unification_any=dict(ref, ood=0.2))
    runs = [({'celeb_frac': 0.02 * (i % 11), 'lang_ratio': 1 + i // 11}, 0.3 + 0.6 * (i % 11) / 10) for i in range(22)]
    per_run = {f'run{i}': dict(unification={'normalized': {'act': 0.5}}, ckpt_selection=dict(
        unification_plus={'iter': 2000, 'ood': 0.8}, last_best_id={'iter': 2000, 'ood': 0.8},
        oracle=0.8 if j < at_oracle else 0.9)) for j, i in enumerate(i for i in range(22) if i % 11)}
    s = fake_summary('selection', runs, correlations=corr, selection=sel, ckpt_selection_summary=ckpt, **per_run)
    s['analysis_settings'] = dict(unif_layer='concat', ckpt_min_id=0.9)
    return s


def long_summary(at_oracle, ood=0.8, missing=0):
    """selection_long: 6 runs (3 celeb_frac x 2 seeds) whose primary checkpoint pick reaches `ood` against last
    best ID 0.79; in `at_oracle` of them last best ID is the best checkpoint; the last `missing` runs not in."""
    ref = dict(n_runs=6, ood=ood, last_best_id=0.79, last_best_ood=0.82, oracle=0.82, final=0.7, earlier=0.4)
    knobs = [{'celeb_frac': c, 'seed': x} for c in (0.04, 0.08, 0.12) for x in (0, 1)]
    per_run = {f'run{i}': dict(ckpt_selection=dict(unification_plus={'iter': 9000, 'ood': ood}, last_best_id={
        'iter': 15000, 'ood': 0.7}, oracle=0.7 if i < at_oracle else 0.85)) for i in range(6)}
    s = fake_summary('selection_long', [(k, 0.7) for k in knobs[:6 - missing]], ckpt_selection_summary=dict(
        unification_plus=ref, unification=dict(ref, ood=0.75), unification_any=dict(ref, ood=0.2)),
        missing=[f'r{i}' for i in range(6 - missing, 6)], **per_run)
    s['analysis_settings'] = dict(unif_layer='concat', ckpt_min_id=0.9)
    return s


def test_finding5_checkpoint_picks_on_selection_long_and_their_regime():
    """Change C10: selection's checkpoint check is read on selection_long (every run in), selection's own
    beside it; change C3's regime gate on the runs it is read on. sweep_celeb (C8) gates its own picks."""
    sel = selection_summary(at_oracle=20)
    status, text, key = verdicts.finding5(state_of(sel), 'paper')
    assert status == 'provisional: checkpoint picks wait for `selection_long` (not run; the other checks: reproduced)'
    assert key == 'r(unification, final OOD) = 0.90' and 'gradients without the input embeddings 0.90' in text
    assert "beside it `selection`'s checkpoint picks over 20 runs" in text and 'in 20 of 20 runs)' in text
    assert 'by group (concat: the whole gradient) L1 0.90, concat 0.60, emb 0.50' in text
    status, _, _ = verdicts.finding5(state_of(sel, long_summary(at_oracle=0, missing=4)), 'paper')
    assert status == 'provisional: checkpoint picks wait for `selection_long` (2 of 6 runs; the other checks: reproduced)'
    status, text, key = verdicts.finding5(state_of(sel, long_summary(at_oracle=4)), 'paper')   # 4 of 6 < 75%: judged
    assert status == 'reproduced' and '`selection_long`: checkpoint picks over 6 runs' in text
    assert 'unification x ID 0.800, last best ID 0.790, oracle 0.820' in text
    assert key == 'r(unification, final OOD) = 0.90; checkpoints it picks reach OOD 0.80, those picked by ID 0.79'
    assert verdicts.finding5(state_of(sel, long_summary(at_oracle=4, ood=0.7)), 'paper')[0] == 'mixed'
    # last best ID already the best checkpoint in 5 of 6 runs (83% >= 75%): not judged
    status, text, _ = verdicts.finding5(state_of(sel, long_summary(at_oracle=5, ood=0.7)), 'paper')
    assert status == 'reproduced (checkpoint picks not judged: regime)'
    assert "(not judged: regime: last best ID within 0.03 of the best checkpoint's OOD in 5 of 6 runs)" in text
    fails = selection_summary(at_oracle=15)
    fails['selection']['unification'] = 0.75                           # the run picks fail: the status says so
    assert verdicts.finding5(state_of(fails, long_summary(at_oracle=5)), 'paper')[0].startswith(
        'mixed (checkpoint picks not judged: regime')
    sweep = dict(selection_summary(at_oracle=15), exp='sweep_celeb')    # C8: no selection, its own picks gated
    assert verdicts.finding5(state_of(sweep), 'paper')[0] == 'reproduced (checkpoint picks not judged: regime), on `sweep_celeb`'
    judged = dict(selection_summary(at_oracle=10), exp='sweep_celeb')   # 10 of 20 at the best checkpoint: judged
    assert verdicts.finding5(state_of(judged), 'paper')[0] == 'reproduced, on `sweep_celeb`'


def test_llm_rule_reads_the_rank_test():
    layer = lambda auc, t, mw: dict(auc=auc, significant=t, **({} if mw is None else dict(mw_p=0.01, mw_significant=mw)))
    over = dict(variance_explained_sources=dict(r2_overlap=0.3, r2_celebrity=0.1))
    new = dict(per_layer=[layer(0.7, False, True), layer(0.6, True, True), layer(0.4, True, True)], overlap=over)
    checks = verdicts.llm_checks(new)
    assert checks[0][0] is True and '2 of 3 layers (67%; layers 0-1)' in checks[0][1] and 'the t-test: 1 of 3)' in checks[0][1]
    old = dict(per_layer=[layer(0.7, True, None), layer(0.6, True, None)], overlap=over)
    checks = verdicts.llm_checks(old)
    assert checks[0][0] is None and checks[0][1].startswith('rank test: to be re-run') and 'the t-test: 2 of 2)' in checks[0][1]
    st = dict(state_of(), standin=old, standin_prov={})
    assert verdicts.standin_text(st)[0] == 'not judged: made before the rank test; to be re-run'


def test_one_seed_of_two_is_judged_as_such():
    """Change C8: the runs of whole seeds of a sweep, and only those, are judged, so labelled; min_runs
    counts them. A seed with a run missing, or a stray run of another seed, leaves it provisional."""
    def two_seeds(n_cf=16, drop=(), extra=()):
        s = sweep_summary()
        cfs = [round(0.02 * i, 2) for i in range(n_cf)]
        s['runs'] = [dict(r, knobs=dict(r['knobs'], seed=0)) for r in s['runs'][:n_cf]]
        s['runs'] = [r for i, r in enumerate(s['runs']) if i not in drop] + \
            [dict(s['runs'][i], name=f'x{i}', knobs=dict(s['runs'][i]['knobs'], seed=1)) for i in extra]
        s['config'] = dict(sweep={'celeb_frac': cfs, 'seed': [0, 1]})
        s['runs_missing'] = ['?'] * (2 * n_cf - len(s['runs']))
        return state_of(s)
    assert verdicts.finding1(two_seeds(), 'paper')[0] == verdicts.finding2(two_seeds(), 'paper')[0] == 'reproduced (seed 0 of 2)'
    assert verdicts.finding1(two_seeds(drop=[3]), 'paper')[0] == 'provisional: 15 of 32 runs'
    assert verdicts.finding1(two_seeds(extra=[3]), 'paper')[0] == 'provisional: 17 of 32 runs'
    assert verdicts.finding1(two_seeds(n_cf=8), 'paper')[0] == 'not judged: the setting cannot show it (8 runs < 10)'
