"""`llmroute train`, `route` and `serve` end to end, with real servers on loopback.

The backends are real OpenAI-compatible LLM servers started here: `transformers serve` with SmolLM2-135M and with a
tiny random Llama (both local folders, offline). In front of them runs the router server (`llmroute serve`, or
`make_app` under uvicorn in a thread where a test needs its own), and the `openai` client library sends the
requests. The pool is two models, `smollm2` and `tiny-llama`, and a toy outcomes table in which SmolLM2 solves the
arithmetic questions and the tiny Llama the spelling ones, so where each request must go is known.
"""
import asyncio, json, os, signal, socket, subprocess, sys, threading, time
from pathlib import Path
import httpx, openai, pandas as pd, pytest

BIN = Path(sys.executable).parent
ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1',
       'OMP_NUM_THREADS': '1', 'TOKENIZERS_PARALLELISM': 'false'}
MAX_TOKENS = 2
WORDS = ['apple', 'river', 'window', 'garden', 'pencil', 'rocket', 'silver', 'candle', 'forest', 'marble',
         'violin', 'tunnel', 'harbor', 'lantern', 'meadow', 'pepper', 'saddle', 'thunder', 'velvet', 'walnut']

def arithmetic(i): return f"What is {i + 3} plus {2 * i + 5}? Add the two numbers."
def spelling(i): return f"Spell the word {WORDS[i % len(WORDS)]} backwards, letter by letter."

def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def wait_healthy(url, proc=None, log=None, timeout=180):
    "Poll url/health until it answers 200; fail with the server's log if it dies or never does"
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc is not None and proc.poll() is not None: break
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200: return
        except httpx.HTTPError: pass
        time.sleep(0.1)
    tail = Path(log).read_text()[-3000:] if log and Path(log).exists() else \
           (proc.stdout.read() if proc is not None and proc.poll() is not None and proc.stdout else '')
    pytest.fail(f"server at {url} did not become healthy (exit {proc.poll() if proc else None}):\n{tail}")

def start(cmd, log):
    "A server subprocess in its own process group, its output in `log`"
    return subprocess.Popen(cmd, stdout=open(log, 'w'), stderr=subprocess.STDOUT, env=ENV, start_new_session=True)

def stop(proc, sig=signal.SIGTERM):
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try: proc.wait(20)
        except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.wait(10)

def llm_server(model_dir, tmp, name):
    "`transformers serve` pinned to a local model folder on a free loopback port: (process, base url)"
    port = free_port()
    p = start([str(BIN/'transformers'), 'serve', str(model_dir), '--host', '127.0.0.1', '--port', str(port),
               '--device', 'cpu', '--log-level', 'warning'], tmp/f'{name}.log')
    return p, f"http://127.0.0.1:{port}"

def cli(*args, timeout=300):
    return subprocess.run([str(BIN/'llmroute'), *map(str, args)], capture_output=True, text=True, env=ENV, timeout=timeout)

class ThreadServer:
    "uvicorn serving an app in a thread of this process, on a free loopback port"
    def __init__(self, app):
        import uvicorn
        self.port = free_port(); self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host='127.0.0.1', port=self.port, log_level='warning'))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
    def __enter__(self):
        self.thread.start(); wait_healthy(self.url); return self
    def __exit__(self, *a):
        self.server.should_exit = True; self.thread.join(20)

def client(url): return openai.OpenAI(base_url=f"{url}/v1", api_key='none', max_retries=0, timeout=120)

def ask(c, text, model='router', **kw):
    "(parsed completion, response headers) of one chat request"
    raw = c.chat.completions.with_raw_response.create(model=model, messages=[{'role': 'user', 'content': text}],
                                                       max_tokens=MAX_TOKENS, **kw)
    return raw.parse(), raw.headers

# ---------------------------------------------------------------- fixtures: started once for the module

@pytest.fixture(scope='module')
def tmp(tmp_path_factory): return tmp_path_factory.mktemp('serve')

@pytest.fixture(scope='module')
def models(tmp):
    from llmroute.sampling import smollm2_dir, tiny_llama
    return {'smollm2': smollm2_dir(), 'tiny-llama': tiny_llama(tmp/'tiny-llama')}

