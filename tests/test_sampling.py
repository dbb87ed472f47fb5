"""Sampling survives kills and concurrent starts: real sampling processes are SIGKILLed mid-run and resumed (both HF
engines), two processes started at once on one shard never write a query twice; SmolLM2 end to end to outcomes."""
import json, os, signal, subprocess, sys, tempfile, textwrap, time
from pathlib import Path
import pytest, torch
from llmroute.sampling import tiny_llama, sample_dataset, read_samples, shard_file, repair_duplicates, SampleWriter

torch.set_num_threads(1)  # the test machine's cores are shared: oversubscribed torch threads are 10x slower
ARGS = dict(limit=10, n_samples=2, max_new_tokens=24, batch_size=1, quantize='4bit', progress=False)
ENV = {**os.environ, 'TOKENIZERS_PARALLELISM': 'false', 'OMP_NUM_THREADS': '1'}
# hf-cb on SmolLM2 with a small cache, one query (two samples) per forward pass so that records come one by one;
# float32, the CPU setting whose responses do not depend on the batch (bf16's do: see "What is exact where" in 03c_engine)
CB = dict(limit=6, n_samples=2, max_new_tokens=24, engine='hf-cb', num_blocks=48, max_batch_tokens=256,
          engine_args=dict(max_requests=2, page_size=32), dtype='float32', progress=False)

@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    return tiny_llama(tmp_path_factory.mktemp('model')/'tiny')

def _ids(run): return [r['query_id'] for r in read_samples(Path(run)/shard_file('0/1'))]

def _lines(path): return path.read_bytes().count(b'\n') if path.exists() else 0

def _sampler(model, out, args, gate=False):
    "A real sampling process; with gate=True it imports everything first and starts sampling when sent a line"
    code = textwrap.dedent(f"""
        import sys, torch; torch.set_num_threads(1)
        from llmroute.sampling import sample_dataset
        if {gate!r}: print('ready', flush=True); sys.stdin.readline()
        sample_dataset('gsm8k', {str(model)!r}, {str(out)!r}, **{args!r})
    """)
    err = tempfile.TemporaryFile('w+')                                # a file, not a pipe: a chatty child never blocks
    proc = subprocess.Popen([sys.executable, '-c', code], env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=err, text=True)
    proc.err = err
    return proc

def _stderr(proc)->str:
    proc.err.seek(0); return proc.err.read()

