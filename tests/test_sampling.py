"Sampling survives a kill: a real sampling process is SIGKILLed mid-run and resumed; SmolLM2 end to end to outcomes."
import json, os, signal, subprocess, sys, textwrap, time
from pathlib import Path
import pytest, torch
from llmroute.sampling import tiny_llama, sample_dataset, read_samples, shard_file

torch.set_num_threads(1)  # the test machine's cores are shared: oversubscribed torch threads are 10x slower
ARGS = dict(limit=10, n_samples=2, max_new_tokens=24, batch_size=1, quantize='4bit', progress=False)

@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    return tiny_llama(tmp_path_factory.mktemp('model')/'tiny')

def _ids(run): return [r['query_id'] for r in read_samples(Path(run)/shard_file('0/1'))]

def _lines(path): return path.read_bytes().count(b'\n') if path.exists() else 0

def test_resume_after_sigkill(tiny, tmp_path):
    out = tmp_path/'runs'
    shard = out/'gsm8k'/'tiny'/shard_file('0/1')
    code = textwrap.dedent(f"""
        import torch; torch.set_num_threads(1)
        from llmroute.sampling import sample_dataset
        sample_dataset('gsm8k', {str(tiny)!r}, {str(out)!r}, **{ARGS!r})
    """)
    proc = subprocess.Popen([sys.executable, '-c', code], env={**os.environ, 'TOKENIZERS_PARALLELISM': 'false'})
    try:
        t0 = time.time()
        while _lines(shard) < 2 and proc.poll() is None and time.time() - t0 < 240: time.sleep(0.02)
        assert proc.poll() is None, "the sampling process ended before it could be killed mid-run"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = _lines(shard)
    assert 2 <= before < ARGS['limit'], f"killed with {before} records written"
    run = sample_dataset('gsm8k', str(tiny), out, **ARGS)          # the same arguments: resume
    ids = _ids(run)
    assert len(ids) == ARGS['limit'] and len(set(ids)) == ARGS['limit']
    # and the interrupted-and-resumed run holds exactly what one uninterrupted run writes
    fresh = sample_dataset('gsm8k', str(tiny), tmp_path/'fresh', **ARGS)
    key = lambda run: {r['query_id']: r['responses'] for r in read_samples(Path(run)/shard_file('0/1'))}
    assert key(run) == key(fresh)
    starts = [json.loads(l) for l in (run/'runs.jsonl').read_text().splitlines()]
    assert [s['done_before'] for s in starts] == [0, before]

def test_torn_last_line_repaired(tiny, tmp_path):
    args = {**ARGS, 'limit': 4, 'batch_size': 4}
    run = sample_dataset('gsm8k', str(tiny), tmp_path, **args)
    f = run/shard_file('0/1')
    whole = f.read_bytes().split(b'\n')
    f.write_bytes(b'\n'.join(whole[:3]) + b'\n' + whole[3][:25])    # a kill in the middle of the 4th record
    assert len(read_samples(f, repair=False)) == 3
    sample_dataset('gsm8k', str(tiny), tmp_path, **args)
    ids = _ids(run)
    assert len(ids) == 4 and len(set(ids)) == 4
    assert f.read_bytes().endswith(b'\n')

def test_smollm2_end_to_end_to_outcomes(tmp_path):
    "Real: SmolLM2-135M-Instruct on two GSM8K and two MMLU test questions, labeled into an outcomes table"
    from llmroute.outcomes import label_runs
    runs = [sample_dataset(ds, 'smollm2-135m', tmp_path, limit=2, n_samples=2, max_new_tokens=48, progress=False)
            for ds in ('gsm8k', 'mmlu')]
    for r in runs:
        recs = read_samples(r/shard_file('0/1'))
        assert len(recs) == 2 and all(len(x['responses']) == 2 and x['latency_s'] > 0 for x in recs)
    t = label_runs(runs)
    df = t.df
    assert len(df) == 4 and set(df.model) == {'smollm2-135m'} and set(df.dataset) == {'gsm8k', 'mmlu'}
    assert df.score.between(0, 1).all() and (df.n_samples == 2).all()
