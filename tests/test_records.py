"""records.py: the on-disk records read back (log.jsonl lines, analysis.json records) and their numbers."""
import json

import numpy as np
import pytest

import records


def test_torn_last_line_is_dropped_and_a_bad_line_elsewhere_is_named(tmp_path):
    path = tmp_path / 'log.jsonl'
    recs = [{'iter': i, 'split': 'loss', 'loss': 1.0 / (i + 1)} for i in range(3)]
    whole = ''.join(json.dumps(r) + '\n' for r in recs)
    path.write_text(whole)
    assert records.read_records(path) == recs
    path.write_text(whole + '{"iter": 3, "spl')                       # a crash cut the last append
    assert records.read_records(path) == recs
    lines = whole.splitlines(keepends=True)
    path.write_text(lines[0] + 'garbage\n' + ''.join(lines[1:]))      # damage in the middle
    with pytest.raises(ValueError, match=r'log\.jsonl line 2 is not a JSON record') as e:
        records.read_records(path)
    assert '\n' not in str(e.value)


def test_helpers_known_answers():
    assert records.spread(list(range(21)), 5) == [0, 5, 10, 15, 20] and records.spread([3, 4], 5) == [3, 4]
    assert records.sim_layers(4) == ['L1', 'L2', 'L4', 'concat'] and records.sim_layers(1) == ['L1', 'concat']
    assert records.pearson([1, 2, 3, 4], [2, 4, 6, 8.5]) == pytest.approx(np.corrcoef([1, 2, 3, 4], [2, 4, 6, 8.5])[0, 1])
    assert records.pearson([1, 2, np.nan, 4], [1, 2, 3, 4]) == pytest.approx(1.0)
    assert records.pearson([1, 2], [1, 2]) is None and records.pearson([1, 1, 1], [1, 2, 3]) is None
    rec = {'acc': {'ood_test': {'all': 0.5, 'birth_city': 0.25}}}
    assert records.acc_of(rec, 'ood_test') == 0.5 and records.acc_of(rec, 'ood_test', 'birth_city') == 0.25
    assert records.acc_of(rec, 'id_test') is None and records.acc_of({'acc': None}, 'ood_test') is None
