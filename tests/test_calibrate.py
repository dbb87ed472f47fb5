"`llmroute calibrate` end to end on a small seeded pool: the router folder routes as the calibration's estimate says"
import json
from pathlib import Path
import numpy as np, pandas as pd, pytest
from llmroute.core import InputError
from llmroute.calibrate import calibrate, calibration_data

TOPICS = ['algebra', 'poetry', 'history', 'chemistry']


def _pool(seed=0, n=400):
    "cheap is right on algebra and poetry questions, dear on nearly all; each call has its price, dear's 10 x cheap's"
    rng = np.random.default_rng(seed); rows = []
    for i in range(n):
        t = TOPICS[i % 4]; q = f"question {i} about {t} {' '.join(rng.choice(TOPICS, 2))}"
        easy, size = t in ('algebra', 'poetry'), rng.uniform(.5, 1.5)     # the price of a call grows with its length
        qid = f'id{(i * 7919) % 1000:04d}'    # ids in another order than the questions' texts
        rows += [dict(query_id=qid, question=q, model='cheap', score=float(easy or rng.random() < .2), cost=.1 * size),
                 dict(query_id=qid, question=q, model='dear', score=float(rng.random() < .95), cost=size)]
    return pd.DataFrame(rows)


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    from llmroute.router_folder import train_router
    d = tmp_path_factory.mktemp('cal')
    _pool(0).to_csv(d/'train.csv', index=False)
    mine = _pool(1, 300); mine.to_csv(d/'mine.csv', index=False)
    log = d/'traffic.jsonl'
    rec = lambda r: dict(question=r.question, model=r.model, correct=bool(r.score), cost=r.cost)
    log.write_text(''.join(json.dumps(rec(r)) + '\n' for r in mine.itertuples()))
    train_router(d/'train.csv', d/'router', router='knn', features='tfidf')
    return d


def test_calibrated_router_routes_as_estimated(folder):
    from llmroute.router_folder import SavedRouter
    cal = calibrate(folder/'router', outcomes=folder/'mine.csv', within=1.0)
    assert cal['rank'][0] == 'dear' and cal['rule'] != 'single' and cal['estimate']['saving_pct'] > 20
    saved = SavedRouter.load(folder/'router')
    data = calibration_data(saved.models, outcomes=folder/'mine.csv')
    ch = saved.predict(data['texts'])[0]; i = np.arange(len(ch))
    assert 100 * data['C'][i, ch].mean() == pytest.approx(cal['estimate']['accuracy'], abs=1e-4)
    assert data['cost'][i, ch].mean() == pytest.approx(cal['estimate']['mean_cost'], abs=1e-6)
    assert 'calibration.md' in json.loads((folder/'router'/'llmroute.json').read_text())['files']


def test_log_and_outcomes_agree(folder):
    a = calibrate(folder/'router', outcomes=folder/'mine.csv', within=0.5, overwrite=True)
    b = calibrate(folder/'router', log=folder/'traffic.jsonl', within=0.5, overwrite=True)
    assert (a['rule'], a['n']) == (b['rule'], b['n']) and a['param'] == pytest.approx(b['param'], rel=1e-12)
    flat = lambda e: np.hstack([np.ravel(v) for _, v in sorted(e.items())])   # prices from CSV and JSON: 1e-16 apart
    assert flat(a['estimate']) == pytest.approx(flat(b['estimate']), abs=1e-9)
    assert b['source'] == 'traffic.jsonl'


def test_bad_input_names_it_and_keeps_the_calibration(folder):
    calibrate(folder/'router', outcomes=folder/'mine.csv', within=0.5, overwrite=True)
    before = (folder/'router'/'calibration.json').read_text()
    with pytest.raises(FileExistsError, match='already holds a calibration'):
        calibrate(folder/'router', outcomes=folder/'mine.csv', within=0.5)
    bad = folder/'bad.jsonl'
    bad.write_text(json.dumps(dict(question='q', model='cheap', correct=1, cost=1)) + '\n'
                   + '{"question": "q", "model": "dear"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl.*missing \['correct', 'cost'\].*line 2"):
        calibrate(folder/'router', log=bad, within=0.5, overwrite=True)
    only = folder/'only_cheap.jsonl'
    only.write_text(json.dumps(dict(question='q', model='cheap', correct=1, cost=1)) + '\n')
    with pytest.raises(InputError, match=r"only_cheap.jsonl.*model\(s\) \['dear'\]"):
        calibrate(folder/'router', log=only, within=0.5, overwrite=True)
    assert (folder/'router'/'calibration.json').read_text() == before


def test_cli_command(folder, capsys):
    import argparse
    from llmroute.calibrate import add_calibrate_command
    ap = argparse.ArgumentParser(prog='llmroute'); add_calibrate_command(ap.add_subparsers(dest='cmd'))
    a = ap.parse_args(['calibrate', str(folder/'router'), '--log', str(folder/'traffic.jsonl'), '--budget', '0.5',
                       '--level', '0.8', '--overwrite'])
    assert a.func(a) is None and 'against dear' in capsys.readouterr().out
    cal = json.loads((folder/'router'/'calibration.json').read_text())
    assert cal['target'] == dict(within=None, budget=0.5, level=0.8) and cal['estimate']['cost_ci'][1] <= 0.5
