"""Serving benchmark, reported as ratios measured in one run (never a timed test).

`load` (the router server under load): fake OpenAI-compatible backends of fixed latency (`tests/fake_backend.py`),
driven the same way directly and through `llmroute serve` (a KNN router on TF-IDF features of RouterDC's GSM8K,
safe policy; a toy table without the data folder):
- end-to-end p50/p99 at 100 and 300 concurrent clients (closed loop), through the router and direct, their ratio,
  and the router's own `routing_ms` p50/p99 from its log; goals on 2 cores: p50 at 300 concurrent within 1.2x of
  direct, routing p99 under 20 ms at 100 concurrent;
- throughput (requests/s) of a fast backend, direct and through the router with 1 and 2 workers;
- a hung backend (accepts, never answers) chosen for every request: the time each of 6 sequential requests takes
  to fall back to a live backend; the goal: at most one read timeout per breaker cool-down.
`features`: the router's own cost per request for each featurizer (TF-IDF, MiniLM, distilled static embeddings),
and what each costs in routing accuracy on RouterDC's GSM8K and MMLU (`llmroute.router_folder.featurizer_accuracy`).

Run: `python bench/bench_serve.py [--parts load features] [--serve-module FILE] [--out results.json]`.
`--serve-module` loads another copy of `llmroute/serve.py` (e.g. the previous version) to measure it the same way;
the routers are trained with the installed `llmroute.router_folder`.
"""
from __future__ import annotations
import argparse, asyncio, importlib.util, inspect, json, os, platform, re, signal, socket, subprocess, sys, tempfile, time, warnings
from pathlib import Path
import numpy as np, pandas as pd

ROOT = Path(__file__).resolve().parents[1]
FAKE = ROOT/'tests'/'fake_backend.py'
FASTEST_LLM_S = 0.7   # the paper's fastest LLM, seconds per GSM8K query
GOAL_SHARE = 0.005    # routing should cost at most 0.5% of it (3.5 ms)

# ------------------------------------------------------------------ helpers

def load_serve(path=None):
    "llmroute.serve, or the module in file `path` (its relative imports read from the installed llmroute)"
    if path is None:
        import llmroute.serve as m; return m
    src = re.sub(r'^from \.(\w+) import', r'from llmroute.\1 import', Path(path).read_text(), flags=re.M)
    spec = importlib.util.spec_from_loader('llmroute_serve_bench', loader=None)
    m = importlib.util.module_from_spec(spec); sys.modules[spec.name] = m
    exec(compile(src, str(path), 'exec'), m.__dict__)
    return m

def free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def wait_up(url, proc, timeout=120):
    import httpx
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None: raise RuntimeError(f"{url} exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200: return
        except httpx.HTTPError: pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")

class Proc:
    "A subprocess in its own session, stopped with SIGTERM (then SIGKILL)"
    def __init__(self, cmd, log): self.p = subprocess.Popen(cmd, stdout=open(log, 'w'), stderr=subprocess.STDOUT, start_new_session=True)
    def stop(self):
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGTERM)
            try: self.p.wait(20)
            except subprocess.TimeoutExpired: os.killpg(self.p.pid, signal.SIGKILL); self.p.wait(5)

def fake(tmp, latency, mode='ok', name='fake'):
    port = free_port()
    p = Proc([sys.executable, str(FAKE), '--port', str(port), '--latency', str(latency), '--mode', mode, '--name', name], tmp/f'fake-{port}.log')
    url = f"http://127.0.0.1:{port}"; wait_up(url, p.p)
    return p, url

def router_proc(tmp, module, router, backends, log, workers=1, timeout=None):
    port = free_port()
    args = [sys.executable, __file__, '_serve', '--router', str(router), '--backends', str(backends), '--port', str(port),
            '--log', str(log), '--workers', str(workers)]
    if module: args += ['--serve-module', str(module)]
    if timeout: args += ['--timeout', str(timeout)]
    p = Proc(args, tmp/f'router-{port}.out'); url = f"http://127.0.0.1:{port}"; wait_up(url, p.p)
    return p, url

def _serve_main(argv):
    "Run a router server from `--serve-module` (or llmroute.serve) with the options that module's `serve` takes"
    ap = argparse.ArgumentParser()
    for k in ('--router', '--backends', '--log', '--serve-module'): ap.add_argument(k)
    ap.add_argument('--port', type=int); ap.add_argument('--workers', type=int, default=1); ap.add_argument('--timeout', type=float)
    a = ap.parse_args(argv)
    m = load_serve(a.serve_module)
    kw = dict(port=a.port, log=a.log)
    params = inspect.signature(m.serve).parameters
    if a.workers > 1:
        if 'workers' not in params: sys.exit(f"this serve() has no workers")
        kw['workers'] = a.workers
    if a.timeout: kw['timeout'] = a.timeout
    m.serve(a.router, a.backends, **kw)