def _kill_after(proc, shard, records:int, limit:int):
    "SIGKILL `proc` once `shard` holds `records` records; return how many it held"
    try:
        t0 = time.time()
        while _lines(shard) < records and proc.poll() is None and time.time() - t0 < 300: time.sleep(0.02)
        assert proc.poll() is None, "the sampling process ended before it could be killed mid-run: " + _stderr(proc)[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = _lines(shard)
    assert records <= before < limit, f"killed with {before} records written"
    return before

def test_resume_after_sigkill(tiny, tmp_path):
    out = tmp_path/'runs'
    shard = out/'gsm8k'/'tiny'/shard_file('0/1')
    before = _kill_after(_sampler(tiny, out, ARGS), shard, 2, ARGS['limit'])
    assert Path(str(shard) + '.lock').exists()                       # the killed process's lock is left behind...
    run = sample_dataset('gsm8k', str(tiny), out, **ARGS)            # ...and broken by the resume (same host, pid gone)
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

def test_concurrent_start_one_writer(tiny, tmp_path):
    "Three processes start on one shard at the same instant: one writes, the ones without --wait stop naming it, the waiter finds it done"
    args = {**ARGS, 'limit': 8, 'max_new_tokens': 32}
    shard = tmp_path/'gsm8k'/'tiny'/shard_file('0/1')
    procs = [_sampler(tiny, tmp_path, args, gate=True), _sampler(tiny, tmp_path, args, gate=True),
             _sampler(tiny, tmp_path, {**args, 'wait': True}, gate=True)]
    assert [p.stdout.readline().strip() for p in procs] == ['ready'] * 3  # all three have imported everything
    for p in procs: p.stdin.write('\n'); p.stdin.flush()              # then all start sampling at once
    for p in procs: p.communicate(timeout=600)
    errs = [_stderr(p) for p in procs]
    codes = [p.returncode for p in procs]
    assert codes[2] == 0, errs[2][-2000:]                            # the waiter always ends well
    assert codes[:2].count(0) <= 1, "two processes without --wait both ended well: one should have found the shard taken"
    losers = [i for i, c in enumerate(codes) if c != 0]
    winners = [procs[i].pid for i, c in enumerate(codes) if c == 0]
    for i in losers:
        assert 'another sampling process writes this shard' in errs[i], errs[i][-2000:]
        assert any(f"pid {w} on host" in errs[i] for w in winners), errs[i][-2000:]
    ids = _ids(tmp_path/'gsm8k'/'tiny')
    assert len(ids) == args['limit'] and len(set(ids)) == args['limit']   # no query twice
    assert not Path(str(shard) + '.lock').exists()
    run = sample_dataset('gsm8k', str(tiny), tmp_path, **args)             # a rerun completes with nothing to do
    assert _lines(shard) == args['limit']

def test_repair_duplicates_then_resume(tiny, tmp_path):
    "A folder written twice (as before the lock existed) is repaired by keeping each query's first record"
    args = {**ARGS, 'limit': 3, 'batch_size': 3}
    run = sample_dataset('gsm8k', str(tiny), tmp_path, **args)
    shard = run/shard_file('0/1')
    recs = read_samples(shard)
    with SampleWriter(shard) as w:
        for r in recs: w.write({**r, 'responses': ['a second copy'] * 2})
    with pytest.raises(ValueError, match='appears twice'): read_samples(shard)
    assert repair_duplicates(tmp_path) == {str(shard): 3}
    assert read_samples(shard) == recs
    sample_dataset('gsm8k', str(tiny), tmp_path, **args)
    assert _lines(shard) == 3

def test_hf_cb_smollm2_sigkill_resume_label(tmp_path):
    "Real: hf-cb on SmolLM2 is SIGKILLed mid-run, resumed, and labeled: every query exactly once with its n samples"
    from llmroute.importers import label_runs
    out = tmp_path/'runs'
    shard = out/'gsm8k'/'smollm2-135m'/shard_file('0/1')
    before = _kill_after(_sampler('smollm2-135m', out, CB), shard, 2, CB['limit'])
    run = sample_dataset('gsm8k', 'smollm2-135m', out, **CB)
    recs = read_samples(run/shard_file('0/1'))
    assert sorted(r['query_id'] for r in recs) == sorted(set(r['query_id'] for r in recs)) and len(recs) == CB['limit']
    assert all(len(r['responses']) == CB['n_samples'] and len(r['new_tokens']) == CB['n_samples'] for r in recs)
    man = json.loads((run/'manifest.json').read_text())
    assert man['config']['engine'] == 'hf-cb' and man['config']['dtype'] == 'float32'
    assert man['config']['batch_independent'] is (not torch.cuda.is_available())   # float32: exact on the CPU only
    assert [json.loads(l)['done_before'] for l in (run/'runs.jsonl').read_text().splitlines()] == [0, before]
    # batch independence: the killed-and-resumed run, one query at a time, holds what one run of all at once writes
    fresh = sample_dataset('gsm8k', 'smollm2-135m', tmp_path/'fresh', **{**CB, 'engine_args': dict(max_requests=32, page_size=32)})
    key = lambda run: {r['query_id']: r['responses'] for r in read_samples(Path(run)/shard_file('0/1'))}
    if man['config']['batch_independent']: assert key(run) == key(fresh)
    else: assert key(run).keys() == key(fresh).keys()                   # on CUDA: two draws of one distribution
    df = label_runs([run]).df
    assert len(df) == CB['limit'] and (df.n_samples == CB['n_samples']).all() and df.score.between(0, 1).all()

def test_smollm2_end_to_end_to_outcomes(tmp_path):
    "Real: SmolLM2-135M-Instruct on two GSM8K and two MMLU test questions, labeled into an outcomes table"
    from llmroute.importers import label_runs
    runs = [sample_dataset(ds, 'smollm2-135m', tmp_path, limit=2, n_samples=2, max_new_tokens=48, progress=False)
            for ds in ('gsm8k', 'mmlu')]
    for r in runs:
        recs = read_samples(r/shard_file('0/1'))
        assert len(recs) == 2 and all(len(x['responses']) == 2 and x['latency_s'] > 0 for x in recs)
    t = label_runs(runs)
    df = t.df
    assert len(df) == 4 and set(df.model) == {'smollm2-135m'} and set(df.dataset) == {'gsm8k', 'mmlu'}
    assert df.score.between(0, 1).all() and (df.n_samples == 2).all()
