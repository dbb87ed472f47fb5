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


def _close_configs(seed, m=40, n=120):
    "m configurations that each differ from a reference on a few queries, cheaper the more they differ"
    rng = np.random.default_rng(seed)
    ref = (rng.random(n) < .7).astype(float)
    ok = np.repeat(ref[None], m, 0)
    for j in range(1, m):
        flip = rng.random(n) < j / (3 * m)
        ok[j, flip] = rng.random(flip.sum()) < .6
    cost = np.tile(np.linspace(1, .2, m)[:, None], (1, n))
    return ok, cost, ref


def test_confident_choice_invariances():
    "Scaling every cost or reordering the configurations chooses the same one; a higher level never a cheaper one"
    from llmroute.costs import confident_choice
    for seed in range(5):
        ok, cost, ref = _close_configs(seed)
        j, t = confident_choice(ok, cost, ref, tol=1.0)
        assert confident_choice(ok, cost * 37.5, ref, tol=1.0)[0] == j
        perm = np.random.default_rng(seed).permutation(len(ok))
        assert perm[confident_choice(ok[perm], cost[perm], ref, tol=1.0)[0]] == j
        assert t.mean_cost[confident_choice(ok, cost, ref, tol=1.0, level=.99)[0]] >= t.mean_cost[j]
        assert t.gap_lcb[j] >= -1.0 and (t.gap_lcb[t.mean_cost < t.mean_cost[j]] < -1.0).all()


def test_confident_choice_holds_out_of_sample_more_often_than_the_point_rule():
    "On fresh draws, the confident choice is below the reference by more than tol less often than the point rule's"
    from llmroute.costs import confident_choice
    rng = np.random.default_rng(0); m, n = 30, 100
    p_ref, p = .8, np.linspace(.8, .7, m)                    # true accuracies: config 0 is the reference's twin
    cost = np.tile(np.linspace(1, .1, m)[:, None], (1, n))
    miss = dict(point=0, conf=0)
    for _ in range(40):
        ref = (rng.random(n) < p_ref).astype(float)
        ok = np.where(rng.random((m, n)) < .5, ref, (rng.random((m, n)) < (2 * p - p_ref)[:, None]).astype(float))
        ok[0] = ref
        point = max(j for j in range(m) if ok[j].mean() >= ref.mean())            # the cheapest reaching the bar
        conf = confident_choice(ok, cost, ref, tol=0.5, n_boot=400)[0]
        miss['point'] += p[point] < p_ref - .005; miss['conf'] += p[conf] < p_ref - .005
    assert miss['conf'] < miss['point']


def test_cost_quality_table_saving_at_tolerance():
    "cost_save_tol_pct reads the cheapest test point within save_tol of the best single: by hand"
    from llmroute.costs import cost_quality_table
    from llmroute.evaluation import method
    C = np.array([[1, 1]] * 8 + [[0, 1]] * 2)            # cheap right on 8 of 10, dear on all
    M = {m: ('single', method(C, np.full(10, k), cost=[1., 10.])) for k, m in enumerate(['cheap', 'dear'])}
    sw = pd.DataFrame(dict(router='r', rule='utility', param=[0., 1.], val_accuracy=[100., 90.], val_cost=[10., 1.],
                           test_accuracy=[100., 90.], test_cost=[10., 1.9]))
    t = cost_quality_table(M, 'dear', ['cheap', 'dear'], C, sw, save_tol=10.).set_index('method')
    assert t.loc['r/cost-utility', 'cost_save_pct'] == 0.0 and t.loc['r/cost-utility', 'cost_save_tol_pct'] == 81.0


def test_confident_choice_equal_costs_in_any_unit():
    "Two configurations of equal mean cost (0.1 + 0.2 against 0.3): the more accurate, whatever the unit of price"
    from llmroute.costs import confident_choice
    ok, c = np.array([[1, 1, 0, 1], [1, 1, 1, 1]]), np.array([[.3, 0, 0, 0], [.1, .2, 0, 0]])
    assert [confident_choice(ok, c * f, np.ones(4), tol=100)[0] for f in (1, 1e-3, 7.)] == [1, 1, 1]
