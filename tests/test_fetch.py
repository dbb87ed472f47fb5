"Fetching the public outcome files (`llmroute.data.outcome_file`) from a loopback HTTP server that plays GitHub"
import functools, hashlib, http.server, os, shutil, stat, threading
from pathlib import Path
import pytest
from llmroute import data as D
from llmroute.core import InputError, data_dir, sha256_file
from llmroute.outcomes import import_routerbench, import_routerdc

SHARED = data_dir()


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


@pytest.mark.skipif(SHARED is None or not (SHARED / 'routerbench' / 'mbpp_test.csv').exists(), reason="no local data folder")
def test_real_files_served_like_the_repository(env, server):
    "Copies of the published files at their repository paths download, hash-check and import"
    srv, root, _ = server
    for kind, name in [('routerdc', 'humaneval_test.json'), ('routerdc', 'mmlu_train.json'), ('routerbench', 'mbpp_test.csv')]:
        path, sha = D.OUTCOME_FILES[kind][name]
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SHARED / kind / name, root / path)
        assert sha256_file(SHARED / kind / name) == sha
    assert D.OUTCOME_FILES['routerdc']['mmlu_train.json'][0] == 'datasets/split2_model7_cluster/mmlu_train.json'
    he = D.outcome_file('routerdc', 'humaneval_test.json')
    assert he.parent == env / 'cache' / 'outcomes' / 'routerdc'
    assert len(import_routerdc([he])) == 49
    mb = D.outcome_files('routerbench', ['mbpp_test.csv'])
    t = import_routerbench(mb)
    assert (len(t), len(t.models), t.splits) == (128, 11, ['test'])
    assert sorted(srv.hits) == ['/datasets/routerbench_zs/mbpp_test.csv', '/datasets/split2_model7/humaneval_test.json']
