"""Serving benchmark: the router's own cost per request (features + decision, one question at a time, the backend
excluded), p50 and p99 in ms, for each featurizer (TF-IDF, MiniLM embeddings, static embeddings distilled from
MiniLM with model2vec), as a share of the paper's fastest LLM (0.7 s per GSM8K query, gemma-7b-it); the goal is at
most 0.5% of it, 3.5 ms. Then what each featurizer costs in routing accuracy on the real RouterDC outcomes of GSM8K
and MMLU (`llmroute.serve.featurizer_accuracy`, the table 12_serve shows).
Run: `python bench/bench_serve.py [--n 300] [--out results.json] [--no-accuracy]`.
Needs the data folder (`$LLMROUTE_DATA_DIR`, laid out like shared/data) with routerdc/."""
from __future__ import annotations
import argparse, os, platform, time, warnings
import numpy as np, pandas as pd

FASTEST_LLM_S = 0.7   # the paper's fastest LLM, seconds per GSM8K query
GOAL_SHARE = 0.005    # routing should cost at most 0.5% of it (3.5 ms)

def routerdc(ds):
    from llmroute.core import data_dir
    from llmroute.outcomes import import_routerdc
    from llmroute.study import ROUTERDC_FILES
    rdc = data_dir(required=True)/'routerdc'
    return import_routerdc([rdc/f for f in ROUTERDC_FILES[ds]])

def per_request_ms(sr, questions, warmup=10):
    "ms of `sr.route([q])` for each question: one request's features and decision"
    for q in questions[:warmup]: sr.route([q])
    out = []
    for q in questions:
        t0 = time.perf_counter(); sr.route([q]); out.append(1e3*(time.perf_counter() - t0))
    return np.array(out)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--n', type=int, default=300, help='single-question requests timed per featurizer')
    ap.add_argument('--routers', nargs='+', default=None, help="router names (default: knn and the study's classifier)")
    ap.add_argument('--no-accuracy', action='store_true', help='skip the accuracy table (MiniLM on all of MMLU: minutes the first time)')
    ap.add_argument('--out', help='also write the results as JSON here')
    a = ap.parse_args(argv)
    warnings.filterwarnings('ignore')
    from llmroute.serve import FEATURES, train_router, featurizer_accuracy
    if a.routers is None:
        from llmroute.study import default_routers
        a.routers = ['knn'] + [r for r in list(default_routers())[:1] if r != 'knn']   # the study's first router: its classifier
    gsm = routerdc('gsm8k')
    qs = gsm.questions('test').tolist()[:a.n]
    rows = []
    for f in FEATURES:
        for rn in a.routers:
            t0 = time.perf_counter()
            sr = train_router(gsm, None, rn, f, 'safe', val_from='test')
            fit_s = time.perf_counter() - t0
            ms = per_request_ms(sr, qs)
            p50, p99 = np.percentile(ms, 50), np.percentile(ms, 99)
            rows.append(dict(features=f, router=f"{rn}/safe", p50_ms=p50, p99_ms=p99, mean_ms=ms.mean(),
                             p50_share_pct=100*p50/1e3/FASTEST_LLM_S, p99_share_pct=100*p99/1e3/FASTEST_LLM_S,
                             meets_goal_p50=bool(p50 <= 1e3*GOAL_SHARE*FASTEST_LLM_S), train_s=fit_s))
            print(f"{f:10s} {rn+'/safe':16s} p50 {p50:7.3f} ms  p99 {p99:7.3f} ms  = {100*p50/1e3/FASTEST_LLM_S:.3f}% / "
                  f"{100*p99/1e3/FASTEST_LLM_S:.3f}% of 0.7 s", flush=True)
    df = pd.DataFrame(rows)
    env = dict(machine=platform.machine(), cpus=os.cpu_count(), omp_num_threads=os.environ.get('OMP_NUM_THREADS'),
               python=platform.python_version(), load_avg=os.getloadavg() if hasattr(os, 'getloadavg') else None)
    print(f"\nRouter cost per request on RouterDC GSM8K test questions ({len(qs)} requests of one question each; "
          f"routers fitted on train, policy tuned on val); goal: p50 <= {1e3*GOAL_SHARE*FASTEST_LLM_S:.1f} ms "
          f"({100*GOAL_SHARE:.1f}% of the fastest LLM's {FASTEST_LLM_S} s)")
    print(f"Environment: {env}")
    with pd.option_context('display.width', 200, 'display.max_columns', 20):
        print(df.round(3).to_string(index=False))
    acc = None
    if not a.no_accuracy:
        t0 = time.perf_counter()
        acc = featurizer_accuracy({'gsm8k': gsm, 'mmlu': routerdc('mmlu')}, routers=a.routers)
        wide = acc.pivot_table(index=['dataset', 'router'], columns='features', values='accuracy')[list(FEATURES)].join(
            acc.groupby(['dataset', 'router'])[['best_single', 'oracle']].first())
        print(f"\nTest accuracy (%) by featurizer (safe policy and plain argmax P1; validation from test, as make study; {time.perf_counter() - t0:.0f} s):")
        print(wide.to_string())
    if a.out:
        from llmroute.core import write_json
        write_json(a.out, dict(env=env, fastest_llm_s=FASTEST_LLM_S, overhead=df.to_dict('records'),
                               accuracy=None if acc is None else acc.to_dict('records')))
    return df, acc

if __name__ == '__main__': main()
