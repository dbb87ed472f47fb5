"Integration tests of outcome imports: `import_outcomes` (what `llmroute import` calls) and the `llmroute import` command"
import json, subprocess, sys
from pathlib import Path
import pandas as pd, pytest
from llmroute.core import InputError, query_id
from llmroute.data import outcome_file, outcome_files
from llmroute.outcomes import read_outcomes
from llmroute.importers import import_outcomes


def rdc(name):
    "A RouterDC release file: the data folder's copy, else the cache's (fetched once, checked by sha256); never a skip"
    return outcome_file('routerdc', name)


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


def test_routerdc_gsm8k_test(tmp_path, capsys):
    out = import_outcomes('routerdc', [rdc('gsm8k-test.json')], tmp_path / 'gsm8k.parquet')
    assert 'joined=1319' in capsys.readouterr().out
    t = read_outcomes(out)
    assert (len(t), len(t.models), t.splits) == (1319, 7, ['test'])
    acc = t.accuracy()
    assert acc.index[0] == 'cognitivecomputations/dolphin-2.9-llama3-8b'
    assert abs(acc.iloc[0] - 0.720) < 6e-4
    assert abs(t.correct().max(axis=1).mean() - 0.861) < 6e-4
    # GSM8K ids are the ones our own queries (and so our own samples) carry
    first = json.loads(rdc('gsm8k-test.json').read_text())[0]['question']
    assert query_id('gsm8k', first) in t.wide().index
    assert set(t.df.n_samples) == {10}


def _accuracy_from_json(path, rule):
    "Each model's accuracy counted straight from a RouterDC JSON file, first record of each question text"
    recs = list({r['question']: r for r in reversed(json.loads(Path(path).read_text()))}.values())
    return {m: sum(rule(r['scores'][m]) for r in recs) / len(recs) for m in recs[0]['scores']}


def test_routerdc_unsplit_loglik_benchmark(tmp_path):
    t = read_outcomes(import_outcomes('routerdc', [rdc('arc_challenge_test.json'), rdc('MATH_prealgebra.json')],
                                      tmp_path / 'o.csv', verbose=False))
    assert t.datasets == ['arc_challenge', 'math_prealgebra']
    # each benchmark's accuracies are those counted by hand from its JSON: ARC above 0, MATH's 0/1 as it is
    for ds, f, rule in [('arc_challenge', 'arc_challenge_test.json', lambda v: v > 0), ('math_prealgebra', 'MATH_prealgebra.json', lambda v: v == 1)]:
        acc = read_outcomes(import_outcomes('routerdc', [rdc(f)], tmp_path / f'{ds}.parquet', verbose=False)).accuracy()
        assert acc.to_dict() == pytest.approx(_accuracy_from_json(rdc(f), rule), abs=1e-12)
        assert acc.to_dict() == pytest.approx(t.correct().loc[t.per_query('dataset') == ds].mean().to_dict(), abs=1e-12)
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


# --- one rule for every reader, one text per query, errors a user can find in the file -------------------------

def test_aliases_accepted_by_import_are_accepted_by_the_study_reader(tmp_path):
    "`study` reads files with read_outcomes: it takes the same column names as `import --format long`"
    p = tmp_path / 'alias.csv'
    pd.DataFrame(dict(qid=['q1', 'q1', 'q2', 'q2'], prompt=['a?', 'a?', 'b?', 'b?'], model_name=['m', 'n'] * 2,
                      correct=[1, 0, 0, 1])).to_csv(p, index=False)
    direct = read_outcomes(p)
    imported = read_outcomes(import_outcomes('long', [p], tmp_path / 'o.parquet', verbose=False))
    assert direct.models == imported.models == ['m', 'n']
    assert direct.wide().equals(imported.wide())


