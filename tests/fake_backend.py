"""A fake OpenAI-compatible chat backend with a fixed latency and injected faults, for the serving tests and benchmark.

    python tests/fake_backend.py --port P [--latency S] [--mode MODE] [--name NAME]

Plain asyncio (HTTP/1.1 with keep-alive, chunked streams), so that it costs little CPU beside the router it feeds.
Modes, also set while running with `POST /mode {"mode": ..., "latency": ...}`:
- `ok`: a chat completion (or an SSE stream of three chunks and `[DONE]`) after `latency` seconds;
- `hang`: reads the request, never answers;
- `error500`: a 500 whose body echoes the request's Authorization header (a backend that leaks keys);
- `status429`: a 429 with `Retry-After: 30`;
- `garbage`: a 200 whose body is not JSON (a stream whose first event is not JSON);
- `die`: a stream sends one chunk and the connection is cut (non-streaming: cut after the headers).
`GET /stats` says how many chat requests arrived; `GET /health` answers 200.
"""
import argparse, asyncio, json

STATE = {'mode': 'ok', 'latency': 0.0, 'name': 'fake', 'requests': 0}

def _resp(status, body, ctype='application/json', extra=''):
    b = body if isinstance(body, bytes) else body.encode()
    reason = {200: 'OK', 404: 'Not Found', 429: 'Too Many Requests', 500: 'Internal Server Error'}.get(status, 'X')
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: {ctype}\r\ncontent-length: {len(b)}\r\n{extra}\r\n").encode() + b

def completion(model):
    return json.dumps({'id': 'chatcmpl-fake', 'object': 'chat.completion', 'created': 0, 'model': model,
                       'choices': [{'index': 0, 'message': {'role': 'assistant', 'content': f"answer from {STATE['name']}"},
                                    'finish_reason': 'stop'}],
                       'usage': {'prompt_tokens': 5, 'completion_tokens': 3, 'total_tokens': 8}})

def chunk(model, text):
    return 'data: ' + json.dumps({'id': 'chatcmpl-fake', 'object': 'chat.completion.chunk', 'created': 0, 'model': model,
                                  'choices': [{'index': 0, 'delta': {'content': text}, 'finish_reason': None}]}) + '\n\n'

def _chunked(s): b = s.encode(); return f"{len(b):x}\r\n".encode() + b + b"\r\n"

async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b'\r\n\r\n')
            lines = head.decode('latin-1').split('\r\n')
            method, path = lines[0].split(' ')[:2]
            hdr = {k.strip().lower(): v.strip() for k, v in (l.split(':', 1) for l in lines[1:] if ':' in l)}
            body = await reader.readexactly(int(hdr.get('content-length', 0)))
            if path == '/health': writer.write(_resp(200, '{"status": "ok"}'))
            elif path == '/stats': writer.write(_resp(200, json.dumps(STATE)))
            elif path == '/mode':
                STATE.update({k: v for k, v in json.loads(body).items() if k in ('mode', 'latency')})
                writer.write(_resp(200, json.dumps(STATE)))
            elif path.endswith('/chat/completions') and method == 'POST':
                STATE['requests'] += 1
                req = json.loads(body or b'{}'); model, stream, mode = req.get('model', 'x'), bool(req.get('stream')), STATE['mode']
                if STATE['latency']: await asyncio.sleep(STATE['latency'])
                if mode == 'hang': await asyncio.sleep(3600)
                elif mode == 'error500':
                    writer.write(_resp(500, json.dumps({'error': f"upstream failed for request with Authorization: {hdr.get('authorization')}"})))
                elif mode == 'status429':
                    writer.write(_resp(429, '{"error": {"message": "rate limited", "type": "rate_limit"}}', extra='retry-after: 30\r\n'))
                elif mode == 'garbage' and not stream: writer.write(_resp(200, '<html>proxy error</html>'))
                elif mode == 'die' and not stream:
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{\"id\": ")
                    await writer.drain(); writer.transport.abort(); return
                elif not stream: writer.write(_resp(200, completion(model)))
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
                    if mode == 'garbage': writer.write(_chunked('data: <html>proxy error</html>\n\n'))
                    else: writer.write(_chunked(chunk(model, 'ans')))
                    await writer.drain()
                    if mode == 'die': await asyncio.sleep(0.05); writer.transport.abort(); return
                    for t in ('wer', ' here'): writer.write(_chunked(chunk(model, t)))
                    writer.write(_chunked('data: [DONE]\n\n') + b"0\r\n\r\n")
            else: writer.write(_resp(404, '{"error": "not found"}'))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError): pass
    finally:
        try: writer.close()
        except Exception: pass

async def main(port, host):
    srv = await asyncio.start_server(handle, host, port, backlog=2048)
    async with srv: await srv.serve_forever()

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--port', type=int, required=True)
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--latency', type=float, default=0.0)
    ap.add_argument('--mode', default='ok', choices=['ok', 'hang', 'error500', 'status429', 'garbage', 'die'])
    ap.add_argument('--name', default='fake')
    a = ap.parse_args()
    STATE.update(mode=a.mode, latency=a.latency, name=a.name)
    try: asyncio.run(main(a.port, a.host))
    except KeyboardInterrupt: pass
