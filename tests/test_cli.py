"The `llmroute` command as a user runs it: a study from an outcomes file, and bad input ending in one line and exit 2."
import json, os, subprocess, sys
from pathlib import Path
import pandas as pd, pytest
from test_study import outcomes_frame

EXE = str(Path(sys.executable).parent/'llmroute')

def run(*args):
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, timeout=600)

def one_line_error(r, command):
    "The command failed on bad input: exit 2, one line on stderr naming the command, no traceback"
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert r.stderr.startswith(f'llmroute {command}: error:') and 'Traceback' not in r.stderr, r.stderr[-2000:]
    assert r.stderr.count('\n') == 1, r.stderr
    return r.stderr

@pytest.fixture
def read_only(tmp_path):
    "A folder that accepts no new file: permission bits for a user; for root (whom they do not stop) sysfs, which refuses files"
    if os.geteuid() == 0:
        yield Path('/sys/llmroute-test'); return
    ro = tmp_path/'ro'; ro.mkdir(); ro.chmod(0o555)
    yield ro
    ro.chmod(0o755)

def plant_study(out, name):
    "A folder holding the files of a finished study called `name`"
    out.mkdir(parents=True, exist_ok=True)
    (out/'study.json').write_text(json.dumps({'name': name}))
    (out/'results.csv').write_text('method,accuracy\noracle,90\n')
    (out/f'study-{name}.ipynb').write_text('{}')
    (out/f'routing_results_{name}.csv').write_text('x\n')
    (out/f'{name}-accuracy.png').write_bytes(b'png')

def test_study_command(tmp_path):
    "A study runs end to end; with --overwrite it replaces the study in --out, and nothing of the old one stays beside it"
    f = tmp_path/'toy.csv'; outcomes_frame().to_csv(f, index=False)
    plant_study(tmp_path/'out', 'other')
    (tmp_path/'out'/'notes.txt').write_text('mine')                  # not a study file: left alone
    r = run('study', '--outcomes', f, '--out', tmp_path/'out', '--n-boot', 100, '--overwrite')
    assert r.returncode == 0, r.stderr[-2000:]
    res = pd.read_csv(tmp_path/'out'/'results.csv')
    assert {'oracle', 'random', 'auto', 'acme/math-7b'} <= set(res.method)
    assert (tmp_path/'out'/'study-toy.ipynb').exists()          # the executed notebook is kept beside the tables
    assert 'auto chose' in r.stdout and 'oracle' in r.stdout and 'study-toy.ipynb' in r.stdout   # the headline, printed
    assert 'without encryption' not in r.stderr                   # the kernel talks over IPC: no TCP warning
    auto = res.set_index('method').loc['auto']
    assert auto.accuracy > res[res.family == 'single'].accuracy.max()   # the toy pool is learnable
    assert json.loads((tmp_path/'out'/'study.json').read_text())['name'] == 'toy'
    left = {p.name for p in (tmp_path/'out').iterdir()}
    assert not left & {'study-other.ipynb', 'routing_results_other.csv', 'other-accuracy.png'}, left
    assert (tmp_path/'out'/'notes.txt').read_text() == 'mine'

def test_bad_outcomes_end_with_the_validation_error(tmp_path):
    df = outcomes_frame(); df.loc[5, 'score'] = 1.5
    f = tmp_path/'bad.csv'; df.to_csv(f, index=False)
    r = run('study', '--outcomes', f, '--out', tmp_path/'new'/'out')
    assert "row 5: field 'score'" in one_line_error(r, 'study')
    assert not (tmp_path/'new').exists()                          # no empty folder left behind, nor its parent

@pytest.mark.parametrize('same_name', [False, True])
def test_study_refuses_a_folder_with_a_study(tmp_path, same_name):
    "A second study (another --name, or the same again) into a study's folder is refused before any work; nothing is touched"
    f = tmp_path/'toy.csv'; outcomes_frame().to_csv(f, index=False)
    plant_study(tmp_path/'out', 'toy' if same_name else 'gsm8k')
    before = {p.name: p.read_bytes() for p in (tmp_path/'out').iterdir()}
    r = run('study', '--outcomes', f, '--name', 'toy', '--out', tmp_path/'out')
    msg = one_line_error(r, 'study')
    assert f"already holds the study {'toy' if same_name else 'gsm8k'!r}" in msg and '--overwrite' in msg, msg
    assert {p.name: p.read_bytes() for p in (tmp_path/'out').iterdir()} == before

def test_study_into_a_read_only_folder(tmp_path, read_only):
    f = tmp_path/'toy.csv'; outcomes_frame().to_csv(f, index=False)
    msg = one_line_error(run('study', '--outcomes', f, '--out', read_only/'out'), 'study')
    assert f"--out {read_only/'out'} cannot be written" in msg, msg

def test_import_into_a_read_only_folder(tmp_path, read_only):
    "Said before the import, in one line: not a PermissionError traceback after the work"
    f = tmp_path/'toy.csv'; outcomes_frame().to_csv(f, index=False)
    msg = one_line_error(run('import', '--format', 'long', f, '--out', read_only/'o.parquet'), 'import')
    assert f"--out {read_only/'o.parquet'} cannot be written" in msg and 'does not accept new files' in msg, msg
    msg = one_line_error(run('import', '--format', 'long', f, '--out', f/'o.parquet'), 'import')   # through a file
    assert f"{f} is a file, not a folder" in msg, msg