def test_one_question_text_per_query_id(tmp_path):
    p = _long(tmp_path, question={1: 'a different question?'})
    with pytest.raises(InputError) as e:
        import_outcomes('long', [p], tmp_path / 'o.parquet', verbose=False)
    msg = str(e.value)
    assert "long.csv: rows 0, 1: field 'question': query_id 'q1' has 2 different question texts" in msg
    assert '(lines 2, 3 of the file)' in msg
    with pytest.raises(InputError, match="query_id 'q1' has 2 different question texts"):
        read_outcomes(p)                                  # what `study` reads a file with
    assert not (tmp_path / 'o.parquet').exists()


def test_csv_errors_say_the_line_of_the_file(tmp_path):
    p = tmp_path / 'multi.csv'
    p.write_text('query_id,question,model,score\nq1,"a question\nover two lines?",m,0.5\nq2,b?,m,7\n')
    with pytest.raises(InputError) as e:
        import_outcomes('long', [p], tmp_path / 'o.parquet', verbose=False)
    assert str(e.value).startswith("multi.csv: row 1: field 'score': score 7.0 is outside [0, 1]")
    assert str(e.value).endswith('(line 4 of the file)')


def test_exists_error_names_the_flag(tmp_path):
    out = import_outcomes('long', [_long(tmp_path)], tmp_path / 'o.csv', verbose=False)
    with pytest.raises(FileExistsError, match=r'pass --overwrite \(overwrite=True in Python\)'):
        import_outcomes('long', [_long(tmp_path)], out, verbose=False)


def test_outputs_follow_the_umask(tmp_path):
    import os, stat
    old = os.umask(0o022)
    try:
        a = import_outcomes('long', [_long(tmp_path)], tmp_path / 'a.parquet', verbose=False)
        os.umask(0o077)
        b = import_outcomes('long', [_long(tmp_path)], tmp_path / 'b.csv', verbose=False)
    finally: os.umask(old)
    assert stat.S_IMODE(a.stat().st_mode) == 0o644
    assert stat.S_IMODE(b.stat().st_mode) == 0o600


def test_samples_without_gold_name_file_and_line(tmp_path):
    runs = tmp_path / 'runs'
    _fake_run(runs, 'org/a', {'q1': ('18', ['The answer is 18.']), 'q2': (None, ['The answer is 5.'])})
    with pytest.raises(InputError) as e:
        import_outcomes('samples', [runs], tmp_path / 'o.parquet', verbose=False)
    msg = str(e.value)
    assert msg.startswith("gsm8k/org--a/samples-00000.jsonl: field 'gold': no gold answer") and msg.endswith('(line 2 of the file)')
    _fake_run(tmp_path / 'r2', 'org/a', {'q1': ('18', ['The answer is 18.'])})
    shard = tmp_path / 'r2' / 'gsm8k' / 'org--a' / 'samples-00000.jsonl'
    shard.write_text(shard.read_text().replace('"dataset": "gsm8k"', '"dataset": "squad"'))
    with pytest.raises(InputError, match=r"samples-00000.jsonl: field 'dataset': unknown dataset 'squad'.*\(line 1 of the file\)"):
        import_outcomes('samples', [tmp_path / 'r2'], tmp_path / 'o.parquet', verbose=False)


# --- RouterBench -------------------------------------------------------------------------------------------------

def _routerbench(tmp_path, name='toy_test.csv', gaps=True):
    "A small RouterBench-style wide table: 5 queries x 3 models; with gaps, q.2 lacks b's cost and q.4 lacks c's score"
    w = pd.DataFrame({'Unnamed: 0': range(5), 'sample_id': [f'toy.dev.{i}' for i in range(5)],
                      'prompt': [f"['question {i}?']" for i in range(5)], 'eval_name': 'toy',
                      'a': [1, 0, 1, 1, 0], 'b': [1, 1, 0, 1, 1], 'c': [0, 0, 0, 1, None if gaps else 1],
                      'a|model_response': [f"['a{i}']" for i in range(5)], 'b|model_response': [f"['b{i}']" for i in range(5)],
                      'c|model_response': [f"['c{i}']" for i in range(5)],
                      'a|total_cost': [0.01] * 5, 'b|total_cost': [0.001, 0.001, None if gaps else 0.001, 0.001, 0.001],
                      'c|total_cost': [0.0001] * 5, 'oracle_model_to_route_to': 'a'})
    p = tmp_path / name
    w.to_csv(p, index=False)
    return p


