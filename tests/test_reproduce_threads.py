"""Reproduction across machines, approximated on one: the same study with one thread and with two (BLAS, OpenMP and
torch), each in its own embedding cache, one cold and one already holding every third question (so the questions
are embedded in other batches, as in a warm checkout), writes the same tables byte for byte. Near-ties decided by
float noise (a kNN neighbour, a policy's closest confidence) are what this catches: the embeddings are batch-
independent (a float64 encoder kept in float32) and ties go to the data, with a tolerance, not to a float's last bits."""
import os, subprocess, sys
from pathlib import Path
import numpy as np, pandas as pd

SCRIPT = """
import sys, warnings, torch
warnings.filterwarnings('ignore')
torch.set_num_threads(int(sys.argv[3]))
from llmroute.study import run_study
if sys.argv[4] == 'warm':   # a cache that already holds some questions: the others are embedded in other batches
    import pandas as pd
    from llmroute.features import EmbeddingFeaturizer
    EmbeddingFeaturizer().transform(pd.read_csv(sys.argv[1]).drop_duplicates('query_id').question.tolist()[::3])
run_study(sys.argv[1], 'thr', sys.argv[2], features=('tfidf', 'embedding'), n_boot=200, n_clusters=6, figures=False)
"""

def table(n=240, K=4, seed=0)->pd.DataFrame:
    "GSM8K's first questions (varied lengths, as real batches have), each model better on some kinds of them"
    from llmroute.core import data_dir
    import json
    qs = [r['question'] for r in json.loads((data_dir(required=True)/'routerdc'/'gsm8k-test.json').read_text())][:n]
    rng = np.random.default_rng(seed)
    skill = rng.uniform(0.2, 0.9, (K, 4))
    rows = []
    for i in range(n):
        t, q = len(qs[i]) % 4, qs[i]
        for k in range(K):
            rows.append(dict(query_id=f"q{i:04d}", question=q, model=f"org/model-{k}", score=float(rng.random() < skill[k, t]),
                             split=('train', 'train', 'train', 'val', 'test')[i % 5]))
    return pd.DataFrame(rows)

def test_one_thread_and_two_write_the_same_tables(tmp_path):
    f = tmp_path/'o.csv'; table().to_csv(f, index=False)
    outs = []
    for threads, cache in ((1, 'cold'), (2, 'warm')):
        env = {**os.environ, 'OMP_NUM_THREADS': str(threads), 'MKL_NUM_THREADS': str(threads),
               'OPENBLAS_NUM_THREADS': str(threads), 'LLMROUTE_CACHE_DIR': str(tmp_path/f'cache{threads}'), 'HF_HUB_OFFLINE': '1'}
        out = tmp_path/f'out{threads}'
        subprocess.run([sys.executable, '-c', SCRIPT, str(f), str(out), str(threads), cache], env=env, check=True, timeout=600)
        outs.append(out)
    names = sorted(p.name for p in outs[0].glob('*.csv'))
    assert 'results.csv' in names and 'routing_shares.csv' in names
    for name in names + ['study.json']:
        assert (outs[0]/name).read_bytes() == (outs[1]/name).read_bytes(), name
    # the mechanism itself: every question's cached vector is the same bits in both caches (with the float32
    # encoder, exact=False, about a quarter of GSM8K's questions differ in their last bits between the two)
    def vectors(cache):
        out = {}
        for f in sorted((cache/'embeddings').rglob('*.npz')):
            with np.load(f) as z: out.update(zip(z['keys'].tolist(), z['emb']))
        return out
    a, b = vectors(tmp_path/'cache1'), vectors(tmp_path/'cache2')
    assert len(a) == 240 and set(a) == set(b)
    assert all((a[k] == b[k]).all() for k in a), sum(not (a[k] == b[k]).all() for k in a)
