"The `llmroute` command as a user runs it: a study from an outcomes file, and bad input ending in one line and exit 2."
import subprocess, sys
from pathlib import Path
import pandas as pd
from test_study import outcomes_frame

EXE = str(Path(sys.executable).parent/'llmroute')

def run(*args):
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, timeout=600)

def test_study_command(tmp_path):
    f = tmp_path/'toy.csv'; outcomes_frame().to_csv(f, index=False)
    r = run('study', '--outcomes', f, '--out', tmp_path/'out', '--n-boot', 100)
    assert r.returncode == 0, r.stderr[-2000:]
    res = pd.read_csv(tmp_path/'out'/'results.csv')
    assert {'oracle', 'random', 'auto', 'acme/math-7b'} <= set(res.method)
    assert (tmp_path/'out'/'study-toy.ipynb').exists()          # the executed notebook is kept beside the tables
    assert 'auto chose' in r.stdout and 'oracle' in r.stdout and 'study-toy.ipynb' in r.stdout   # the headline, printed
    assert 'without encryption' not in r.stderr                   # the kernel talks over IPC: no TCP warning
    auto = res.set_index('method').loc['auto']
    assert auto.accuracy > res[res.family == 'single'].accuracy.max()   # the toy pool is learnable

def test_bad_outcomes_end_with_the_validation_error(tmp_path):
    df = outcomes_frame(); df.loc[5, 'score'] = 1.5
    f = tmp_path/'bad.csv'; df.to_csv(f, index=False)
    r = run('study', '--outcomes', f, '--out', tmp_path/'out')
    assert r.returncode == 2
    assert r.stderr.startswith('llmroute study: error:') and "row 5: field 'score'" in r.stderr and 'Traceback' not in r.stderr
    assert not (tmp_path/'out'/'results.csv').exists()
