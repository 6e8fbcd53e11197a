"""Limits of the inference service against slow, many and oversized clients: a work slot only for a complete
body, a bound on body bytes held, request memory that follows the number of samples (not the JSON text),
repeated JSON keys and query parameters refused, connections capped and their headers timed."""
import asyncio
import json
import socket
import subprocess
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip('fastapi')
pytest.importorskip('onnxruntime')
httpx = pytest.importorskip('httpx')
psutil = pytest.importorskip('psutil')

with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    from fastapi.testclient import TestClient

from lstm_pfd.serve import BodySizeLimit, RecordIn, _parse, create_app

sys.path.insert(0, str(Path(__file__).parent))
from test_serve import L, _mean_model   # noqa: E402  (the hand-checkable mean model)

pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning')
OK = [0.5] * L


@pytest.fixture(scope='module')
def mean_path(tmp_path_factory):
    return _mean_model(tmp_path_factory.mktemp('limits') / 'mean.onnx')


@pytest.fixture(scope='module')
def client(mean_path):
    return TestClient(create_app(mean_path, max_body_bytes=2_000_000, max_batch=4, max_samples=100_000))


# --------------------------------------------------------------------------- a slot only for a whole body

def _upload(mw, chunks, delay, order, tag):
    it = iter(chunks)
    async def receive():
        await asyncio.sleep(delay)
        b = next(it, None)
        return {'type': 'http.request', 'body': b or b'', 'more_body': b is not None}
    sent = []
    async def send(m): sent.append(m)
    async def run():
        n = sum(map(len, chunks))
        await mw({'type': 'http', 'method': 'POST', 'path': '/p', 'headers': [(b'content-length', str(n).encode())]},
                 receive, send)
        order.append((tag, sent[0]['status']))
    return run()


async def _app_ok(scope, receive, send):
    while (await receive()).get('more_body'): pass
    await send({'type': 'http.response.start', 'status': 200, 'headers': []})
    await send({'type': 'http.response.body', 'body': b'ok'})


def test_slow_upload_holds_no_slot():
    "One slot: an upload trickling in over ~0.5 s does not delay a complete request that arrives after it."
    order = []
    mw = BodySizeLimit(_app_ok, 1000, max_inflight=1, max_queue=1, body_timeout_s=30)
    async def both():
        slow = asyncio.ensure_future(_upload(mw, [b's'] * 10, 0.05, order, 'slow'))
        await asyncio.sleep(0.1)   # the slow upload has started (and, on a server that slots on arrival, taken the slot)
        await _upload(mw, [b'f' * 10], 0.0, order, 'fast')
        await slow
    asyncio.run(both())
    assert order == [('fast', 200), ('slow', 200)]


def test_pending_bytes_bound_is_503():
    "A body held by a request at work counts: a second body that would pass max_pending_bytes gets 503 + Retry-After."
    order, starts = [], []
    async def slow_app(scope, receive, send):
        await asyncio.sleep(0.3); await _app_ok(scope, receive, send)
    mw = BodySizeLimit(slow_app, 1000, max_inflight=2, max_queue=2, body_timeout_s=30, max_pending_bytes=100)
    async def both():
        first = asyncio.ensure_future(_upload(mw, [b'a' * 80], 0.0, order, 'first'))
        await asyncio.sleep(0.1)
        await _upload(mw, [b'b' * 40], 0.0, order, 'second')
        await first
    asyncio.run(both())
    assert order == [('second', 503), ('first', 200)]
    assert mw._pending == 0   # every byte counted is given back


# --------------------------------------------------------------------------- duplicates

@pytest.mark.parametrize('body, where', [
    (b'{"samples": %s, "fs": 1000, "fs": 2000}', "'fs'"),
    (b'{"fs": 1000, "samples": %s, "samples": [1, 2]}', "'samples'"),
    (b'{"samples": %s, "fs": 1000, "id": "a", "id": "b"}', "'id'"),
    (b'{"samples": %s, "fs": 1000, "resample": true, "resample": false}', "'resample'"),
])
def test_duplicate_json_keys_refused(client, body, where):
    r = client.post('/predict', content=body % json.dumps(OK).encode(), headers={'content-type': 'application/json'})
    assert r.status_code == 422, r.text
    assert 'duplicate key' in r.json()['detail'] and where in r.json()['detail']


def test_duplicate_keys_in_a_batch_record_refused(client):
    rec = b'{"samples": %s, "fs": 1000, "hop": 256, "hop": 128}' % json.dumps(OK).encode()
    r = client.post('/predict/batch', content=b'{"records": [%s]}' % rec, headers={'content-type': 'application/json'})
    assert r.status_code == 422 and "duplicate key 'hop'" in r.json()['detail']
    r = client.post('/predict/batch', content=b'{"records": [], "records": []}', headers={'content-type': 'application/json'})
    assert r.status_code == 422 and "duplicate key 'records'" in r.json()['detail']


@pytest.mark.parametrize('query', ['?fs=1000&fs=2000', '?fs=1000&hop=256&hop=128', '?fs=1000&id=a&id=a'])
def test_duplicate_query_parameters_refused(client, query):
    x = np.full(L, 0.5, np.float32).tobytes()
    r = client.post('/predict' + query, content=x, headers={'content-type': 'application/octet-stream'})
    assert r.status_code == 422, r.text
    assert 'more than once' in r.json()['detail']