def test_routerbench_gaps_are_an_error_naming_the_queries(tmp_path):
    with pytest.raises(InputError) as e:
        import_outcomes('routerbench', [_routerbench(tmp_path)], tmp_path / 'o.parquet', verbose=False)
    msg = str(e.value)
    assert msg.startswith("toy_test.csv: rows 2, 4: 2 of 5 queries lack a score or a cost for some model (sample_ids toy.dev.2, toy.dev.4")
    assert 'b (1), c (1)' in msg and '--drop-incomplete' in msg and msg.endswith('(lines 4, 6 of the file)')
    assert not (tmp_path / 'o.parquet').exists()


def test_routerbench_drop_incomplete_drops_exactly_those(tmp_path, capsys):
    with pytest.warns(UserWarning, match='toy_test.csv: dropped 2 of 5 queries'):
        out = import_outcomes('routerbench', [_routerbench(tmp_path)], tmp_path / 'o.parquet', drop_incomplete=True, keep_responses=True)
    assert 'dropped_incomplete=2' in capsys.readouterr().out
    t = read_outcomes(out)
    assert t.query_order() == ['toy.dev.0', 'toy.dev.1', 'toy.dev.3']
    assert (t.models, t.splits, t.datasets) == (['a', 'b', 'c'], ['test'], ['toy'])
    assert t.model_cost() == pytest.approx({'a': 0.01, 'b': 0.001, 'c': 0.0001})
    assert t.wide('response').loc['toy.dev.3'].tolist() == ['a3', 'b3', 'c3']
    assert t.questions().tolist() == ['question 0?', 'question 1?', 'question 3?']


def test_routerbench_complete_file_and_options(tmp_path):
    t = read_outcomes(import_outcomes('routerbench', [_routerbench(tmp_path, 'toy_train.csv', gaps=False)], tmp_path / 'o.csv', verbose=False))
    assert (len(t), t.splits) == (5, ['train']) and 'response' not in t.df
    with pytest.raises(InputError, match=r"--drop-incomplete \(drop_incomplete in Python\) do not apply to --format long"):
        import_outcomes('long', [_long(tmp_path)], tmp_path / 'x.parquet', drop_incomplete=True, verbose=False)


def test_routerbench_real_files(tmp_path):
    t = read_outcomes(import_outcomes('routerbench', outcome_files('routerbench'), tmp_path / 'rb.parquet', verbose=False))
    assert len(t.models) == 11 and t.datasets == ['mbpp', 'winogrande']
    n = t.df.drop_duplicates('query_id').groupby(['dataset', 'split']).size().to_dict()
    assert n == {('mbpp', 'test'): 128, ('mbpp', 'train'): 299, ('winogrande', 'test'): 380, ('winogrande', 'train'): 887}
    assert t.df.cost.notna().all() and (t.df.cost > 0).all()
    wg = t.df[(t.df.dataset == 'winogrande') & (t.df.split == 'test')]
    acc = wg.groupby('model').score.mean()
    assert acc.idxmax() == 'gpt-4-1106-preview' and abs(acc.max() - 0.855) < 6e-4
    assert abs(wg.groupby('model').cost.mean()['gpt-4-1106-preview'] - 0.0035) < 1e-4


def test_routerbench_without_sample_id_or_eval_name(tmp_path):
    "Any RouterBench-like table: ids from dataset + prompt, the dataset from the file name, parquet and pickle too"
    src = pd.read_csv(_routerbench(tmp_path, gaps=False)).drop(columns=['sample_id', 'eval_name'])
    for name in ['hellaswag_val.parquet', 'hellaswag_val.pkl']:
        p = tmp_path / name
        src.to_parquet(p) if name.endswith('.parquet') else src.to_pickle(p)
        t = read_outcomes(import_outcomes('routerbench', [p], tmp_path / f'{name}.csv', verbose=False))
        assert (t.datasets, t.splits, len(t)) == (['hellaswag'], ['val'], 5)
        assert query_id('hellaswag', 'question 0?') in t.query_order()


