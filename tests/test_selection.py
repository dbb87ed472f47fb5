"Checks of llmroute.selection as a library (nbs/08b_selection.ipynb holds the worked examples and most tests)"
import numpy as np, pytest
from llmroute.selection import close_pool, max_t_bar, select_auto, selection_loss


def test_choice_invariant_to_model_order():
    "Reordering the pool's models (columns of C and of every prediction) changes neither the choice nor the bar"
    for seed in (1, 4, 9):
        C, P, sl = close_pool(seed, n_test=10)
        Cv, Pv = C[sl['val']], {k: v[sl['val']] for k, v in P.items()}
        perm = np.random.default_rng(seed).permutation(C.shape[1])
        a, ta = select_auto(Pv, Cv)
        b, tb = select_auto({k: v[:, perm] for k, v in Pv.items()}, Cv[:, perm])
        assert a == b
        assert ta.drop(columns='candidate').equals(tb.drop(columns='candidate'))


def test_bar_grows_with_independent_candidates_not_with_copies():
    rng = np.random.default_rng(0)
    D = rng.choice([-1., 0., 1.], size=(3000, 20), p=[.25, .5, .25])
    bars = [max_t_bar(D[:, :m]) for m in (1, 5, 20)]
    assert bars[0] < bars[1] < bars[2]
    assert max_t_bar(np.repeat(D[:, :1], 20, 1)) == pytest.approx(bars[0])


def test_new_selection_never_a_point_below_where_old_was():
    "The pool of close candidates: over seeds where the old selection lost more than a point, the new one does not"
    worst_old, worst_new = 0., 0.
    for seed in range(8):
        pool = close_pool(seed)
        worst_old = min(worst_old, selection_loss(*pool, against='cv', level=None)[1])
        worst_new = min(worst_new, selection_loss(*pool)[1])
    assert worst_old < -1 <= worst_new


def test_max_t_bar_keeps_a_noisy_winner_out():
    "Seven models, 600 validation queries (seed 25): without the max-t bar a router that loses 1.25 points wins"
    pool = close_pool(25, n_base=7, n_dup=1, spread=0.08, n_val=600)
    ch, loss = selection_loss(*pool, level=None)
    assert ch == 'task-s0' and loss < -1
    assert selection_loss(*pool) == ('best single', 0.0)
