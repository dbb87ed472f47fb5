"Routers from the installed package: every router routes the constructed two-cluster pool and survives save/load"
from pathlib import Path
import numpy as np, pytest
from llmroute.routers import (BestSingleRouter, ClassifierRouter, ClusterRouter, KNNRouter, SoftLabelRouter,
                              Router, correct_labels, load_router, two_cluster_pool)

ROUTERS = [lambda: ClassifierRouter('multilabel', 'logreg'), lambda: ClassifierRouter('separate', 'mlp'),
           lambda: ClassifierRouter('multilabel', 'mlp', policy='safe'), lambda: ClusterRouter([1, 2, 4]),
           lambda: KNNRouter([5, 20]), lambda: SoftLabelRouter('ridge'), lambda: SoftLabelRouter('logistic', policy='select_random')]

@pytest.mark.parametrize('make', ROUTERS)
def test_route_and_roundtrip(make, tmp_path):
    Xa, Ya, _ = two_cluster_pool(200, seed=0)
    Xb, Yb, _ = two_cluster_pool(200, seed=1)
    r = make().fit(Xa, Ya, latency=[1., 2., 3.])
    ch = r.route(Xb)
    assert correct_labels(Yb)[np.arange(200), ch].mean() >= 0.95
    r2 = load_router(r.save(tmp_path/'r'))
    assert type(r2) is type(r)
    np.testing.assert_array_equal(r2.predict_proba(Xb), r.predict_proba(Xb))
    np.testing.assert_array_equal(r2.route(Xb), ch)

def test_best_single_is_not_enough():
    Xa, Ya, _ = two_cluster_pool(200, seed=0)
    Xb, Yb, _ = two_cluster_pool(200, seed=1)
    ch = BestSingleRouter().fit(Xa, Ya).route(Xb)
    assert correct_labels(Yb)[np.arange(200), ch].mean() < 0.6


def test_policies_are_reexported():
    "The policies live in llmroute.policies; llmroute.routers still offers every name"
    import llmroute.policies as P, llmroute.routers as R
    for n in ['Policy', 'ConfArgMax', 'SelectRandom', 'Prediction', 'SortedPrediction', 'Utility', 'Safe', 'safe_choice',
              'tune_margin', 'margin_accuracy', 'make_policy', 'POLICIES', 'cv_safe_choices', 'cv_folds']:
        assert getattr(R, n) is getattr(P, n), n
    assert R.Prediction().rule == 'paper'     # P3 as the paper's code applies it

def test_cached_router_fits_once(tmp_path, monkeypatch):
    "A second fit on the same content loads the first; other content trains again"
    from llmroute.routers import CachedRouter
    monkeypatch.setenv('LLMROUTE_CACHE_DIR', str(tmp_path))
    Xa, Ya, _ = two_cluster_pool(200, seed=0)
    Xb, _, _ = two_cluster_pool(50, seed=1)
    a = CachedRouter(KNNRouter(5)).fit(Xa, Ya); Pa = a.predict_proba(Xb)
    b = CachedRouter(KNNRouter(5)).fit(Xa, Ya)
    assert not a.loaded_ and b.loaded_ and a.key_ == b.key_
    np.testing.assert_array_equal(b.predict_proba(Xb), Pa)
    assert not CachedRouter(KNNRouter(5)).fit(Xa[:150], Ya[:150]).loaded_
