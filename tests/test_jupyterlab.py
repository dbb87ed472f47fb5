"JupyterLab smoke test: start a server on a free loopback port, list nbs/ through the REST API, run `import llmroute` in a kernel started through the server, stop the server."
import json, os, socket, subprocess, sys, time, uuid
from pathlib import Path
import pytest, requests, websocket

ROOT = Path(__file__).resolve().parents[1]

def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

@pytest.fixture(scope='module')
def lab():
    port, token = free_port(), uuid.uuid4().hex
    cmd = [sys.executable, '-m', 'jupyterlab', '--no-browser', '--ip=127.0.0.1', f'--port={port}',
           f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={ROOT}', '--ServerApp.port_retries=0']
    if os.geteuid() == 0: cmd.append('--allow-root')
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base, hdr = f'http://127.0.0.1:{port}', {'Authorization': f'token {token}'}
    try:
        for _ in range(120):
            if proc.poll() is not None: pytest.fail(f"jupyter lab exited early: {proc.stderr.read()[-2000:]}")
            try:
                if requests.get(f'{base}/api/status', headers=hdr, timeout=2).ok: break
            except requests.ConnectionError: pass
            time.sleep(0.5)
        else: pytest.fail("jupyter lab did not answer within 60 s")
        yield base, hdr, port, token
    finally:
        proc.terminate()
        try: proc.wait(20)
        except subprocess.TimeoutExpired: proc.kill()

def test_lists_notebooks(lab):
    base, hdr, *_ = lab
    r = requests.get(f'{base}/api/contents/nbs', headers=hdr, timeout=10)
    assert r.ok, r.text
    names = {o['name'] for o in r.json()['content']}
    assert {'00_core.ipynb', '01_data.ipynb', 'index.ipynb'} <= names

def test_kernel_imports_package(lab):
    base, hdr, port, token = lab
    k = requests.post(f'{base}/api/kernels', headers=hdr, json={'name': 'python3'}, timeout=30).json()
    try:
        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/api/kernels/{k['id']}/channels?token={token}", timeout=60)
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({'header': {'msg_id': msg_id, 'username': 'test', 'session': uuid.uuid4().hex, 'msg_type': 'execute_request', 'version': '5.3'},
                            'parent_header': {}, 'metadata': {}, 'channel': 'shell',
                            'content': {'code': 'import llmroute, llmroute.core; print("VERSION", llmroute.__version__)', 'silent': False,
                                        'store_history': False, 'user_expressions': {}, 'allow_stdin': False}}))
        out, status = '', None
        deadline = time.time() + 90
        while time.time() < deadline and status is None:
            m = json.loads(ws.recv())
            if m.get('parent_header', {}).get('msg_id') != msg_id: continue
            if m['msg_type'] == 'stream': out += m['content']['text']
            if m['msg_type'] == 'error': pytest.fail('\n'.join(m['content']['traceback']))
            if m['msg_type'] == 'execute_reply': status = m['content']['status']
        ws.close()
        assert status == 'ok'
        assert 'VERSION 0.' in out
    finally:
        requests.delete(f"{base}/api/kernels/{k['id']}", headers=hdr, timeout=10)
