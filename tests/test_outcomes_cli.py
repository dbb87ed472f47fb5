"Integration tests of outcome imports: `import_outcomes` (what `llmroute import` calls) and the `llmroute import` command"
import json, subprocess, sys
from pathlib import Path
import pandas as pd, pytest
from llmroute.core import InputError, data_dir, query_id
from llmroute.outcomes import import_outcomes, read_outcomes

ROUTERDC = (data_dir() / 'routerdc') if data_dir() is not None else None
needs_data = pytest.mark.skipif(ROUTERDC is None or not ROUTERDC.is_dir(), reason="no local data folder (LLMROUTE_DATA_DIR)")


def _long(tmp_path, name='long.csv', **changes):
    "A small valid long table (3 queries x 2 models) written as CSV, with optional cell changes {col: {row: value}}"
    df = pd.DataFrame(dict(query_id=[f"q{i}" for i in (1, 1, 2, 2, 3, 3)], question=['a?', 'a?', 'b?', 'b?', 'c?', 'c?'],
                           model=['m1', 'm2'] * 3, score=[1.0, 0.0, 0.5, 0.7, 0.0, 1.0], split=['train'] * 4 + ['test'] * 2))
    for c, cells in changes.items():
        df[c] = df[c].astype(object)
        for r, v in cells.items(): df.loc[r, c] = v
    p = tmp_path / name
    df.to_csv(p, index=False)
    return p


def test_long_csv_to_parquet_and_back(tmp_path):
    out = import_outcomes('long', [_long(tmp_path)], tmp_path / 'o.parquet', verbose=False)
    t = read_outcomes(out)
    assert t.models == ['m1', 'm2'] and t.splits == ['train', 'test']
    assert t.wide().index.tolist() == ['q1', 'q2', 'q3']
    assert t.correct().loc['q2'].tolist() == [1, 1]
    assert t.wide(split='test').loc['q3'].tolist() == [0.0, 1.0]


def test_refuses_to_overwrite_and_keeps_the_old_file(tmp_path):
    out = import_outcomes('long', [_long(tmp_path)], tmp_path / 'o.csv', verbose=False)
    before = out.read_bytes()
    with pytest.raises(FileExistsError, match='refusing to overwrite'):
        import_outcomes('long', [_long(tmp_path)], out, verbose=False)
    # a bad input with overwrite=True fails before anything is written: the old table is intact
    bad = _long(tmp_path, 'bad.csv', score={3: 1.7})
    with pytest.raises(InputError, match=r"bad.csv: row 3: field 'score': score 1.7 is outside \[0, 1\]"):
        import_outcomes('long', [bad], out, overwrite=True, verbose=False)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bad.csv', 'long.csv', 'o.csv']   # no temp files


@pytest.mark.parametrize('changes,msg', [
    (dict(score={0: 'n/a'}), "long.csv: row 0: field 'score': expected a number"),
    (dict(model={1: 'm1'}), "long.csv: rows 0, 1: field 'query_id': (query 'q1', model 'm1') appears 2 times"),
    (dict(split={4: 'train'}), "long.csv: rows 4, 5: field 'split': query 'q3' is in splits ['test', 'train']"),
    (dict(split={0: 'holdout'}), "long.csv: row 0: field 'split': unknown split 'holdout'"),
])
def test_bad_long_files_name_file_row_field(tmp_path, changes, msg):
    with pytest.raises(InputError) as e:
        import_outcomes('long', [_long(tmp_path, **changes)], tmp_path / 'o.parquet', verbose=False)
    assert msg in str(e.value)
    assert not (tmp_path / 'o.parquet').exists()


def test_missing_model_and_empty_file(tmp_path):
    p = _long(tmp_path)
    pd.read_csv(p).drop(index=[5]).to_csv(p, index=False)
    with pytest.raises(InputError, match=r"long.csv: field 'model': model 'm2' has no outcome for 1 of 3 queries \(e.g. q3\)"):
        import_outcomes('long', [p], tmp_path / 'o.parquet', verbose=False)
    (tmp_path / 'empty.csv').write_text('')
    with pytest.raises(InputError, match='empty.csv: empty file'):
        import_outcomes('long', [tmp_path / 'empty.csv'], tmp_path / 'o.parquet', verbose=False)
    with pytest.raises(InputError, match="unknown format 'xlsx'"):
        import_outcomes('xlsx', [p], tmp_path / 'o.parquet', verbose=False)


