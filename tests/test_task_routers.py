"The task router through the recipe: `fit_router` hands it the table's tasks, and without a task column it clusters"
import numpy as np, pandas as pd
from llmroute.outcomes import OutcomeTable
from llmroute.recipe import featurize, fit_router, make_featurizer, split_arrays
from llmroute.task_routers import TaskRouter, task_pool

WORDS = {'task0': 'solve the equation for x', 'task1': 'translate this sentence into french',
         'task2': 'write a python function'}

def pool_table(task_column=True, seed=0):
    "A long outcomes table of `task_pool`: each question names its task's words; train/val/test from three draws"
    rows = []
    for split, s in (('train', seed), ('val', seed + 1), ('test', seed + 2)):
        _, Y, task = task_pool(seed=s)
        for i, (y, t) in enumerate(zip(Y, task)):
            q = f"{WORDS[t]} number {s}-{i}"
            for k in range(Y.shape[1]):
                rows.append(dict(query_id=f"{split}-{i}", question=q, model=f"model{k}", score=float(y[k]), split=split,
                                 **({'task': t} if task_column else {})))
    return OutcomeTable(pd.DataFrame(rows))

def routed(ot, router):
    arrays = split_arrays(ot)
    X = featurize(make_featurizer('tfidf'), arrays)
    r = fit_router(router, X, arrays, models=ot.models)
    C = arrays['test']['C']
    return r, C[np.arange(len(C)), r.route(X['test'])].mean(), arrays

def test_fit_router_passes_tasks():
    ot = pool_table()
    r, acc, arrays = routed(ot, TaskRouter())
    assert r.classes_ == ['task0', 'task1', 'task2']          # the table's tasks, not clusters
    assert (r.tasks(featurize(make_featurizer('tfidf'), arrays)['test']) == arrays['test']['task']).all()
    assert acc > 0.7

def test_no_task_column_clusters():
    ot = pool_table(task_column=False)
    assert split_arrays(ot)['train']['task'] is None
    r, acc, _ = routed(ot, TaskRouter(n_clusters=(3, 6)))
    assert acc > 0.7                                           # the clusters find the tasks: near the task-oracle's 80%