def backends_yaml(path, models, url, special=None):
    special = special or {}
    path.write_text("models:\n" + "".join(f"  {json.dumps(m)}:\n    base_url: {special.get(m, url)}/v1\n" for m in models))
    return path

async def _post(reader, writer, host, body:bytes):
    "One POST on a kept-alive connection: the status (the body is read and dropped)"
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: " + host.encode() + b"\r\ncontent-type: application/json\r\n"
                 b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    await writer.drain()
    head = (await reader.readuntil(b'\r\n\r\n')).decode('latin-1').lower()
    status = int(head.split(' ', 2)[1])
    m = re.search(r'content-length:\s*(\d+)', head)
    if m: await reader.readexactly(int(m.group(1)))
    elif 'chunked' in head:
        while True:
            n = int((await reader.readuntil(b'\r\n')).strip().split(b';')[0], 16)
            await reader.readexactly(n + 2)
            if n == 0: break
    return status

async def closed_loop(url, texts, conc, rounds=None, duration=None, model='router'):
    """conc clients, each on its own kept-alive connection sending its requests one after the other: (latencies s,
    statuses, wall s). A bare asyncio client: httpx's pool costs milliseconds a request at hundreds of connections,
    which would measure the load generator rather than the server."""
    lat, st = [], []
    host, port = url.split('//')[1].split(':'); port = int(port)
    t_end = None if duration is None else time.perf_counter() + duration
    async def one(i):
        k, conn = 0, None
        while (rounds is not None and k < rounds) or (t_end is not None and time.perf_counter() < t_end):
            body = json.dumps({'model': model, 'messages': [{'role': 'user', 'content': texts[(i + k*conc) % len(texts)]}],
                               'max_tokens': 4}).encode()
            t0 = time.perf_counter()
            try:
                if conn is None: conn = await asyncio.open_connection(host, port)
                st.append(await _post(*conn, f"{host}:{port}", body))
            except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                st.append(type(e).__name__)
                if conn is not None: conn[1].close(); conn = None
            lat.append(time.perf_counter() - t0); k += 1
        if conn is not None: conn[1].close()
    t0 = time.perf_counter()
    await asyncio.gather(*[one(i) for i in range(conc)])
    return np.array(lat), st, time.perf_counter() - t0

def pct(a, q): return float(np.percentile(a, q)) if len(a) else float('nan')

def routing_ms(log):
    recs = [json.loads(l) for l in Path(log).read_text().splitlines() if l.strip()] if Path(log).exists() else []
    return np.array([r['routing_ms'] for r in recs if r.get('routing_ms') is not None])

def bench_router(tmp, m):
    "A router folder trained with module m: KNN on TF-IDF of RouterDC GSM8K (safe), or a toy table; and test questions"
    try:
        from llmroute.core import data_dir
        from llmroute.importers import import_routerdc
        from llmroute.reproduce import ROUTERDC_FILES
        rdc = data_dir(required=True)/'routerdc'
        ot = import_routerdc([rdc/f for f in ROUTERDC_FILES['gsm8k']])
        texts, what = ot.questions('test').tolist(), 'RouterDC GSM8K'
    except Exception:
        rows = [dict(query_id=f"q{i}", question=f"What is {i} plus {i+7}?" if i % 2 else f"Spell word {i} backwards",
                     model=mm, score=float((i % 2) == (mm == 'a'))) for i in range(200) for mm in ('a', 'b')]
        ot = tmp/'toy.csv'; pd.DataFrame(rows).to_csv(ot, index=False)
        texts, what = [r['question'] for r in rows[::2]], 'a toy table'
    out = tmp/'router'
    from llmroute.router_folder import train_router
    sr = train_router(ot, out, router='knn', features='tfidf', policy='safe', val_from='test')
    return out, sr, texts, what

# ------------------------------------------------------------------ the load benchmark