@needs_data
def test_routerdc_gsm8k_test(tmp_path, capsys):
    out = import_outcomes('routerdc', [ROUTERDC / 'gsm8k-test.json'], tmp_path / 'gsm8k.parquet')
    assert 'joined=1319' in capsys.readouterr().out
    t = read_outcomes(out)
    assert (len(t), len(t.models), t.splits) == (1319, 7, ['test'])
    acc = t.accuracy()
    assert acc.index[0] == 'cognitivecomputations/dolphin-2.9-llama3-8b'
    assert abs(acc.iloc[0] - 0.720) < 6e-4
    assert abs(t.correct().max(axis=1).mean() - 0.861) < 6e-4
    # GSM8K ids are the ones our own queries (and so our own samples) carry
    first = json.loads((ROUTERDC / 'gsm8k-test.json').read_text())[0]['question']
    assert query_id('gsm8k', first) in t.wide().index
    assert set(t.df.n_samples) == {10}


@needs_data
def test_routerdc_unsplit_loglik_benchmark(tmp_path):
    t = read_outcomes(import_outcomes('routerdc', [ROUTERDC / 'arc_challenge_test.json', ROUTERDC / 'MATH_prealgebra.json'],
                                      tmp_path / 'o.csv', verbose=False))
    assert t.datasets == ['arc_challenge', 'math_prealgebra']
    arc = t.df[t.df.dataset == 'arc_challenge']
    assert set(arc.score) <= {0.0, 1.0} and (arc.score == (arc.raw_score > 0)).all()
    # neither has train queries: with_split splits each afresh (seeded) and keeps arc's file split in source_split
    s = t.with_split(seed=0)
    for ds in t.datasets: assert set(s.df.split[s.df.dataset == ds]) == {'train', 'val', 'test'}
    assert set(s.df.source_split[s.df.dataset == 'arc_challenge']) == {'test'}
    assert s.df.split.tolist() == t.with_split(seed=0).df.split.tolist()


def _fake_run(root, model, answers):
    run = Path(root) / 'gsm8k' / model.replace('/', '--')
    run.mkdir(parents=True)
    (run / 'manifest.json').write_text(json.dumps({'model': model}))
    recs = [dict(query_id=q, dataset='gsm8k', split='test', question=f'question {q}', gold=g, model=model, prompt='p',
                 responses=rs, seed=0, latency_s=2.0, new_tokens=[10] * len(rs), tokens_per_s=5.0)
            for q, (g, rs) in answers.items()]
    (run / 'samples-00000.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in recs))


def test_samples_format(tmp_path):
    runs = tmp_path / 'runs'
    _fake_run(runs, 'org/a', {'q1': ('18', ['The answer is 18.'] * 2), 'q2': ('-5', ['The answer is 5.', 'The answer is -5.'])})
    _fake_run(runs, 'org/b', {'q1': ('18', ['The answer is 17.'] * 2), 'q2': ('-5', ['The answer is -5.'] * 2)})
    t = read_outcomes(import_outcomes('samples', [runs], tmp_path / 'o.parquet', verbose=False))
    assert t.models == ['org/a', 'org/b']
    assert t.wide('n_correct').loc['q1'].tolist() == [2, 0]
    assert t.wide().loc['q2'].tolist() == [0.5, 1.0]
    assert t.model_latency() == {'org/a': 2.0, 'org/b': 2.0}


def test_cli_import(tmp_path):
    exe = Path(sys.executable).parent / 'llmroute'   # installed by `make install` (console_scripts)
    r = subprocess.run([str(exe), 'import', '--help'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    src = _long(tmp_path)
    out = tmp_path / 'o.parquet'
    r = subprocess.run([str(exe), 'import', '--format', 'long', str(src), '--out', str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert read_outcomes(out).models == ['m1', 'm2']
    r = subprocess.run([str(exe), 'import', '--format', 'long', str(src), '--out', str(out)], capture_output=True, text=True)
    assert r.returncode != 0 and 'overwrit' in (r.stderr + r.stdout)
    bad = _long(tmp_path, 'bad.csv', score={2: 2})
    r = subprocess.run([str(exe), 'import', '--format', 'long', str(bad), '--out', str(tmp_path / 'b.parquet')],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "bad.csv: row 2: field 'score'" in (r.stderr + r.stdout)