@pytest.fixture(scope='module')
def backends(tmp, models):
    "The two LLM servers: pool name -> (process, base url); started together, stopped at the end"
    procs = {n: llm_server(d, tmp, n) for n, d in models.items()}
    try:
        for n, (p, url) in procs.items(): wait_healthy(url, p, tmp/f'{n}.log')
        yield procs
    finally:
        for p, _ in procs.values(): stop(p)

def backends_yaml(path, urls:dict, models:dict):
    "A backends.yaml: pool name -> base_url, with the folder a `transformers serve` is pinned to as the backend's model name"
    path.write_text("models:\n" + "".join(f"  {n}:\n    base_url: {u}/v1\n    model: {models[n]}\n" for n, u in urls.items()))
    return path

@pytest.fixture(scope='module')
def outcomes(tmp):
    "The toy outcomes table: SmolLM2 solves arithmetic, the tiny Llama spelling"
    rows = []
    for i in range(40):
        for q, solver in [(arithmetic(i), 'smollm2'), (spelling(i) + f" (item {i})", 'tiny-llama')]:
            for m in ('smollm2', 'tiny-llama'):
                rows.append(dict(query_id=f"q{len(rows) // 2}", question=q, model=m, score=float(m == solver)))
    f = tmp/'toy_outcomes.csv'; pd.DataFrame(rows).to_csv(f, index=False)
    return f

@pytest.fixture(scope='module')
def router_dir(tmp, outcomes):
    out = tmp/'router'
    r = cli('train', '--outcomes', outcomes, '--router', 'knn', '--features', 'tfidf', '--policy', 'P1', '--out', out)
    assert r.returncode == 0, r.stderr[-3000:]
    return out

@pytest.fixture(scope='module')
def router_server(tmp, router_dir, backends, models):
    "`llmroute serve` in front of both LLM servers, with a routing log"
    port = free_port(); url = f"http://127.0.0.1:{port}"
    yml = backends_yaml(tmp/'backends.yaml', {n: u for n, (_, u) in backends.items()}, models)
    p = start([str(BIN/'llmroute'), 'serve', '--router', str(router_dir), '--backends', str(yml), '--port', str(port),
               '--log', str(tmp/'route_log.jsonl')], tmp/'router.log')
    try:
        wait_healthy(url, p, tmp/'router.log', timeout=120)
        yield url
    finally: stop(p)

# ---------------------------------------------------------------- train and route from the command line

def test_train_saves_the_router_with_featurizer_policy_and_preference(tmp, outcomes):
    out = tmp/'router-safe'
    r = cli('train', '--outcomes', outcomes, '--router', 'knn', '--features', 'tfidf', '--policy', 'safe', '--out', out)
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads((out/'llmroute.json').read_text())
    assert info['models'] == ['smollm2', 'tiny-llama'] and sorted(info['preference']) == info['models']
    fitted = info['policy_state']['fitted']
    assert info['policy_state']['class'] == 'Safe' and 0 <= fitted['margin_'] <= 1 and fitted['best_model'] == info['preference'][0]
    assert {p.name for p in out.iterdir()} == {'router.skops', 'featurizer', 'llmroute.json'}   # no pickle: loads without running code
    again = cli('train', '--outcomes', outcomes, '--out', out)            # a router already there is kept
    assert again.returncode == 2 and 'already holds a router' in again.stderr

def test_train_bad_input_ends_in_one_line(tmp, outcomes):
    r = cli('train', '--outcomes', outcomes, '--router', 'forest', '--out', tmp/'never')
    assert r.returncode == 2 and r.stderr.startswith('llmroute train: error:') and "unknown router 'forest'" in r.stderr
    assert 'Traceback' not in r.stderr and not (tmp/'never').exists()

def test_route_command_writes_choices_and_probabilities(tmp, router_dir):
    q = tmp/'queries.jsonl'
    q.write_text(''.join(json.dumps({'id': f'a{i}', 'question': f(100 + i)}) + '\n' for i in range(6) for f in (arithmetic, spelling)))
    r = cli('route', '--router', router_dir, '--queries', q, '--out', tmp/'routed.csv')
    assert r.returncode == 0, r.stderr[-3000:]
    res = pd.read_csv(tmp/'routed.csv')
    assert res.model.tolist() == ['smollm2', 'tiny-llama'] * 6
    assert list(res.columns) == ['row', 'id', 'model', 'p_smollm2', 'p_tiny-llama']
    assert ((res['p_smollm2'] > res['p_tiny-llama']) == (res.model == 'smollm2')).all()
    bad = tmp/'bad.jsonl'; bad.write_text('{"question": "ok"}\n{"text": "no question"}\n')
    r = cli('route', '--router', router_dir, '--queries', bad, '--out', tmp/'never.csv')
    assert r.returncode == 2 and "line 2" in r.stderr and "'question'" in r.stderr