def bench_load(a):
    warnings.filterwarnings('ignore')
    m = load_serve(a.serve_module)
    tmp = Path(tempfile.mkdtemp(prefix='bench-serve-'))
    router, sr, texts, what = bench_router(tmp, m)
    print(f"load benchmark of {a.serve_module or 'llmroute/serve.py'}: router knn/tfidf/safe on {what}; "
          f"{len(sr.models)} pool models, all on one fake backend", flush=True)
    procs, rows = [], []
    try:
        # 1. overhead at 100 and 300 concurrent, backend latency a.latency
        p, url = fake(tmp, a.latency); procs.append(p)
        yml = backends_yaml(tmp/'backends.yaml', sr.models, url)
        for conc in a.concurrency:
            d_lat, d_st, _ = asyncio.run(closed_loop(url, texts, conc, rounds=a.rounds, model=sr.models[0]))
            log = tmp/f'log-{conc}.jsonl'
            rp, rurl = router_proc(tmp, a.serve_module, router, yml, log)
            asyncio.run(closed_loop(rurl, texts, 8, rounds=2))                 # warm up
            log.write_text('')
            r_lat, r_st, _ = asyncio.run(closed_loop(rurl, texts, conc, rounds=a.rounds))
            rp.stop()
            rm = routing_ms(log)
            rows.append(dict(test=f'{conc} concurrent, backend {a.latency:g} s', direct_p50_s=pct(d_lat, 50), direct_p99_s=pct(d_lat, 99),
                             router_p50_s=pct(r_lat, 50), router_p99_s=pct(r_lat, 99),
                             ratio_p50=pct(r_lat, 50)/pct(d_lat, 50), ratio_p99=pct(r_lat, 99)/pct(d_lat, 99),
                             overhead_p50_ms=1e3*(pct(r_lat, 50) - pct(d_lat, 50)), overhead_p99_ms=1e3*(pct(r_lat, 99) - pct(d_lat, 99)),
                             routing_p50_ms=pct(rm, 50), routing_p99_ms=pct(rm, 99),
                             ok=f"{sum(s == 200 for s in r_st)}/{len(r_st)}"))
            print(rows[-1], flush=True)
        p.stop(); procs.remove(p)
        # 2. throughput of a fast backend
        p, url = fake(tmp, a.fast_latency); procs.append(p)
        yml = backends_yaml(tmp/'backends-fast.yaml', sr.models, url)
        tp = {}
        lat, st, wall = asyncio.run(closed_loop(url, texts, a.tp_concurrency, duration=a.duration, model=sr.models[0]))
        tp['direct'] = len(lat)/wall
        for w in (1, 2):
            try: rp, rurl = router_proc(tmp, a.serve_module, router, yml, tmp/f'log-tp{w}.jsonl', workers=w)
            except RuntimeError as e: tp[f'router_{w}w'] = float('nan'); print(f"workers={w}: {e}"); continue
            asyncio.run(closed_loop(rurl, texts, 8, rounds=2))
            lat, st, wall = asyncio.run(closed_loop(rurl, texts, a.tp_concurrency, duration=a.duration))
            rp.stop()
            tp[f'router_{w}w'] = len(lat)/wall
            tp[f'router_{w}w_ok'] = f"{sum(s == 200 for s in st)}/{len(st)}"
        print(tp, flush=True)
        # 3. a hung backend chosen for every request
        hp, hurl = fake(tmp, 0, mode='hang'); procs.append(hp)
        ch = [r['model'] for r in sr.route(texts[:200])]
        hung = max(set(ch), key=ch.count)
        qs = [t for t, c in zip(texts[:200], ch) if c == hung]
        yml = backends_yaml(tmp/'backends-hung.yaml', sr.models, url, {hung: hurl})
        rp, rurl = router_proc(tmp, a.serve_module, router, yml, tmp/'log-hung.jsonl', timeout=a.hang_timeout)
        hung_s = [float(asyncio.run(closed_loop(rurl, [q], 1, rounds=1))[0][0]) for q in qs[:6]]
        rp.stop()
        print({'hung_backend_s': hung_s}, flush=True)
    finally:
        for p in procs: p.stop()
    df = pd.DataFrame(rows)
    print(f"\nRouter server under load ({what}; fake backends on loopback; {os.cpu_count()} CPUs; "
          f"{a.rounds} requests per client):")
    with pd.option_context('display.width', 250, 'display.max_columns', 30):
        print(df.round(3).to_string(index=False))
    print(f"\nThroughput, backend {a.fast_latency:g} s, {a.tp_concurrency} clients for {a.duration:g} s: direct {tp['direct']:.0f} req/s; "
          f"router 1 worker {tp['router_1w']:.0f} req/s ({tp['router_1w']/tp['direct']:.2f}x of direct); "
          f"2 workers {tp['router_2w']:.0f} req/s ({tp['router_2w']/tp['direct']:.2f}x)")
    print(f"Hung backend ({hung} never answers; read timeout {a.hang_timeout:g} s): seconds to fall back, request by request: "
          + ", ".join(f"{s:.2f}" for s in hung_s))
    return dict(overhead=rows, throughput=tp, hung_backend_s=hung_s, hang_timeout_s=a.hang_timeout)

# ------------------------------------------------------------------ the featurizer benchmark

def routerdc(ds):
    from llmroute.core import data_dir
    from llmroute.importers import import_routerdc
    from llmroute.reproduce import ROUTERDC_FILES
    rdc = data_dir(required=True)/'routerdc'
    return import_routerdc([rdc/f for f in ROUTERDC_FILES[ds]])