def test_numbers_read_from_json_equal_pythons(client):
    "Samples read by the array reader are Python's own float parse of the text, cast to float32 (by hand: json.loads)."
    rng = np.random.default_rng(3)
    xs = [float(v) for v in rng.standard_normal(2 * L)] + [1e-300, -0.0, 12345678901234567890, 3, 2.5e-8]
    text = json.dumps({'samples': xs, 'fs': 1000})
    _, arrays = _parse(RecordIn, text.encode(), 10_000)
    want = np.array(json.loads(text)['samples'], np.float64)
    assert np.array_equal(arrays[0], want)


# --------------------------------------------------------------------------- memory follows the samples

def _peak(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally: tracemalloc.stop()


def test_json_memory_follows_samples_not_text():
    "2 M samples written as `0,` (4 MB of text): the parse peaks near 8 bytes a sample, not ~32 (one Python float each)."
    n = 2_000_000
    body = b'{"fs": 1000, "samples": [' + b'0,' * (n - 1) + b'0]}'
    peak = _peak(lambda: _parse(RecordIn, body))   # the default max_samples (2**23)
    assert peak < 8 * n + 6 * 2**20, f'{peak / 2**20:.1f} MiB traced for {n} samples'


def test_over_max_samples_refused_before_reading():
    "An array longer than max_samples is counted and refused where it stands, never converted."
    n = 2_000_000
    body = b'{"fs": 1000, "samples": [' + b'0,' * (n - 1) + b'0]}'
    with pytest.raises(ValueError, match='samples: record of 2000000 samples exceeds max_samples = 1000') as e: _parse(RecordIn, body, 1000)
    peak = _peak(lambda: pytest.raises(ValueError, _parse, RecordIn, body, 1000))
    assert peak < 2 * 2**20, f'{peak / 2**20:.1f} MiB traced'


# --------------------------------------------------------------------------- a real server: connections

def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


@pytest.fixture(scope='module')
def server(mean_path, tmp_path_factory):
    "uvicorn with 1 slot, a long body timeout, at most 16 connections and 1 s for headers."
    port = _free_port()
    log = tmp_path_factory.mktemp('srv') / 'server.log'
    code = (f"from lstm_pfd.serve import serve; serve({str(mean_path)!r}, port={port}, log_level='info', max_inflight=1, "
            "max_queue=2, body_timeout_s=20, max_connections=16, header_timeout_s=1.0, keep_alive_s=1.0)")
    with open(log, 'w') as lf:
        proc = subprocess.Popen([sys.executable, '-c', code], stdout=lf, stderr=subprocess.STDOUT)
    base = f'http://127.0.0.1:{port}'
    for _ in range(300):
        try:
            if httpx.get(base + '/health', timeout=1).status_code == 200: break
        except httpx.TransportError:
            if proc.poll() is not None: break
            time.sleep(0.1)
    else:
        proc.kill(); raise RuntimeError(log.read_text()[-2000:])
    if proc.poll() is not None: raise RuntimeError(log.read_text()[-2000:])
    yield dict(base=base, port=port, proc=proc, log=log)
    proc.terminate()
    try: proc.wait(10)
    except subprocess.TimeoutExpired: proc.kill(); proc.wait()
    assert 'Traceback' not in log.read_text()


def _closed_by_server(s: socket.socket, limit_s: float = 30.0) -> bool:
    "True once the server closed `s` (recv gives b'' or a reset); False if still open after `limit_s` (a hang)."
    s.settimeout(limit_s)
    try: return s.recv(65536) == b'' or True
    except ConnectionResetError: return True
    except socket.timeout: return False


def test_stalled_upload_does_not_delay_complete_requests(server):
    "1 slot, 20-s body timeout: while an upload stalls, 4 complete requests in a row are each served (200), not queued behind it."
    head = b'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"sa'
    with socket.create_connection(('127.0.0.1', server['port'])) as stall:
        stall.sendall(head)
        time.sleep(0.3)
        codes = [httpx.post(server['base'] + '/predict', json={'samples': OK, 'fs': 1000}, timeout=60).status_code
                 for _ in range(4)]
    assert codes == [200] * 4


def test_many_half_open_sockets(server):
    "300 sockets that send nothing (or half a request line): the server keeps at most 16 open, closes the rest, logs little, serves on."
    proc = psutil.Process(server['proc'].pid)
    fds_before = proc.num_fds()
    log_before = len(server['log'].read_text().splitlines())
    socks = []
    try:
        for i in range(300):
            s = socket.create_connection(('127.0.0.1', server['port']))
            if i % 3 == 0: s.sendall(b'POST /predict HTTP/1.1\r\nHo')
            socks.append(s)
        time.sleep(0.5)
        assert proc.num_fds() <= fds_before + 16 + 8, (fds_before, proc.num_fds())
        assert all(_closed_by_server(s) for s in socks)   # the over-cap ones at once, the rest after header_timeout_s
    finally:
        for s in socks: s.close()
    new_lines = server['log'].read_text().splitlines()[log_before:]
    assert len(new_lines) < 10, new_lines[:20]
    assert httpx.post(server['base'] + '/predict', json={'samples': OK, 'fs': 1000}, timeout=30).status_code == 200


def test_slow_headers_are_cut(server):
    "Headers trickled one byte per 0.3 s: the connection is closed after header_timeout_s, not held."
    with socket.create_connection(('127.0.0.1', server['port'])) as s:
        closed = False
        for b in b'GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ' + b'a' * 200:
            try: s.sendall(bytes([b]))
            except OSError: closed = True; break
            time.sleep(0.3)
            s.setblocking(False)
            try: closed = s.recv(1024) == b''
            except BlockingIOError: pass
            except ConnectionResetError: closed = True
            s.setblocking(True)
            if closed: break
        assert closed