def test_route_jsonl_without_some_ids_is_valid_json(tmp, router_dir):
    "A row without an id gets null, never NaN (which is not JSON)"
    q = tmp/'some-ids.jsonl'
    q.write_text(json.dumps({'id': 'x1', 'question': arithmetic(900)}) + '\n' + json.dumps({'question': spelling(901)}) + '\n')
    r = cli('route', '--router', router_dir, '--queries', q, '--out', tmp/'some-ids-routed.jsonl')
    assert r.returncode == 0, r.stderr[-3000:]
    text = (tmp/'some-ids-routed.jsonl').read_text()
    assert 'NaN' not in text
    recs = [json.loads(l, parse_constant=lambda c: pytest.fail(f"not JSON: {c}")) for l in text.splitlines()]
    assert [(r['id'], r['model']) for r in recs] == [('x1', 'smollm2'), (None, 'tiny-llama')]

def test_route_refuses_blank_questions_naming_the_lines(tmp, router_dir):
    q = tmp/'blank.jsonl'
    q.write_text(''.join(json.dumps({'question': t}) + '\n' for t in (arithmetic(1), '', '   ')))
    r = cli('route', '--router', router_dir, '--queries', q, '--out', tmp/'blank-routed.csv')
    assert r.returncode == 2 and 'empty or blank question' in r.stderr and '(lines 2, 3 of the file)' in r.stderr
    assert not (tmp/'blank-routed.csv').exists()

def test_a_damaged_router_folder_is_one_error_naming_the_file(tmp, router_dir):
    import shutil
    q = tmp/'one.csv'; pd.DataFrame({'question': [arithmetic(5)]}).to_csv(q, index=False)
    for name, damage, says in [
            ('trunc', lambda d: (d/'router.skops').write_bytes((d/'router.skops').read_bytes()[:500]), "router.skops: truncated or changed"),
            ('gone', lambda d: (d/'featurizer'/'featurizer.skops').unlink(), "featurizer.skops: missing"),
            ('json', lambda d: (d/'llmroute.json').write_text('{"format": 1.5, "models"'), "llmroute.json: not valid JSON")]:
        d = tmp/f'router-{name}'; shutil.copytree(router_dir, d); damage(d)
        r = cli('route', '--router', d, '--queries', q, '--out', tmp/f'never-{name}.csv')
        assert r.returncode == 2 and says in r.stderr and 'Traceback' not in r.stderr, r.stderr[-2000:]

def test_train_on_test_rows_only_says_how_it_split(tmp, outcomes):
    "A table with only test rows is re-split: train says so, as study does"
    df = pd.read_csv(outcomes); df['split'] = 'test'
    f = tmp/'test-only.csv'; df.to_csv(f, index=False)
    r = cli('train', '--outcomes', f, '--out', tmp/'router-test-only')
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'split: only test in the table, no train; every query re-split' in r.stdout

def test_outputs_in_a_read_only_place_fail_before_the_work(tmp, outcomes, router_dir):
    "/sys takes no new files, even from root: the error comes at once, in one line, before the fit"
    r = cli('train', '--outcomes', outcomes, '--out', '/sys/llmroute-router')
    assert r.returncode == 2 and r.stderr.startswith('llmroute train: error: --out /sys/llmroute-router cannot be written')
    assert 'Traceback' not in r.stderr and 'test accuracy' not in r.stdout
    q = tmp/'one-q.csv'; pd.DataFrame({'question': [arithmetic(3)]}).to_csv(q, index=False)
    r = cli('route', '--router', router_dir, '--queries', q, '--out', '/sys/routed.csv')
    assert r.returncode == 2 and r.stderr.strip() == ('llmroute route: error: --out /sys/routed.csv cannot be written: the folder '
                                                     '/sys does not accept new files (Permission denied); choose another --out')

# ---------------------------------------------------------------- serve: the openai client against real servers

