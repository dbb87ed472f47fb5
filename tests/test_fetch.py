"""Fetching the public outcome files (`llmroute.data.outcome_file`) from a loopback HTTP server that plays GitHub or
a file:// mirror; `llmroute fetch`; and a newcomer without a data folder or a hub, who must learn everything missing at once"""
import contextlib, functools, hashlib, http.server, io, json, os, shutil, socket, stat, subprocess, sys, threading
from pathlib import Path
import pytest
from llmroute import data as D
from llmroute.cli import main, study_needs
from llmroute.core import InputError, data_dir, sha256_file
from llmroute.importers import import_routerbench, import_routerdc
from llmroute.reproduce import DEFAULT_STUDIES, default_study_table

EXE = str(Path(sys.executable).parent/'llmroute')


SHARED = data_dir()   # read before any test points LLMROUTE_DATA_DIR elsewhere

@pytest.fixture
def shared():
    "The real data folder (CI has one): a test that needs it fails saying so, it does not skip in silence"
    if SHARED is None: pytest.fail("this test reads the real data folder: set LLMROUTE_DATA_DIR (`llmroute fetch --out DIR` makes one)")
    return SHARED


def closed_port():
    "A loopback port nothing listens on (bound, then released): connections to it are refused at once"
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


class _Handler(http.server.SimpleHTTPRequestHandler):
    "Serves `directory`, counting the requests it gets"
    def log_message(self, *a): pass
    def do_GET(self):
        self.server.hits.append(self.path)
        return super().do_GET()


@pytest.fixture
def server(tmp_path):
    "A loopback server on a free port serving tmp_path/'repo' (laid out like shuhao02/RouterDC), in a thread"
    root = tmp_path / 'repo'
    root.mkdir()
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Handler, directory=str(root)))
    srv.hits = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv, root, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown(); srv.server_close()


@pytest.fixture
def env(tmp_path, monkeypatch, server):
    "An empty data folder, a fresh cache and the loopback server as the outcomes URL"
    (tmp_path / 'data').mkdir()
    for k in ('http_proxy', 'HTTP_PROXY', 'all_proxy', 'ALL_PROXY'): monkeypatch.delenv(k, raising=False)   # loopback only
    monkeypatch.setenv('LLMROUTE_DATA_DIR', str(tmp_path / 'data'))
    monkeypatch.setenv('LLMROUTE_CACHE_DIR', str(tmp_path / 'cache'))
    monkeypatch.setenv('LLMROUTE_OUTCOMES_URL', server[2])
    return tmp_path


@pytest.fixture
def toy(monkeypatch, server):
    "A constructed release file registered under kind 'routerdc' (no local data needed); returns (name, bytes)"
    srv, root, _ = server
    body = b'[{"question": "1+1?", "scores": {"a": 1.0, "b": 0.0}}]'
    (root / 'datasets' / 'toy').mkdir(parents=True)
    (root / 'datasets' / 'toy' / 'toy_test.json').write_bytes(body)
    files = {k: dict(v) for k, v in D.OUTCOME_FILES.items()}
    files['routerdc']['toy_test.json'] = ('datasets/toy/toy_test.json', hashlib.sha256(body).hexdigest())
    monkeypatch.setattr(D, 'OUTCOME_FILES', files)
    return 'toy_test.json', body


def _cache(env): return env / 'cache' / 'outcomes' / 'routerdc'


def test_download_once_then_from_the_cache(env, server, toy):
    srv, _, base = server
    name, body = toy
    p = D.outcome_file('routerdc', name)
    assert p == _cache(env) / name and p.read_bytes() == body
    assert srv.hits == ['/datasets/toy/toy_test.json']
    assert D.outcome_file('routerdc', name) == p
    assert srv.hits == ['/datasets/toy/toy_test.json']          # the second call did not download
    assert D.outcome_url('routerdc', name) == f"{base}/datasets/toy/toy_test.json"
    t = import_routerdc([p])
    assert (len(t), t.models) == (1, ['a', 'b'])


def test_hash_mismatch_is_an_error_and_leaves_nothing(env, server, toy):
    srv, root, base = server
    name, body = toy
    (root / 'datasets' / 'toy' / name).write_bytes(body.replace(b'1.0', b'0.9'))   # upstream changed
    want = D.OUTCOME_FILES['routerdc'][name][1]
    with pytest.raises(InputError) as e:
        D.outcome_file('routerdc', name)
    msg = str(e.value)
    assert f"{base}/datasets/toy/{name}" in msg and f"expected {want}" in msg and 'nothing was saved' in msg
    assert list(_cache(env).iterdir()) == []                    # no file, partial or whole


def test_missing_upstream_file_names_the_url(env, server, toy):
    srv, root, base = server
    name, _ = toy
    (root / 'datasets' / 'toy' / name).unlink()
    with pytest.raises(InputError, match=rf"HTTP 404 from {base}/datasets/toy/{name}"):
        D.outcome_file('routerdc', name)
    assert list(_cache(env).iterdir()) == []
    with pytest.raises(InputError, match='nor the cache'):
        D.outcome_file('routerdc', name, download_missing=False)