# --- mixture: several RouterDC benchmarks as one routing problem ---------------------------------------------

def _release(d, files):
    "RouterDC-like JSON files {name: [(question, {model: score})]} in folder d"
    for n, recs in files.items(): (d / n).write_text(json.dumps([{"question": q, "scores": s} for q, s in recs]))
    return [d / n for n in files]


def test_mixture_pools_two_tasks_and_an_ood_block(tmp_path):
    "Each task's rule of correctness, unique ids across tasks, the OOD block test-only, task and block kept through a file"
    fs = _release(tmp_path, {
        # sampled (fraction of 10): solved at score >= 0.5
        'gsm8k-train.json': [("Same text?", {"m1": 0.4, "m2": 0.5}), ("Two plus two?", {"m1": 0.9, "m2": 0.1})],
        'gsm8k-test.json': [("Three plus three?", {"m1": 0.5, "m2": 0.4})],
        # log-likelihood (0, or the chosen option's probability): solved when the value is above 0, even far below 0.5
        'mmlu_train.json': [("Same text?", {"m1": 0.2576, "m2": 0.0})],
        'mmlu_test.json': [("Capital of France?", {"m1": 0.0, "m2": 0.3277})],
        # MATH (0/1) and ARC-Easy (has a train file, held out by name): the OOD block
        'MATH_prealgebra.json': [("1/2 + 1/4?", {"m1": 1, "m2": 0})],
        'arc_easy_train.json': [("Which is a metal?", {"m1": 0.3, "m2": 0.0})],
        'arc_easy_test.json': [("Which is a gas?", {"m1": 0.0, "m2": 0.7134})]})
    with pytest.warns(UserWarning, match="1 question text appears in several tasks"):
        out = import_outcomes('mixture', fs, tmp_path / 'mix.csv', ood=['arc_easy'], join=False, verbose=False)
    t = read_outcomes(out)
    assert t.datasets == ['mixture'] and t.tasks == ['arc_easy', 'gsm8k', 'math_prealgebra', 'mmlu']
    q = t.df.drop_duplicates('query_id')
    assert len(q) == 7 and sorted(q.task[q.question == 'Same text?']) == ['gsm8k', 'mmlu']   # one text, two tasks, two ids
    assert 'Which is a metal?' not in set(q.question)                      # the OOD task's train file is left out
    blk = t.per_query('block').groupby(t.per_query('task')).first().to_dict()
    assert blk == {'arc_easy': 'ood', 'gsm8k': 'in', 'math_prealgebra': 'ood', 'mmlu': 'in'}
    assert set(t.df.split[t.df.block == 'ood']) == {'test'}
    C = t.correct().set_axis(t.per_query('task') + ':' + t.questions())
    assert C.to_dict('index') == {
        'gsm8k:Same text?': {'m1': 0, 'm2': 1}, 'gsm8k:Two plus two?': {'m1': 1, 'm2': 0}, 'gsm8k:Three plus three?': {'m1': 1, 'm2': 0},
        'mmlu:Same text?': {'m1': 1, 'm2': 0}, 'mmlu:Capital of France?': {'m1': 0, 'm2': 1},
        'math_prealgebra:1/2 + 1/4?': {'m1': 1, 'm2': 0}, 'arc_easy:Which is a gas?': {'m1': 0, 'm2': 1}}
    # the pooled table needs no global threshold: maj_correct carries each task's rule
    assert (t.correct(threshold=0.95).to_numpy() == t.correct().to_numpy()).all()
    assert t.df.maj_correct.notna().all()
    # task-oracle: each task's best model chosen on train, routed by the known task
    best = t.best_by_task('train')
    assert best == {'gsm8k': 'm1', 'mmlu': 'm1'}
    with pytest.raises(InputError, match=r"no model for task\(s\) \['arc_easy', 'math_prealgebra'\]"):
        t.task_choices(best, 'test')
    tasks = t.per_query('task', 'test').tolist()
    assert sorted(tasks) == ['arc_easy', 'gsm8k', 'math_prealgebra', 'mmlu']
    expected = {'arc_easy': 1, 'gsm8k': 0, 'math_prealgebra': 1, 'mmlu': 0}        # m1 is column 0, m2 column 1
    assert t.task_choices(best, 'test', default='m2').tolist() == [expected[k] for k in tasks]