def test_models_and_health(router_server):
    c = client(router_server)
    assert [m.id for m in c.models.list()] == ['router', 'smollm2', 'tiny-llama']
    assert httpx.get(f"{router_server}/health").json()['status'] == 'ok'

def test_requests_are_routed_to_the_expected_backend(router_server):
    c = client(router_server)
    for text, want in [(arithmetic(200), 'smollm2'), (spelling(201), 'tiny-llama')]:
        r, h = ask(c, text)
        assert r.model == want and h['x-llmroute-model'] == want and 'x-llmroute-fallback' not in h
        assert isinstance(r.choices[0].message.content, str) and r.usage.completion_tokens <= MAX_TOKENS

def test_streaming_is_relayed(router_server):
    c = client(router_server)
    for text, want in [(arithmetic(300), 'smollm2'), (spelling(301), 'tiny-llama')]:
        chunks = list(c.chat.completions.create(model='router', messages=[{'role': 'user', 'content': text}],
                                                max_tokens=MAX_TOKENS, stream=True))
        assert len(chunks) >= 2 and {ch.model for ch in chunks} == {want}
        assert any(ch.choices and ch.choices[0].delta.content for ch in chunks)

def test_a_pool_model_by_name_goes_straight_to_it(router_server):
    r, h = ask(client(router_server), arithmetic(400), model='tiny-llama')   # the router would pick smollm2
    assert r.model == 'tiny-llama' and h['x-llmroute-model'] == 'tiny-llama'

def test_unknown_model_gets_openai_404(router_server):
    with pytest.raises(openai.NotFoundError) as e: ask(client(router_server), 'hi', model='gpt-4')
    assert e.value.status_code == 404 and e.value.code == 'model_not_found'

def test_malformed_requests_get_openai_4xx(router_server):
    c = client(router_server)
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model='router', messages=[], max_tokens=MAX_TOKENS)
    assert e.value.status_code == 400 and e.value.param == 'messages'
    url = f"{router_server}/v1/chat/completions"
    for content, param in [(b'{"model": "router", "messages": [', None), (b'[1, 2]', None),
                           (b'{"messages": [{"role": "user", "content": "hi"}]}', 'model'),
                           (b'{"model": "router", "messages": [{"role": "system", "content": "x"}]}', 'messages'),
                           (b'{"model": "router", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}', 'stream')]:
        r = httpx.post(url, content=content, headers={'content-type': 'application/json'})
        assert r.status_code == 400, content
        assert r.json()['error']['type'] == 'invalid_request_error' and r.json()['error']['param'] == param
    r = httpx.get(f"{router_server}/v1/embeddings")
    assert r.status_code == 404 and 'error' in r.json()

def test_routing_log(tmp, router_server):
    ask(client(router_server), arithmetic(500))
    recs = [json.loads(l) for l in (tmp/'route_log.jsonl').read_text().splitlines()]
    routed = [r for r in recs if r['requested'] == 'router']
    assert routed and all(set(r['probabilities']) == {'smollm2', 'tiny-llama'} and r['routing_ms'] > 0 for r in routed)
    last = routed[-1]
    assert (last['chosen'], last['served_by'], last['fallback'], last['status']) == ('smollm2', 'smollm2', [], 200)
    assert all('text' not in r for r in recs)                             # message text only when asked

def test_load_nothing_dropped(router_server):
    "200 requests, 16 at a time, half to each backend: every one answered by the model it was routed to"
    async def run():
        c = openai.AsyncOpenAI(base_url=f"{router_server}/v1", api_key='none', max_retries=0, timeout=120)
        sem = asyncio.Semaphore(16)
        async def one(i):
            text, want = (arithmetic(1000 + i), 'smollm2') if i % 2 else (spelling(1000 + i), 'tiny-llama')
            async with sem:
                r = await c.chat.completions.create(model='router', messages=[{'role': 'user', 'content': text}], max_tokens=1)
            return r.model == want and isinstance(r.choices[0].message.content, str)
        try: return await asyncio.wait_for(asyncio.gather(*[one(i) for i in range(200)]), timeout=420)
        finally: await c.close()
    ok = asyncio.run(run())
    assert len(ok) == 200 and all(ok)

# ---------------------------------------------------------------- failures: fallback and 502

