"""Router benchmark: fit time of each router on the RouterDC GSM8K training split (1,000 questions, 7 models),
and routing overhead per query (features + decision, batched, CPU) against the fastest LLM's 0.7 s per query
in the paper (gemma-7b-it on GSM8K). Run: `python bench/bench_routers.py [--out results.json] [--transformer]`.
Needs the data folder (`$LLMROUTE_DATA_DIR`, laid out like shared/data) with routerdc/gsm8k-{train,test}.json."""
from __future__ import annotations
import argparse, json, os, platform, sys, time, warnings
from pathlib import Path
import numpy as np, pandas as pd

FASTEST_LLM_S = 0.7  # paper, GSM8K: gemma-7b-it seconds per query

def load(split):
    from llmroute.core import data_dir
    f = data_dir(required=True)/'routerdc'/f'gsm8k-{split}.json'
    rows = json.loads(f.read_text())
    return [r['question'] for r in rows], pd.DataFrame([r['scores'] for r in rows])

def timed(fn, repeat=1):
    best = float('inf')
    for _ in range(repeat):
        t0 = time.perf_counter(); out = fn(); best = min(best, time.perf_counter() - t0)
    return out, best

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--out', help='also write the results as JSON here')
    ap.add_argument('--transformer', action='store_true', help='also fine-tune a TransformerRouter (MiniLM, 1 epoch; slow on CPU)')
    ap.add_argument('--repeat', type=int, default=3, help='routing timings: best of this many runs')
    ap.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch\'s own choice)')
    a = ap.parse_args(argv)
    warnings.filterwarnings('ignore')
    import torch
    if a.threads: torch.set_num_threads(a.threads)
    from llmroute.features import EmbeddingFeaturizer, TfidfFeaturizer
    from llmroute.routers import (BestSingleRouter, ClassifierRouter, ClusterRouter, KNNRouter, SoftLabelRouter,
                                  TransformerRouter, correct_labels)
    q_tr, Y_tr = load('train'); q_te, Y_te = load('test')
    C_te = correct_labels(Y_te)
    ef = EmbeddingFeaturizer(cache=False)          # cold: every query embedded, as for a new query in production
    ef.transform(q_te[:8])                         # load the encoder outside the timings
    tf = TfidfFeaturizer()
    E_tr, t_emb_tr = timed(lambda: ef.transform(q_tr))
    E_te, t_emb_te = timed(lambda: ef.transform(q_te))
    T_tr, t_tf_fit = timed(lambda: tf.fit_transform(q_tr))
    T_te, t_tf_te = timed(lambda: tf.transform(q_te), a.repeat)
    feats = {'emb': (E_tr, E_te, t_emb_te), 'tfidf': (T_tr, T_te, t_tf_te)}
    routers = {
        'best single': (BestSingleRouter(), 'emb'),
        'classifier multilabel logreg': (ClassifierRouter('multilabel', 'logreg'), 'emb'),
        'classifier separate logreg': (ClassifierRouter('separate', 'logreg'), 'emb'),
        'classifier multilabel mlp': (ClassifierRouter('multilabel', 'mlp'), 'emb'),
        'classifier separate mlp': (ClassifierRouter('separate', 'mlp'), 'emb'),
        'cluster (K swept)': (ClusterRouter(), 'emb'),
        'cluster paper K=50 TH=0.99 (tfidf)': (ClusterRouter(50, th=0.99), 'tfidf'),
        'knn (k swept)': (KNNRouter(), 'emb'),
        'soft-label ridge': (SoftLabelRouter('ridge'), 'emb'),
        'soft-label logistic': (SoftLabelRouter('logistic'), 'emb'),
        'classifier logreg (tfidf)': (ClassifierRouter('multilabel', 'logreg'), 'tfidf'),
    }
    n = len(q_te); rows = []
    for name, (r, f) in routers.items():
        Xtr, Xte, t_feat = feats[f]
        _, t_fit = timed(lambda: r.fit(Xtr, Y_tr))
        ch, t_route = timed(lambda: r.route(Xte), a.repeat)
        per_q = (t_feat + t_route)/n
        rows.append(dict(router=name, features=f, fit_s=t_fit, feature_ms_per_q=1e3*t_feat/n, decision_ms_per_q=1e3*t_route/n,
                         overhead_ms_per_q=1e3*per_q, ratio_to_fastest_llm=per_q/FASTEST_LLM_S,
                         test_acc=float(C_te[np.arange(n), ch].mean())))
        print(f"{name:38s} fit {t_fit:7.2f} s   overhead {1e3*per_q:6.2f} ms/query   ({100*per_q/FASTEST_LLM_S:.2f}% of 0.7 s)", flush=True)
    if a.transformer:
        from llmroute.features import default_embedding_model
        from llmroute.recipe import FINETUNE          # the default study's fine-tune (finetuned-minilm)
        tr = TransformerRouter(default_embedding_model(), device='cpu', **FINETUNE)
        _, t_fit = timed(lambda: tr.fit(q_tr, Y_tr))
        ch, t_route = timed(lambda: tr.route(q_te))
        per_q = t_route/n
        rows.append(dict(router='transformer MiniLM (the study fine-tune)', features='text', fit_s=t_fit, feature_ms_per_q=0.0,
                         decision_ms_per_q=1e3*per_q, overhead_ms_per_q=1e3*per_q, ratio_to_fastest_llm=per_q/FASTEST_LLM_S,
                         test_acc=float(C_te[np.arange(n), ch].mean())))
        print(f"{'transformer MiniLM (the study fine-tune)':38s} fit {t_fit:7.2f} s   overhead {1e3*per_q:6.2f} ms/query", flush=True)
    df = pd.DataFrame(rows).set_index('router')
    env = dict(machine=platform.machine(), cpus=os.cpu_count(), torch_threads=torch.get_num_threads(),
               omp_num_threads=os.environ.get('OMP_NUM_THREADS'), python=platform.python_version(),
               load_avg=os.getloadavg() if hasattr(os, 'getloadavg') else None)
    print(f"\nRouterDC GSM8K: fit on train ({len(q_tr)} questions, {Y_tr.shape[1]} models), routed test ({n}).")
    print(f"Featurization: embeddings {1e3*t_emb_tr/len(q_tr):.2f} ms/q (train, batched), {1e3*t_emb_te/n:.2f} ms/q (test); "
          f"TF-IDF fit {t_tf_fit:.2f} s, {1e3*t_tf_te/n:.3f} ms/q")
    print(f"Environment: {env}")
    with pd.option_context('display.width', 200, 'display.max_columns', 20):
        print(df.round(4).to_string())
    worst = df.ratio_to_fastest_llm.max()
    print(f"\nWorst routing overhead: {df.overhead_ms_per_q.max():.2f} ms/query = {worst:.4f} x the fastest LLM's 0.7 s "
          f"({100*worst:.2f}%)")
    if a.out:
        from llmroute.core import write_json
        write_json(a.out, dict(env=env, fastest_llm_s=FASTEST_LLM_S, results=df.reset_index().to_dict('records')))
    return df

if __name__ == '__main__': main()
