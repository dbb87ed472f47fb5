"Checks of llmroute.costs as a library (the notebook nbs/08a_costs.ipynb holds the worked examples and most tests)"
import os
from pathlib import Path
import numpy as np, pandas as pd, pytest
from llmroute.costs import (aiq, apgr, auto_cost, cost_quality, cost_save_pct, cost_sweep, greedy_subsets, nondecreasing_hull,
                            pool_subsets, short_names, single_rows, strong_share_curve)
from llmroute.evaluation import subset_oracles


def test_hull_is_concave_nondecreasing_and_above_points():
    rng = np.random.default_rng(0)
    for _ in range(50):
        x, y = rng.uniform(0, 10, 12), rng.uniform(0, 100, 12)
        h = nondecreasing_hull(x, y)
        assert (np.diff(h[:, 0]) > 0).all() and (np.diff(h[:, 1]) >= 0).all()
        slopes = np.diff(h[:, 1]) / np.diff(h[:, 0])
        assert (np.diff(slopes) <= 1e-9).all()                      # concave
        inside = (x >= h[0, 0]) & (x <= h[-1, 0])
        assert (np.interp(x[inside], h[:, 0], h[:, 1]) >= y[inside] - 1e-9).all()
        assert h[-1, 1] == y.max()
        assert min(y) <= aiq(x, y) <= max(y)


def test_cost_save_hull_never_below_observed():
    rng = np.random.default_rng(1)
    for _ in range(50):
        x, y = rng.uniform(0.1, 10, 8), rng.uniform(40, 90, 8)
        obs, hul = cost_save_pct(x, y, 70, 10), cost_save_pct(x, y, 70, 10, hull=True)
        assert np.isnan(obs) == np.isnan(hul)
        if not np.isnan(obs): assert hul >= obs - 1e-9


def test_greedy_against_exact_on_small_pools():
    rng = np.random.default_rng(2)
    for K in (3, 5, 7):
        C = (rng.random((200, K)) < rng.uniform(.2, .8, K)).astype(int)
        models = [f"m{k}" for k in range(K)]
        g, e = greedy_subsets(C, models), subset_oracles(C, models)
        best = e.groupby('size').accuracy.max()
        assert (g.set_index('size').accuracy <= best + 1e-12).all()
        assert g.accuracy.iloc[0] == best[1] and g.accuracy.iloc[-1] == best[K]
        assert list(g.columns) == list(e.columns) + ['method']
    assert pool_subsets((rng.random((50, 13)) < .5).astype(int), [f"m{k}" for k in range(13)]).method.unique().tolist() == ['greedy']


def test_random_router_apgr_half():
    rng = np.random.default_rng(3)
    C = (rng.random((30000, 2)) < [0.5, 0.8]).astype(int)
    cur = strong_share_curve(rng.random(30000), C, strong=1)
    assert abs(apgr(cur.strong_pct, cur.accuracy, 100 * C[:, 0].mean(), 100 * C[:, 1].mean()) - 0.5) < 0.02


def test_auto_cost_reads_validation_only():
    rng = np.random.default_rng(4); n, K = 300, 4
    C = (rng.random((n, K)) < [.5, .6, .7, .8]).astype(int); cost = np.array([1., 2., 4., 8.])
    P = np.clip(C + rng.normal(0, .6, C.shape), 0, 1)
    sw = pd.concat([single_rows(C[:150], C[150:], list('abcd'), cost, cost),
                    cost_sweep(P[:150], C[:150], P[150:], C[150:], cost, cost, router='r')], ignore_index=True)
    a = auto_cost(sw)
    for seed in range(5):
        s2 = sw.copy(); r = np.random.default_rng(seed)
        for c in [c for c in s2 if c.startswith('test_')]: s2[c] = r.permutation(s2[c].values)
        assert auto_cost(s2)[['router', 'rule', 'param']].tolist() == a[['router', 'rule', 'param']].tolist()
    assert a.val_accuracy >= sw[sw.rule == 'single'].val_accuracy.max() - 1e-9


def test_short_names_unique_short_deterministic():
    rng = np.random.default_rng(5)
    orgs = ['meta-llama', 'mistralai', 'google', 'Qwen']
    names = sorted({f"{rng.choice(orgs)}/{rng.choice(['Llama', 'Mistral', 'gemma', 'Qwen2'])}-{rng.integers(1, 80)}b-"
                    f"{rng.choice(['chat', 'instruct', 'hf', 'it-v0.1'])}" for _ in range(150)})
    for L in (10, 14, 18):
        s = short_names(names, max_len=L)
        assert len(set(s)) == len(names) and max(map(len, s)) <= L and s == short_names(names, max_len=L)


def test_cost_quality_routerbench_oracle_and_best():
    from llmroute.core import data_dir
    d = pd.read_csv(data_dir(required=True)/'routerbench'/'winograde_test.csv')   # no data folder: an error naming it
    models = [c[:-11] for c in d.columns if c.endswith('|total_cost')]
    C, cost = d[models].to_numpy(int), d[[m + '|total_cost' for m in models]].to_numpy(float)
    P = np.tile(C[:190].mean(0), (len(C), 1))                         # a router that knows only the mean
    cq = cost_quality({'mean': P[:190]}, {'mean': P[190:]}, C[:190], C[190:], models, cost[:190], cost[190:])
    t = cq['table'].set_index('method')
    # by hand: the oracle pays each test query's cheapest correct model (the cheapest of all where none is right)
    Ct, ct = C[190:] > 0, cost[190:]
    oracle_cost = np.where(Ct.any(1), np.where(Ct, ct, np.inf).min(1), ct.min(1)).mean()
    assert t.loc['oracle', 'mean_cost'] == pytest.approx(oracle_cost, rel=1e-5)
    best_cost = ct[:, models.index(cq['best'])].mean()
    assert t.loc['oracle', 'cost_save_pct'] == pytest.approx(100 * (1 - oracle_cost / best_cost), abs=1e-3)
    assert {'method', 'family', 'accuracy', 'mean_cost', 'aiq', 'cost_save_pct'} <= set(cq['table'].columns)