def test_killed_backend_falls_back(tmp, router_dir, backends, models):
    "A spelling question goes to its own tiny-Llama server until that server is killed, then falls back to SmolLM2"
    from llmroute.serve import make_app
    p, url = llm_server(models['tiny-llama'], tmp, 'tiny-llama-2')
    try:
        wait_healthy(url, p, tmp/'tiny-llama-2.log')
        yml = backends_yaml(tmp/'backends-2.yaml', {'smollm2': backends['smollm2'][1], 'tiny-llama': url}, models)
        with ThreadServer(make_app(router_dir, yml, log=tmp/'log-2.jsonl')) as srv:
            c = client(srv.url)
            r, h = ask(c, spelling(600))
            assert r.model == 'tiny-llama' and 'x-llmroute-fallback' not in h
            stop(p, signal.SIGKILL)
            r, h = ask(c, spelling(601))
            assert r.model == 'smollm2' and h['x-llmroute-model'] == 'smollm2' and h['x-llmroute-fallback'] == 'tiny-llama'
            chunks = list(c.chat.completions.create(model='router', messages=[{'role': 'user', 'content': spelling(602)}],
                                                    max_tokens=MAX_TOKENS, stream=True))
            assert {ch.model for ch in chunks} == {'smollm2'}
        last = json.loads((tmp/'log-2.jsonl').read_text().splitlines()[-1])
        assert (last['chosen'], last['served_by'], last['fallback']) == ('tiny-llama', 'smollm2', ['tiny-llama'])
    finally: stop(p, signal.SIGKILL)

def test_all_backends_failing_is_a_502_naming_each(tmp, router_dir, models):
    "One backend accepts connections but never answers (a timeout), the other refuses them: a 502 naming both"
    from llmroute.serve import make_app
    with socket.socket() as silent:
        silent.bind(('127.0.0.1', 0)); silent.listen(64)
        urls = {'smollm2': f"http://127.0.0.1:{silent.getsockname()[1]}", 'tiny-llama': f"http://127.0.0.1:{free_port()}"}
        yml = backends_yaml(tmp/'backends-dead.yaml', urls, models)
        with ThreadServer(make_app(router_dir, yml, timeout=1.0)) as srv:
            r = httpx.post(f"{srv.url}/v1/chat/completions", json={'model': 'router', 'messages': [{'role': 'user', 'content': spelling(701)}]})
            err = r.json()['error']
            assert r.status_code == 502 and err['code'] == 'backends_failed' and list(err['backends']) == ['tiny-llama', 'smollm2']
            assert 'ConnectError' in err['backends']['tiny-llama'] and err['backends']['smollm2'] == 'timeout: no answer within 1 s'
            with pytest.raises(openai.APIStatusError) as e: ask(client(srv.url), arithmetic(700))
            assert e.value.status_code == 502   # the silent backend is not waited for again: its breaker is open
            assert e.value.body['backends']['smollm2'].startswith('skipped: circuit open')
            assert all(n in err['message'] for n in ('smollm2', 'tiny-llama'))

def test_serve_bad_backends_end_in_one_line(tmp, router_dir):
    yml = tmp/'backends-short.yaml'; yml.write_text("models:\n  smollm2:\n    base_url: http://127.0.0.1:9/v1\n")
    r = cli('serve', '--router', router_dir, '--backends', yml, '--port', free_port(), timeout=120)
    assert r.returncode == 2 and r.stderr.startswith('llmroute serve: error:')
    assert "no backend for the pool models ['tiny-llama']" in r.stderr and 'Traceback' not in r.stderr

def test_static_features_train_and_route_through_the_cli(tmp, outcomes):
    "The distilled static embeddings travel with the saved router: route reads them from its folder"
    out = tmp/'router-static'
    r = cli('train', '--outcomes', outcomes, '--features', 'static', '--policy', 'P1', '--out', out)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out/'featurizer'/'static'/'model.safetensors').exists()
    q = tmp/'queries-static.csv'
    pd.DataFrame({'question': [arithmetic(800), spelling(801)]}).to_csv(q, index=False)
    r = cli('route', '--router', out, '--queries', q, '--out', tmp/'routed-static.jsonl')
    assert r.returncode == 0, r.stderr[-3000:]
    assert [json.loads(l)['model'] for l in (tmp/'routed-static.jsonl').read_text().splitlines()] == ['smollm2', 'tiny-llama']
