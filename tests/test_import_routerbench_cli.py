"CLI tests of `llmroute import --format routerbench`: gaps are an error that names them, --drop-incomplete drops them"
import subprocess, sys
from pathlib import Path
import pandas as pd, pytest
from llmroute.data import outcome_files
from llmroute.outcomes import read_outcomes

EXE = Path(sys.executable).parent / 'llmroute'


def _run(*args):
    return subprocess.run([str(EXE), *map(str, args)], capture_output=True, text=True)


def _wide(p, gaps=True):
    "5 queries x 3 models in RouterBench's wide format; with gaps, toy.dev.2 lacks b's cost and toy.dev.4 c's score"
    pd.DataFrame({'sample_id': [f'toy.dev.{i}' for i in range(5)], 'prompt': [f"['question {i}?']" for i in range(5)],
                  'eval_name': 'toy', 'a': [1, 0, 1, 1, 0], 'b': [1, 1, 0, 1, 1], 'c': [0, 0, 0, 1, None if gaps else 1],
                  **{f'{m}|model_response': [f"['{m}{i}']" for i in range(5)] for m in 'abc'},
                  'a|total_cost': [0.01] * 5, 'b|total_cost': [0.001, 0.001, None if gaps else 0.001, 0.001, 0.001],
                  'c|total_cost': [0.0001] * 5}).to_csv(p, index=False)
    return p


def test_help_lists_the_format_and_flags():
    r = _run('import', '--help')
    assert r.returncode == 0, r.stderr
    for s in ('routerbench', '--drop-incomplete', '--keep-responses'): assert s in r.stdout


def test_gaps_are_an_error_then_dropped(tmp_path):
    src, out = _wide(tmp_path / 'toy_test.csv'), tmp_path / 'o.parquet'
    r = _run('import', '--format', 'routerbench', src, '--out', out)
    assert r.returncode == 2 and r.stderr.startswith('llmroute import: error: toy_test.csv: rows 2, 4: 2 of 5 queries lack')
    assert 'toy.dev.2, toy.dev.4' in r.stderr and '--drop-incomplete' in r.stderr and 'Traceback' not in r.stderr
    assert not out.exists()
    r = _run('import', '--format', 'routerbench', src, '--out', out, '--drop-incomplete', '--keep-responses')
    assert r.returncode == 0, r.stderr
    assert 'dropped 2 of 5 queries' in r.stderr + r.stdout
    t = read_outcomes(out)
    assert len(t) == 3 and 'response' in t.df and t.model_cost() is not None


def test_flags_that_do_not_apply(tmp_path):
    src = _wide(tmp_path / 'toy_test.csv', gaps=False)
    r = _run('import', '--format', 'long', src, '--out', tmp_path / 'o.parquet', '--drop-incomplete')
    assert r.returncode == 2 and '--drop-incomplete' in r.stderr and 'do not apply to --format long' in r.stderr
    assert not (tmp_path / 'o.parquet').exists()
    r = _run('import', '--format', 'routerbench', src, '--out', tmp_path / 'o.parquet')     # the same file as what it is
    assert r.returncode == 0, r.stderr
    assert read_outcomes(tmp_path / 'o.parquet').wide().loc['toy.dev.4'].tolist() == [0.0, 1.0, 1.0]


def test_real_files(tmp_path):
    "RouterBench's MBPP and Winogrande files (the data folder's, else the cache's: never a skip)"
    r = _run('import', '--format', 'routerbench', *outcome_files('routerbench'), '--out', tmp_path / 'rb.parquet')
    assert r.returncode == 0, r.stderr
    t = read_outcomes(tmp_path / 'rb.parquet')
    assert (len(t.models), t.datasets, t.splits) == (11, ['mbpp', 'winogrande'], ['train', 'test'])
    acc = t.accuracy(split='test')
    assert abs(t.correct(split='test').max(axis=1).mean() - (0.867 * 128 + 0.997 * 380) / 508) < 1e-3   # both oracles, README
    assert acc.index[0] == 'gpt-4-1106-preview'