def test_mixture_bad_input(tmp_path):
    fs = _release(tmp_path, {'humaneval_train.json': [("def f(): ...", {"m1": 0.2, "m2": 0.8})],
                             'humaneval.json': [("def g(): ...", {"m1": 0.2, "m2": 0.8})],
                             'mbpp.json': [("Sort a list.", {"m1": 1.0, "m2": 0.0})]})
    with pytest.raises(InputError, match=r"humaneval.json: field 'split': no split in the file name of in-distribution task 'humaneval'"):
        import_outcomes('mixture', fs, tmp_path / 'o.parquet', verbose=False)
    with pytest.raises(InputError, match=r"ood task\(s\) \['gsm8k'\] have no file"):
        import_outcomes('mixture', fs[::2], tmp_path / 'o.parquet', ood=['gsm8k'], verbose=False)
    with pytest.raises(InputError, match="no in-distribution task"):
        import_outcomes('mixture', fs[2:], tmp_path / 'o.parquet', verbose=False)
    with pytest.raises(InputError, match=r"--drop-incomplete \(drop_incomplete in Python\) do not apply to --format mixture"):
        import_outcomes('mixture', fs[::2], tmp_path / 'o.parquet', drop_incomplete=True, verbose=False)
    assert not (tmp_path / 'o.parquet').exists()
    t = read_outcomes(import_outcomes('mixture', fs[::2], tmp_path / 'o.parquet', verbose=False))
    assert t.per_query('block').to_dict() == {t.df.query_id[t.df.task == k].iloc[0]: b for k, b in [('humaneval', 'in'), ('mbpp', 'ood')]}


def test_mixture_real_code_tasks(tmp_path):
    "HumanEval (train/test) with MBPP and JavaScript held out: counts and accuracies as each file imported alone"
    names = ['humaneval_train.json', 'humaneval_test.json', 'mbpp.json', 'javascript.json']
    t = read_outcomes(import_outcomes('mixture', [rdc(n) for n in names], tmp_path / 'code.parquet', verbose=False))
    n = t.df.drop_duplicates('query_id').groupby(['task', 'block', 'split']).size().to_dict()
    assert n == {('humaneval', 'in', 'test'): 49, ('humaneval', 'in', 'train'): 115, ('javascript', 'ood', 'test'): 164,
                 ('mbpp', 'ood', 'test'): 499}
    alone = read_outcomes(import_outcomes('routerdc', [rdc('mbpp.json')], tmp_path / 'mbpp.parquet', verbose=False))
    assert t.task_accuracy(split='test').loc['mbpp'].to_dict() == alone.accuracy().to_dict()


# --- RouterDC: the scoring rule comes from the scores (or --scoring), never from the file's name ------------------

@pytest.mark.parametrize('src,renamed', [('mmlu_test.json', 'exam_test.json'), ('gsm8k-test.json', 'quiz.json'),
                                         ('arc_challenge_test.json', 'gsm8k-test-copy.json'), ('mbpp.json', 'mmlu_mbpp.json')])
