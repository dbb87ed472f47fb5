"""The study on pools it has never seen: 32 models with per-query costs and two tasks (the whole study, figures too),
and a two-model pool without cost (RouteLLM's APGR/CPT). Every table is written, readable and complete."""
import json
from pathlib import Path
import numpy as np, pandas as pd, pytest
from llmroute.study import run_study
from llmroute.costs import short_names

K, N = 32, 400

def pool_frame(K=K, n=N, seed=0, cost=True, tasks=True):
    "K models from two families, each better at one kind of question; cheaper models are weaker; two tasks"
    rng = np.random.default_rng(seed)
    models = [f"org{k % 3}/model-{'math' if k % 2 else 'chat'}-{k}b-instruct" for k in range(K)]
    rows = []
    for i in range(n):
        math = i % 2 == 0
        q = (f"Compute {i} plus {3 * i} times {i % 7}, show the steps." if math
             else f"Which dynasty ruled region {i} in the year {1000 + i}?")
        for k, m in enumerate(models):
            good = (k % 2 == 1) == math
            p = (0.35 + 0.5 * k / K) if good else 0.2
            r = dict(query_id=f"q{i:04d}", question=q, model=m, score=float(rng.random() < p),
                     split='test' if i % 5 == 4 else 'train')
            if cost: r['cost'] = 1e-4 * (1 + k) * (1 + 0.1 * (i % 3))
            if tasks: r['task'] = 'math' if math else 'history'
            rows.append(r)
    return pd.DataFrame(rows), models

@pytest.fixture(scope='module')
def big(tmp_path_factory):
    df, models = pool_frame()
    d = tmp_path_factory.mktemp('pool')
    df.to_parquet(d/'pool.parquet')
    res = run_study(d/'pool.parquet', 'pool32', d/'out', n_boot=200, n_clusters=8)
    return d/'out', res, models

def test_every_model_in_every_table(big):
    out, res, models = big
    r = res.set_index('method')
    assert set(models) <= set(r.index) and (r.loc[models, 'family'] == 'single').all()
    assert {'oracle', 'random', 'auto', 'auto-cost', 'task-oracle'} <= set(r.index)
    assert r.loc['auto-cost', 'family'] == 'auto' and r.loc['task-oracle', 'family'] == 'baseline'
    shares = pd.read_csv(out/'routing_shares.csv')
    assert set(shares.model) == set(models)

def test_subsets_greedy_above_twelve(big):
    out, _, models = big
    so = pd.read_csv(out/'subset_oracles.csv')
    assert set(so.method) == {'greedy'} and so['size'].tolist() == list(range(1, K + 1))   # one best subset per size
    acc = so.accuracy.to_numpy()
    assert (np.diff(acc) >= -1e-9).all()                      # a larger best subset never answers fewer queries

def test_cost_quality(big):
    out, res, models = big
    cq = pd.read_csv(out/'cost_quality.csv')
    for c in ['method', 'family', 'accuracy', 'mean_cost', 'aiq', 'cost_save_pct']: assert c in cq
    assert set(models) <= set(cq.method) and 'auto-cost' in set(cq.method)
    info = json.loads((out/'study.json').read_text())
    assert info['cost_basis'] == 'cost'
    auto = cq.set_index('method').loc['auto-cost']
    best = cq.set_index('method').loc[info['best_single_on_val']]
    assert auto.mean_cost <= best.mean_cost + 1e-12          # chosen as the cheapest that reaches best single on val

def test_figures_name_every_model_readably(big):
    out, _, models = big
    for f in ['pool32-models.png', 'pool32-quality_cost.png', 'pool32-routing_shares.png', 'pool32-gains.png']:
        assert (out/f).stat().st_size > 10_000, f
    labels = short_names(models)
    assert len(set(labels)) == K and max(map(len, labels)) <= 18

def test_per_task_table(big):
    out, _, _ = big
    pt = pd.read_csv(out/'per_task.csv')
    assert sorted(pt.task) == ['history', 'math'] and pt.n.sum() == N // 5
    assert {'oracle', 'task-oracle', 'auto'} <= set(pt.columns)

def test_two_models_without_cost_get_apgr(tmp_path):
    df, models = pool_frame(K=2, cost=False, tasks=False)
    df.to_parquet(tmp_path/'two.parquet')
    run_study(tmp_path/'two.parquet', 'two', tmp_path/'o', n_boot=100, n_clusters=4, figures=False)
    cq = pd.read_csv(tmp_path/'o'/'cost_quality.csv').set_index('method')
    assert {'random', 'oracle'} <= set(cq.index)
    assert abs(cq.loc['random', 'apgr'] - 0.5) < 1e-6 and cq.loc['oracle', 'apgr'] > 0.5
