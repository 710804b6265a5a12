# kept runs' final OOD (this pruned run) against the best final OOD of all 24 runs of the committed unpruned
# laptop `selection` (assets/laptop/selection/summary.json), and the run-steps saved (timing.json)
import json, os, sys
sys.path.insert(0, '.')
import records
pruned = sys.argv[1]
full = json.load(open('assets/laptop/selection/summary.json'))
name = lambda k: f"celeb_frac{k['celeb_frac']}-lang_ratio{k['lang_ratio']}"
ref = {name(r['knobs']): r['final']['ood_test']['all']['all'][0] for r in full['runs']}
def ood(recs):
    ev = [r for r in recs if r['split'] == 'ood_test' and r.get('fact_type') == 'all' and r.get('lang') == 'all' and 'template' not in r]
    return max(ev, key=lambda r: r['iter'])['acc']
runs = sorted(d for d in os.listdir(pruned) if os.path.isfile(os.path.join(pruned, d, 'log.jsonl')))
logs = {r: records.read_records(os.path.join(pruned, r, 'log.jsonl')) for r in runs}
kept = [r for r in runs if records.stopped(logs[r]) is None]
k = {r: ood(logs[r]) for r in kept}
b, bk = max(ref, key=ref.get), max(k, key=k.get)
t = json.load(open(os.path.join(pruned, 'timing.json')))
print(f"kept {kept} (final OOD here: " + ', '.join(f"{r} {k[r]:.3f}" for r in kept) + ")")
print(f"committed unpruned run of the same config: " + ', '.join(f"{r} {ref[r]:.3f}" for r in kept))
print(f"best final OOD of all 24 (committed unpruned): {ref[b]:.3f} ({b}); best kept here {k[bk]:.3f} ({bk}): gap {ref[b] - k[bk]:+.3f} (target <= 0.03)")
print(f"run-steps {t['run_steps']} of {t['run_steps_unpruned']}: {1 - t['run_steps'] / t['run_steps_unpruned']:.0%} fewer (target >= 40%); train_s {t['train_s']:.0f}")
