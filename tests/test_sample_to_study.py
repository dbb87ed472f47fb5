"""From the shell, end to end: `llmroute sample --engine hf-cb` is SIGKILLed mid-run and rerun, then `label` and
`study` run on what it wrote. Two real local models (SmolLM2-135M-Instruct and a tiny random Llama) form the pool."""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pandas as pd
from llmroute.sampling import tiny_llama, read_samples, shard_file

EXE = Path(sys.executable).parent/'llmroute'
ENV = {**os.environ, 'TOKENIZERS_PARALLELISM': 'false', 'OMP_NUM_THREADS': '1'}
N = 40  # queries: enough for the study's seeded train/val/test split of a table that has only test queries
SAMPLE = ['--dataset', 'gsm8k', '--split', 'test', '--limit', str(N), '--n-samples', '2', '--max-new-tokens', '12',
          '--engine', 'hf-cb', '--num-blocks', '64', '--max-batch-tokens', '256']

def _run(*args, **kw):
    return subprocess.run([str(EXE), *map(str, args)], capture_output=True, text=True, env=ENV, timeout=600, **kw)

def _lines(p): return p.read_bytes().count(b'\n') if p.exists() else 0

def test_hf_cb_killed_rerun_label_study(tmp_path):
    out = tmp_path/'samples'
    shard = out/'gsm8k'/'smollm2-135m'/shard_file('0/1')
    proc = subprocess.Popen([str(EXE), 'sample', *SAMPLE, '--model', 'smollm2-135m', '--out', str(out)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while _lines(shard) < 3 and proc.poll() is None and time.time() - t0 < 300: time.sleep(0.05)
    assert proc.poll() is None, "sampling ended before it could be killed mid-run"
    os.kill(proc.pid, signal.SIGKILL); proc.wait()
    killed_at = _lines(shard)
    assert 3 <= killed_at < N
    r = _run('sample', *SAMPLE, '--model', 'smollm2-135m', '--out', out)
    assert r.returncode == 0, r.stderr[-3000:]
    recs = read_samples(shard)
    ids = [x['query_id'] for x in recs]
    assert len(ids) == N and len(set(ids)) == N and all(len(x['responses']) == 2 for x in recs)

    tiny = tiny_llama(tmp_path/'tiny-llama')
    r = _run('sample', *SAMPLE, '--model', tiny, '--out', out)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = sorted(p for p in (out/'gsm8k').iterdir() if p.is_dir())
    assert len(runs) == 2

    table = tmp_path/'outcomes.parquet'
    r = _run('label', *runs, '--out', table)
    assert r.returncode == 0, r.stderr[-3000:]
    df = pd.read_parquet(table)
    assert len(df) == 2 * N and df.groupby('model').query_id.nunique().tolist() == [N, N]

    r = _run('study', '--outcomes', table, '--name', 'toy-pool', '--out', tmp_path/'study', '--n-boot', '200')
    assert r.returncode == 0, r.stderr[-3000:]
    res = pd.read_csv(tmp_path/'study'/'results.csv')
    assert {'oracle', 'random'} <= set(res.method) and (res.family == 'single').sum() == 2
    assert res.accuracy.between(0, 100).all()
