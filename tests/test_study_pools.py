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
    # known ends: one model is the best single model on the scored queries; all of them is the oracle
    r = pd.read_csv(out/'results.csv').set_index('method')
    assert so.accuracy.iloc[0] == pytest.approx(r.loc[models, 'accuracy'].max(), abs=1e-3)
    assert so.accuracy.iloc[-1] == pytest.approx(r.loc['oracle', 'accuracy'], abs=1e-3)

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

def test_figures_stay_readable_on_large_pools(big, tmp_path):
    "A pool of 60 models, no split, three categories: the whole study runs, and its figures do not grow with the pool"
    import matplotlib.image as mpimg
    df, models = pool_frame(K=60, n=300, tasks=True)
    df = df.drop(columns='split').assign(task=lambda d: d.query_id.str[-1].map(lambda c: f"cat{int(c) % 3}"))
    df.to_parquet(tmp_path/'p60.parquet')
    res = run_study(tmp_path/'p60.parquet', 'pool60', tmp_path/'o', n_boot=100, n_clusters=8)
    assert set(models) <= set(res.method) and {'auto', 'auto-cost', 'task-oracle'} <= set(res.method)
    h = lambda d, n, f: mpimg.imread(d/f'{n}-{f}.png').shape[0]
    out32 = big[0]
    # 32 and 60 models: the models figure shows the 30 best (and the best of val) either way, so the same height
    assert abs(h(tmp_path/'o', 'pool60', 'models') - h(out32, 'pool32', 'models')) <= 50
    # the routing shares: as many rows as methods, whatever the pool size (models beyond ten are 'others')
    assert h(tmp_path/'o', 'pool60', 'routing_shares') == h(out32, 'pool32', 'routing_shares')
    labels = short_names(models)
    assert len(set(labels)) == 60 and max(map(len, labels)) <= 18

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
    # the oracle's APGR by hand: its curve climbs from the weak model's accuracy by the share only the strong model
    # solves (o), then stays flat, so APGR = o (1 - o/2) / (strong - weak); computed on the scored test queries
    info = json.loads((tmp_path/'o'/'study.json').read_text())
    t = df[df.split == 'test'].pivot(index='query_id', columns='model', values='score') >= 0.5
    s_, w_ = info['best_single_on_val'], [m for m in models if m != info['best_single_on_val']][0]
    o = (t[s_] & ~t[w_]).mean()
    assert cq.loc['oracle', 'apgr'] == pytest.approx(o * (1 - o / 2) / (t[s_].mean() - t[w_].mean()), abs=1e-4)