def test_a_damaged_cache_copy_is_fetched_again(env, server, toy):
    srv, _, _ = server
    name, body = toy
    p = D.outcome_file('routerdc', name)
    p.write_bytes(b'[]')
    assert D.outcome_file('routerdc', name).read_bytes() == body
    assert len(srv.hits) == 2


def test_the_data_folder_copy_wins(env, server, toy):
    srv, _, _ = server
    name, body = toy
    (env / 'data' / 'routerdc').mkdir()
    (env / 'data' / 'routerdc' / name).write_bytes(body)
    assert D.outcome_file('routerdc', name) == env / 'data' / 'routerdc' / name
    assert srv.hits == []


def test_downloaded_files_follow_the_umask(env, server, toy):
    name, _ = toy
    old = os.umask(0o002)
    try: p = D.outcome_file('routerdc', name)
    finally: os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o664


def test_unknown_names():
    with pytest.raises(InputError, match="no file 'nope.json' in the routerdc release"):
        D.outcome_file('routerdc', 'nope.json')
    with pytest.raises(InputError, match="unknown outcome release 'helm'"):
        D.outcome_file('helm', 'x.json')


def test_real_files_served_like_the_repository(env, server, shared):
    "Copies of the published files at their repository paths download, hash-check and import"
    srv, root, _ = server
    for kind, name in [('routerdc', 'humaneval_test.json'), ('routerdc', 'mmlu_train.json'), ('routerbench', 'mbpp_test.csv')]:
        path, sha = D.OUTCOME_FILES[kind][name]
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared / kind / name, root / path)
        assert sha256_file(shared / kind / name) == sha
    assert D.OUTCOME_FILES['routerdc']['mmlu_train.json'][0] == 'datasets/split2_model7_cluster/mmlu_train.json'
    he = D.outcome_file('routerdc', 'humaneval_test.json')
    assert he.parent == env / 'cache' / 'outcomes' / 'routerdc'
    assert len(import_routerdc([he])) == 49
    mb = D.outcome_files('routerbench', ['mbpp_test.csv'])
    t = import_routerbench(mb)
    assert (len(t), len(t.models), t.splits) == (128, 11, ['test'])
    assert sorted(srv.hits) == ['/datasets/routerbench_zs/mbpp_test.csv', '/datasets/split2_model7/humaneval_test.json']


def test_a_file_mirror_serves_the_outcome_files(env, server, toy, monkeypatch):
    "LLMROUTE_OUTCOMES_URL may be a folder (file://): the same paths, the same hash check, nothing partial on a mismatch"
    srv, root, _ = server
    name, body = toy
    monkeypatch.setenv('LLMROUTE_OUTCOMES_URL', root.as_uri())
    p = D.outcome_file('routerdc', name)
    assert p == _cache(env) / name and p.read_bytes() == body and srv.hits == []     # from the folder, not the server
    p.unlink()
    (root / 'datasets' / 'toy' / name).write_bytes(body.replace(b'1.0', b'0.9'))
    with pytest.raises(InputError, match=f"downloaded from {(root / 'datasets' / 'toy' / name).as_uri()} has sha256"):
        D.outcome_file('routerdc', name)
    (root / 'datasets' / 'toy' / name).unlink()
    with pytest.raises(InputError, match="no file at file://"):
        D.outcome_file('routerdc', name)
    assert list(_cache(env).iterdir()) == []


@pytest.fixture
def newcomer(tmp_path):
    "The environment of a newcomer: an empty data folder, empty caches, the hub offline, the outcomes' host refusing"
    (tmp_path / 'data').mkdir()
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith('_proxy')}
    env.update(LLMROUTE_DATA_DIR=str(tmp_path / 'data'), LLMROUTE_CACHE_DIR=str(tmp_path / 'cache'), HF_HOME=str(tmp_path / 'hf'),
               HF_DATASETS_CACHE=str(tmp_path / 'hf' / 'datasets'), HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1',
               LLMROUTE_OUTCOMES_URL=f'http://127.0.0.1:{closed_port()}')
    return tmp_path, env