def test_routerdc_renamed_file_gives_the_same_outcomes(tmp_path, src, renamed):
    "A release file under another name: the same scores, counts and accuracies, query by query (ids follow the name)"
    (tmp_path / renamed).write_bytes(rdc(src).read_bytes())
    a = read_outcomes(import_outcomes('routerdc', [rdc(src)], tmp_path / 'a.parquet', verbose=False, join=False))
    b = read_outcomes(import_outcomes('routerdc', [tmp_path / renamed], tmp_path / 'b.parquet', verbose=False))
    by_text = lambda t, col: t.wide(col).set_axis(t.questions().to_numpy()).sort_index()
    for col in ['score', 'n_samples', 'n_correct']:
        wa, wb = by_text(a, col), by_text(b, col)
        assert wb.index.equals(wa.index) and list(wb.columns) == list(wa.columns)
        bad = (wb.to_numpy() != wa.to_numpy()).any(axis=1)
        assert not bad.any(), f"{col}: {int(bad.sum())} of {len(wa)} queries differ, e.g. {wa.index[bad][0][:60]!r}"
    assert b.accuracy().to_dict() == a.accuracy().to_dict()


def test_routerdc_renamed_mmlu_keeps_its_accuracies(tmp_path):
    "MMLU's test file renamed: every model's accuracy as counted from the JSON (a value above 0 is correct), not at 0.5"
    (tmp_path / 'exam_test.json').write_bytes(rdc('mmlu_test.json').read_bytes())
    t = read_outcomes(import_outcomes('routerdc', [tmp_path / 'exam_test.json'], tmp_path / 'o.parquet', verbose=False))
    assert t.accuracy().to_dict() == pytest.approx(_accuracy_from_json(rdc('mmlu_test.json'), lambda v: v > 0), abs=1e-12)
    assert t.accuracy().idxmax() == 'meta-llama/Meta-Llama-3-8B' and abs(t.accuracy().max() - 0.646) < 0.0015


def test_routerdc_ambiguous_scores_need_scoring(tmp_path):
    "Values that fit neither rule stop the import, naming the file and the flag; --scoring decides, per file if asked"
    f = _release(tmp_path, {'quiz_test.json': [("Q1", {"m1": 0.05, "m2": 0.6}), ("Q2", {"m1": 0.45, "m2": 0.0})],
                            'exam_test.json': [("Q3", {"m1": 0.25, "m2": 0.75}), ("Q4", {"m1": 0.5, "m2": 0.0})],
                            'tiny_test.json': [("Q5", {"m1": 0.0537, "m2": 0.6123}), ("Q6", {"m1": 0.0, "m2": 0.3311})]})
    for one in f:
        with pytest.raises(InputError) as e:
            import_outcomes('routerdc', [one], tmp_path / 'o.parquet', verbose=False)
        assert str(e.value).startswith(f"{one.name}: field 'scores': cannot tell from its scores how the file was scored")
        assert '--scoring positive' in str(e.value) and '--scoring fraction' in str(e.value)
    assert not (tmp_path / 'o.parquet').exists()
    t = read_outcomes(import_outcomes('routerdc', f[:2], tmp_path / 'o.parquet', verbose=False,
                                      scoring={'quiz_test.json': 'positive', 'exam_test.json': 'fraction'}))
    C = t.correct().set_axis(t.questions().to_numpy()).to_dict('index')
    assert C == {'Q1': {'m1': 1, 'm2': 1}, 'Q2': {'m1': 1, 'm2': 0}, 'Q3': {'m1': 0, 'm2': 1}, 'Q4': {'m1': 1, 'm2': 0}}
    with pytest.raises(InputError, match=r"--scoring \(scoring in Python\) do not apply to --format routerbench"):
        import_outcomes('routerbench', [_routerbench(tmp_path, gaps=False)], tmp_path / 'x.parquet', scoring='positive', verbose=False)
    with pytest.raises(InputError, match="unknown scoring 'mean'"):
        import_outcomes('routerdc', f[:2], tmp_path / 'x.parquet', scoring='mean', verbose=False)