def per_request_ms(sr, questions, warmup=10):
    "ms of `sr.route([q])` for each question: one request's features and decision"
    for q in questions[:warmup]: sr.route([q])
    out = []
    for q in questions:
        t0 = time.perf_counter(); sr.route([q]); out.append(1e3*(time.perf_counter() - t0))
    return np.array(out)

def bench_features(a):
    warnings.filterwarnings('ignore')
    from llmroute.recipe import FEATURES, default_routers
    from llmroute.router_folder import featurizer_accuracy, train_router
    routers = a.routers
    if routers is None:
        routers = ['knn'] + [r for r in list(default_routers())[:1] if r != 'knn']   # the study's first router: its classifier
    gsm = routerdc('gsm8k')
    qs = gsm.questions('test').tolist()[:a.n]
    rows = []
    for f in FEATURES:
        for rn in routers:
            t0 = time.perf_counter()
            sr = train_router(gsm, None, rn, f, 'safe', val_from='test')
            fit_s = time.perf_counter() - t0
            ms = per_request_ms(sr, qs)
            p50, p99 = np.percentile(ms, 50), np.percentile(ms, 99)
            rows.append(dict(features=f, router=f"{rn}/safe", p50_ms=p50, p99_ms=p99, mean_ms=ms.mean(),
                             p50_share_pct=100*p50/1e3/FASTEST_LLM_S, p99_share_pct=100*p99/1e3/FASTEST_LLM_S,
                             meets_goal_p50=bool(p50 <= 1e3*GOAL_SHARE*FASTEST_LLM_S), train_s=fit_s))
    df = pd.DataFrame(rows)
    print(f"\nRouter cost per request on RouterDC GSM8K test questions ({len(qs)} requests of one question each; "
          f"routers fitted on train, policy tuned on val); goal: p50 <= {1e3*GOAL_SHARE*FASTEST_LLM_S:.1f} ms "
          f"({100*GOAL_SHARE:.1f}% of the fastest LLM's {FASTEST_LLM_S} s)")
    with pd.option_context('display.width', 200, 'display.max_columns', 20):
        print(df.round(3).to_string(index=False))
    acc = None
    if not a.no_accuracy:
        t0 = time.perf_counter()
        acc = featurizer_accuracy({'gsm8k': gsm, 'mmlu': routerdc('mmlu')}, routers=routers)
        wide = acc.pivot_table(index=['dataset', 'router'], columns='features', values='accuracy')[list(FEATURES)].join(
            acc.groupby(['dataset', 'router'])[['best_single', 'oracle']].first())
        print(f"\nTest accuracy (%) by featurizer (safe policy and plain argmax P1; validation from test, as make study; {time.perf_counter() - t0:.0f} s):")
        print(wide.to_string())
    return dict(overhead=df.to_dict('records'), accuracy=None if acc is None else acc.to_dict('records'))

def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['_serve']: return _serve_main(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--parts', nargs='+', default=['load', 'features'], choices=['load', 'features'])
    ap.add_argument('--serve-module', default=None, help='measure this copy of llmroute/serve.py instead of the installed one')
    ap.add_argument('--latency', type=float, default=1.0, help='the fake backend latency of the overhead test (s)')
    ap.add_argument('--concurrency', type=int, nargs='+', default=[100, 300])
    ap.add_argument('--rounds', type=int, default=3, help='requests per client in the overhead test')
    ap.add_argument('--fast-latency', type=float, default=0.01, help='the fake backend latency of the throughput test (s)')
    ap.add_argument('--tp-concurrency', type=int, default=64)
    ap.add_argument('--duration', type=float, default=8.0, help='seconds of the throughput test')
    ap.add_argument('--hang-timeout', type=float, default=3.0, help="the router's read timeout in the hung-backend test (s)")
    ap.add_argument('--n', type=int, default=300, help='features: single-question requests timed per featurizer')
    ap.add_argument('--routers', nargs='+', default=None, help="features: router names (default: knn and the study's classifier)")
    ap.add_argument('--no-accuracy', action='store_true', help='features: skip the accuracy table (minutes the first time)')
    ap.add_argument('--out', help='also write the results as JSON here')
    a = ap.parse_args(argv)
    env = dict(machine=platform.machine(), cpus=os.cpu_count(), omp_num_threads=os.environ.get('OMP_NUM_THREADS'),
               python=platform.python_version(), load_avg=os.getloadavg() if hasattr(os, 'getloadavg') else None)
    print(f"Environment: {env}", flush=True)
    res = {'env': env}
    if 'load' in a.parts: res['load'] = bench_load(a)
    if 'features' in a.parts: res['features'] = bench_features(a)
    if a.out:
        from llmroute.core import write_json
        write_json(a.out, res)
    return res

if __name__ == '__main__': main()