@pytest.mark.parametrize('command', [['reproduce'], ['fetch']])
def test_a_newcomer_learns_every_missing_file_at_once(newcomer, command):
    "`make study` (llmroute reproduce) and `llmroute fetch` offline: one line, exit 2, every one of the 22 needs named"
    tmp, env = newcomer
    r = subprocess.run([EXE, *command, *(['--root', tmp] if command == ['reproduce'] else [])], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr[-3000:]
    assert r.stderr.count('\n') == 1 and r.stderr.startswith(f'llmroute {command[0]}: error: 22 of 22 files or folders'), r.stderr
    for kind, files in D.OUTCOME_FILES.items():
        for name in files: assert f'{kind}/{name}' in r.stderr, name
    assert 'huggingface.co not reached (HF_HUB_OFFLINE is set): gsm8k/, mmlu/' in r.stderr, r.stderr
    assert 'LLMROUTE_DATA_DIR' in r.stderr and 'gsm8k/train.jsonl' in r.stderr and 'llmroute fetch --out DIR' in r.stderr
    assert not (tmp / 'results').exists()                           # stopped before any study
    assert [p for p in (tmp / 'cache').rglob('*') if p.is_file()] == []   # nothing partial in the cache


def test_no_hub_for_gsm8k_is_one_line(newcomer):
    "A RouterDC GSM8K file joins to GSM8K's questions: with no data folder and no hub that is one line, not a hub traceback"
    tmp, env = newcomer
    f = tmp / 'gsm8k-test.json'
    f.write_text(json.dumps([{'question': 'Janet has 3 ducks. How many?', 'scores': {'a': 1.0, 'b': 0.0}}]))
    r = subprocess.run([EXE, 'import', '--format', 'routerdc', f, '--out', tmp / 'o.parquet'], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 2 and 'Traceback' not in r.stderr and r.stderr.count('\n') == 1, r.stderr[-3000:]
    assert 'gsm8k is not in a data folder' in r.stderr and 'hub could not be reached for openai/gsm8k' in r.stderr, r.stderr
    assert 'set LLMROUTE_DATA_DIR to a folder laid out as' in r.stderr and not (tmp / 'o.parquet').exists()


def test_print_urls_lists_every_file(capsys):
    "Every file of every default study, once, with the path it takes in a data folder"
    assert main(['fetch', '--print-urls']) == 0
    rows = [l.split('\t') for l in capsys.readouterr().out.splitlines()]
    paths = [p for _, p in rows]
    want = [f'{k}/{n}' for k, fs in D.OUTCOME_FILES.items() for n in fs]
    assert sorted(p for p in paths if p.split('/')[0] in D.OUTCOME_FILES) == sorted(want)
    assert sorted(p for p in paths if p.split('/')[0] not in D.OUTCOME_FILES) == \
        ['gsm8k/test.parquet', 'gsm8k/train.parquet', 'mmlu/dev.parquet', 'mmlu/test.parquet', 'mmlu/val.parquet']
    url = dict((p, u) for u, p in rows)
    assert url['routerdc/mmlu_train.json'] == D.outcome_url('routerdc', 'mmlu_train.json')
    assert url['mmlu/val.parquet'] == 'https://huggingface.co/datasets/cais/mmlu/resolve/main/all/validation-00000-of-00001.parquet'


def test_fetch_lays_out_a_data_folder_from_a_file_mirror(tmp_path, monkeypatch, shared):
    "`llmroute fetch --out DIR` from a file:// mirror: a data folder the study reads, each file hash-checked"
    mirror = tmp_path / 'mirror'
    for name in ['mbpp_train.csv', 'mbpp_test.csv']:
        path, _ = D.OUTCOME_FILES['routerbench'][name]
        (mirror / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared / 'routerbench' / name, mirror / path)
    (tmp_path / 'empty').mkdir()
    monkeypatch.setenv('LLMROUTE_DATA_DIR', str(tmp_path / 'empty'))
    monkeypatch.setenv('LLMROUTE_CACHE_DIR', str(tmp_path / 'cache'))
    monkeypatch.setenv('LLMROUTE_OUTCOMES_URL', mirror.as_uri())
    out = io.StringIO()
    with contextlib.redirect_stdout(out): assert main(['fetch', '--studies', 'routerbench-mbpp', '--out', str(tmp_path / 'd')]) == 0
    assert f"LLMROUTE_DATA_DIR={tmp_path / 'd'}" in out.getvalue()
    for name in ['mbpp_train.csv', 'mbpp_test.csv']:
        assert sha256_file(tmp_path / 'd' / 'routerbench' / name) == D.OUTCOME_FILES['routerbench'][name][1]
    assert [p for p in (tmp_path / 'cache').rglob('*') if p.is_file()] == []   # straight into the folder, not the cache
    monkeypatch.setenv('LLMROUTE_DATA_DIR', str(tmp_path / 'd'))
    monkeypatch.setenv('LLMROUTE_OUTCOMES_URL', f'http://127.0.0.1:{closed_port()}')   # nothing more to fetch
    t, _ = default_study_table('routerbench-mbpp')
    assert (t.df.query_id.nunique(), len(t.models)) == (299 + 128, 11)


def test_study_needs_are_all_a_study_reads(tmp_path, monkeypatch, shared):
    "Each default study runs its import from a data folder holding only what `study_needs` names (no cache, no network)"
    monkeypatch.setenv('LLMROUTE_CACHE_DIR', str(tmp_path / 'cache'))
    monkeypatch.setenv('LLMROUTE_OUTCOMES_URL', f'http://127.0.0.1:{closed_port()}')
    for study in DEFAULT_STUDIES:
        d = tmp_path / study
        for need in study_needs([study]):
            (d / need).parent.mkdir(parents=True, exist_ok=True)
            (d / need).symlink_to(shared / need)
        monkeypatch.setenv('LLMROUTE_DATA_DIR', str(d))
        t, _ = default_study_table(study)
        assert len(t.df) > 0, study
    assert [p for p in (tmp_path / 'cache').rglob('*') if p.is_file()] == []