def test_mixture_takes_each_files_rule_from_its_scores(tmp_path):
    "A pooled table: a renamed log-likelihood file is still solved above 0, a sampled one at score >= 0.5"
    fs = _release(tmp_path, {'alpha_train.json': [("A1?", {"m1": 0.3277, "m2": 0.0})],        # probabilities
                             'alpha_test.json': [("A2?", {"m1": 0.0, "m2": 0.2842})],
                             'beta_train.json': [("B1?", {"m1": 0.3, "m2": 0.8})],           # tenths: 10 samples
                             'beta_test.json': [("B2?", {"m1": 0.4, "m2": 0.5})]})
    t = read_outcomes(import_outcomes('mixture', fs, tmp_path / 'mix.parquet', verbose=False))
    C = t.correct().set_axis(t.questions().to_numpy()).to_dict('index')
    assert C == {'A1?': {'m1': 1, 'm2': 0}, 'A2?': {'m1': 0, 'm2': 1}, 'B1?': {'m1': 0, 'm2': 1}, 'B2?': {'m1': 0, 'm2': 1}}


# --- each sample's answer in the outcomes table ------------------------------------------------------------------

def test_sample_answers_round_trip_every_format(tmp_path):
    "label_runs keeps each sample's answer, in order; parquet, CSV and JSON lines give back the same lists"
    runs = tmp_path / 'runs'
    _fake_run(runs, 'org/a', {'q1': ('18', ['The answer is 18.', 'I give up.', '#### 1,018']),
                              'q2': ('-5', ['The answer is 5.', 'so -5, "quoted", ok', 'The answer is \u0665.'])})
    _fake_run(runs, 'org/b', {'q1': ('18', ['18', '$18.00', 'The answer is 17.']), 'q2': ('-5', ['x', 'y', 'z'])})
    expected = {('q1', 'org/a'): ['18', None, '1018'], ('q2', 'org/a'): ['5', '-5', '5'],
                ('q1', 'org/b'): ['18', '18', '17'], ('q2', 'org/b'): [None, None, None]}
    for name in ['o.parquet', 'o.csv', 'o.jsonl']:
        t = read_outcomes(import_outcomes('samples', [runs], tmp_path / name, verbose=False))
        got = {(r.query_id, r.model): r.answers for r in t.df.itertuples()}
        assert got == expected, name
        assert t.wide('n_correct').loc['q1'].tolist() == [1, 2]
    assert 'answers' not in read_outcomes(import_outcomes('routerdc', [rdc('mbpp.json')], tmp_path / 'r.parquet', verbose=False)).df


def _pool(n=120):
    "Two specialists and a weak model on n queries, with 3 samples each and their answers"
    rows = []
    for i in range(n):
        math = i % 2 == 0
        q = f"What is {i} plus {i + 3}, step by step?" if math else f"Who ruled province {i} in the middle ages?"
        for m, good in [('acme/math', math), ('acme/chat', not math), ('acme/tiny', i % 3 == 0)]:
            k = 3 if good else (i % 2)
            rows.append(dict(query_id=f'q{i:04d}', question=q, model=m, n_samples=3, n_correct=k, score=k / 3,
                             split='test' if i % 5 == 4 else 'train', answers=['a'] * k + [None] * (3 - k)))
    return pd.DataFrame(rows)


def test_study_reads_a_table_with_answers_as_without(tmp_path):
    "The study's results do not move when the outcomes carry each sample's answers, in any format"
    from llmroute.study import run_study
    df = _pool()
    df.drop(columns='answers').to_csv(tmp_path / 'plain.csv', index=False)
    base = run_study(tmp_path / 'plain.csv', 'pool', tmp_path / 'plain', n_boot=100, n_clusters=8, figures=False)
    for name in ['with.parquet', 'with.csv', 'with.jsonl']:
        from llmroute.outcomes import OutcomeTable
        OutcomeTable(df).save(tmp_path / name)
        res = run_study(tmp_path / name, 'pool', tmp_path / name.replace('.', '_'), n_boot=100, n_clusters=8, figures=False)
        pd.testing.assert_frame_equal(res, base)
