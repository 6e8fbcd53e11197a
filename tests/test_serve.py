"""HTTP inference service checks (lstm_pfd.serve): every endpoint and bad input with TestClient, a fresh
process that must not import torch, and a real uvicorn server under a bounded concurrent burst."""
import asyncio
import hashlib
import json
import math
import os
import socket
import subprocess
import sys
import textwrap
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip('fastapi')
pytest.importorskip('onnxruntime')
onnx = pytest.importorskip('onnx')
httpx = pytest.importorskip('httpx')

with warnings.catch_warnings():
    warnings.simplefilter('ignore')   # starlette's "use httpx2" deprecation notice
    from fastapi.testclient import TestClient

import lstm_pfd
from lstm_pfd.cli import main
from lstm_pfd.export import write_metadata
from lstm_pfd.predict import Predictor
from lstm_pfd.serve import BodySizeLimit, create_app, serve, file_sha256, _is_loopback

pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning')

L = 256            # analytic model: window length
FS = 1000.0        # analytic model: sampling rate
NAMES = ['zero', 'pos', 'neg']
GAIN = 4.0


def _mean_model(path: Path, window_len=L, fs=FS, gain=GAIN):
    """An ONNX model whose answer is known by hand: logits = [0, gain*m, -gain*m], m = window mean.
    A constant window of value v therefore has probabilities softmax([0, gain*v, -gain*v])."""
    from onnx import TensorProto, helper, numpy_helper
    x = helper.make_tensor_value_info('x', TensorProto.FLOAT, ['batch', 1, window_len])
    y = helper.make_tensor_value_info('logits', TensorProto.FLOAT, ['batch', 3])
    w = numpy_helper.from_array(np.array([[0.0, gain, -gain]], np.float32), 'w')
    nodes = [helper.make_node('ReduceMean', ['x'], ['m3'], axes=[2], keepdims=0),   # [B, 1]
             helper.make_node('MatMul', ['m3', 'w'], ['logits'])]
    g = helper.make_graph(nodes, 'mean_model', [x], [y], initializer=[w])
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid('', 17)])
    proto.ir_version = 8
    write_metadata(proto, dict(class_names=NAMES, fs=fs, window_len=window_len, model_name='mean_model',
                               precision='fp32', lstm_pfd_version=lstm_pfd.__version__))
    onnx.checker.check_model(proto)
    path.write_bytes(proto.SerializeToString())
    return path


def _expected(v: float) -> list[float]:
    "Hand softmax of [0, GAIN*v, -GAIN*v]."
    e = [1.0, math.exp(GAIN * v), math.exp(-GAIN * v)]
    return [a / sum(e) for a in e]


@pytest.fixture(scope='module')
def mean_path(tmp_path_factory):
    return _mean_model(tmp_path_factory.mktemp('serve') / 'mean.onnx')


@pytest.fixture(scope='module')
def client(mean_path):
    app = create_app(mean_path, max_body_bytes=200_000, max_batch=4, max_samples=40_000)
    return TestClient(app)   # raise_server_exceptions=True: any 5xx path raises here


@pytest.fixture(scope='module')
def compact_path(tmp_path_factory):
    torch = pytest.importorskip('torch')
    from lstm_pfd.export import to_onnx
    from lstm_pfd.models import create_model
    p = tmp_path_factory.mktemp('serve_compact') / 'compact.onnx'
    to_onnx(create_model('compact', seed=0), p, window_len=2048, fs=10240.0)   # the default exporter
    return p


def _post(client, url, body):
    "POST a body as JSON text written by Python's json (so NaN/Infinity literals go through as sent)."
    return client.post(url, content=json.dumps(body), headers={'content-type': 'application/json'})


def _const(*values, n=L):
    return np.concatenate([np.full(n, v, np.float32) for v in values]).tolist()


# ---------------------------------------------------------------- GET endpoints

def test_health(client, mean_path):
    r = client.get('/health')
    assert r.status_code == 200
    d = r.json()
    assert d['status'] == 'ok' and d['model_loaded'] is True
    assert d['model_sha256'] == hashlib.sha256(mean_path.read_bytes()).hexdigest()
    assert d['model_bytes'] == mean_path.stat().st_size and d['model_file'] == 'mean.onnx'
    assert d['lstm_pfd_version'] == lstm_pfd.__version__
    assert file_sha256(mean_path) == d['model_sha256']


def test_model_card(client):
    d = client.get('/model').json()
    assert d['class_names'] == NAMES and d['n_classes'] == 3
    assert d['fs'] == FS and d['window_len'] == L and d['window_s'] == L / FS
    c = d['input']
    assert c['min_samples_at_model_fs'] == L and c['fs_max'] == 1e6 and c['fs_min_exclusive'] == 0
    assert (c['max_body_bytes'], c['max_batch'], c['max_samples']) == (200_000, 4, 40_000)
    assert 'resample' in c['resampling'] and 'soft vote' in c['windowing']


def test_openapi_lists_routes(client):
    paths = client.get('/openapi.json').json()['paths']
    assert {'/health', '/model', '/predict', '/predict/batch'} <= set(paths)
    body = paths['/predict/batch']['post']['requestBody']['content']['application/json']['schema']
    rec = body['properties']['records']['items']
    assert 'fs' in rec['required'] and {'samples', 'channels', 'hop'} <= set(rec['properties'])


# ---------------------------------------------------------------- POST /predict: right answers

def test_predict_windows_known_by_hand(client):
    x = _const(1.0, -1.0, 0.0) + [5.0] * 100            # 3 windows, then 100 samples that fill no window
    r = client.post('/predict', json={'samples': x, 'fs': FS, 'id': 'rig-3/ch1'})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d['id'] == 'rig-3/ch1'
    assert [w['label'] for w in d['windows']] == ['pos', 'neg', 'zero']
    assert [w['start'] for w in d['windows']] == [0, L, 2 * L]
    assert (d['n_windows'], d['unused_samples'], d['n_samples'], d['n_samples_model']) == (3, 100, 3 * L + 100, 3 * L + 100)
    assert d['resampled'] is False and d['fs'] == FS and d['model_fs'] == FS and d['hop'] == L
    for w, v in zip(d['windows'], (1.0, -1.0, 0.0)):
        np.testing.assert_allclose(w['probabilities'], _expected(v), atol=1e-6)
    mean = np.mean([_expected(v) for v in (1.0, -1.0, 0.0)], axis=0)
    np.testing.assert_allclose([d['probabilities'][n] for n in NAMES], mean, atol=1e-6)
    # classes 1 and 2 tie exactly in `mean` (softmax of +v and -v averaged): the label is any class at the maximum,
    # compared by value, never by which tied position argmax returns
    assert mean[NAMES.index(d['label'])] == pytest.approx(mean.max(), abs=1e-6)
    assert d['confidence'] == pytest.approx(mean.max(), abs=1e-6)
    assert d['latency_ms'] >= 0


def test_predict_integers_accepted(client):
    d = client.post('/predict', json={'samples': [1] * L, 'fs': int(FS)}).json()
    assert d['label'] == 'pos'
    np.testing.assert_allclose(d['windows'][0]['probabilities'], _expected(1.0), atol=1e-6)


def test_predict_hop(client):
    d = client.post('/predict', json={'samples': _const(1.0, -1.0), 'fs': FS, 'hop': L // 2}).json()
    assert d['n_windows'] == 3 and d['hop'] == L // 2
    assert [w['start'] for w in d['windows']] == [0, L // 2, L]
    assert [w['label'] for w in d['windows']] == ['pos', 'zero', 'neg']   # the middle window straddles +1|-1


def test_predict_resampled_and_says_so(client):
    x = _const(-1.0, n=L)                                  # L samples at FS/2 = 2 windows at FS
    d = client.post('/predict', json={'samples': x, 'fs': FS / 2}).json()
    assert d['resampled'] is True and d['fs'] == FS / 2 and d['model_fs'] == FS
    assert (d['n_samples'], d['n_samples_model'], d['n_windows']) == (L, 2 * L, 2)
    assert d['label'] == 'neg'
    r = client.post('/predict', json={'samples': x, 'fs': FS / 2, 'resample': False})
    assert r.status_code == 422 and r.json()['errors'][0]['loc'] == 'fs'
    assert 'resample' in r.json()['detail'] and '500 Hz' in r.json()['detail']


def test_predict_rate_within_tolerance_not_resampled(client):
    d = client.post('/predict', json={'samples': _const(1.0), 'fs': FS * (1 + 1e-8)}).json()
    assert d['resampled'] is False and d['n_windows'] == 1


def test_predict_parity_with_predictor(compact_path):
    "A real exported model: the service returns what the Predictor gives in-process."
    c = TestClient(create_app(compact_path))
    rng = np.random.default_rng(1)
    ref = Predictor(compact_path)
    for n, fs in ((2048 * 3 + 17, 10240.0), (3000, 5120.0), (8000, 20480.0)):
        x = rng.standard_normal(n).astype(np.float32)
        d = c.post('/predict', json={'samples': x.tolist(), 'fs': fs}).json()
        want = ref.predict(x, fs=fs, resample=fs != 10240.0)
        assert d['label'] == want.label and d['n_windows'] == want.n_windows
        assert d['resampled'] is (fs != 10240.0)
        np.testing.assert_allclose([d['probabilities'][k] for k in ref.class_names], want.probabilities, atol=1e-6)
        np.testing.assert_allclose([w['probabilities'] for w in d['windows']], want.window_probabilities, atol=1e-6)


# ---------------------------------------------------------------- POST /predict: bad input, each a 4xx that says what

OK = _const(0.5)

BAD = [  # (name, body (dict -> json.dumps; bytes -> as is), status, loc, phrase in the message)
    ('empty', {'samples': [], 'fs': FS}, 422, 'samples', 'empty record'),
    ('too short', {'samples': OK[:10], 'fs': FS}, 422, 'samples', 'too short'),
    ('too short after resampling', {'samples': OK[:200], 'fs': 2 * FS}, 422, 'samples', 'at least 512 samples'),
    ('NaN', {'samples': OK[:3] + [float('nan')] + OK[3:], 'fs': FS}, 422, 'samples[3]', 'NaN'),
    ('Infinity', {'samples': OK + [float('inf')], 'fs': FS}, 422, f'samples[{L}]', 'NaN and Infinity'),
    ('-Infinity', {'samples': [float('-inf')] + OK, 'fs': FS}, 422, 'samples[0]', 'Infinity'),
    ('float32 overflow', {'samples': OK[:7] + [1e39] + OK[7:], 'fs': FS}, 422, 'samples[7]', 'float32'),
    ('string sample', {'samples': ['0.5'] + OK, 'fs': FS}, 422, 'samples[0]', 'got a string'),
    ('boolean sample', {'samples': [True] + OK, 'fs': FS}, 422, 'samples[0]', 'got a boolean'),
    ('null sample', {'samples': OK + [None], 'fs': FS}, 422, f'samples[{L}]', 'got null'),
    ('two channels', {'samples': [OK, OK], 'fs': FS}, 422, 'samples[0]', 'flat JSON array'),
    ('samples a string', {'samples': '1,2,3', 'fs': FS}, 422, 'samples', 'expected a JSON array'),
    ('samples missing', {'fs': FS}, 422, 'samples', 'missing'),
    ('fs missing', {'samples': OK}, 422, 'fs', 'missing'),
    ('fs zero', {'samples': OK, 'fs': 0}, 422, 'fs', '0 < fs <= 1000000'),
    ('fs negative', {'samples': OK, 'fs': -FS}, 422, 'fs', 'out of range'),
    ('fs over 1 MHz', {'samples': OK, 'fs': 2e6}, 422, 'fs', 'out of range'),
    ('fs NaN', {'samples': OK, 'fs': float('nan')}, 422, 'fs', 'NaN'),
    ('fs a string', {'samples': OK, 'fs': '1000'}, 422, 'fs', "got '1000'"),
    ('fs a boolean', {'samples': OK, 'fs': True}, 422, 'fs', 'got True'),
    ('fs null', {'samples': OK, 'fs': None}, 422, 'fs', 'got None'),
    ('fs tiny: resampling explodes', {'samples': OK, 'fs': 1.0}, 422, 'fs', 'max_samples'),
    ('record over max_samples', {'samples': [0] * 40_001, 'fs': FS}, 422, 'samples', 'max_samples'),
    ('hop zero', {'samples': OK, 'fs': FS, 'hop': 0}, 422, 'hop', 'positive'),
    ('hop float', {'samples': OK, 'fs': FS, 'hop': 1.5}, 422, 'hop', 'integer'),
    ('hop too small for the budget', {'samples': [0.0] * 2000, 'fs': FS, 'hop': 1}, 422, 'hop', 'larger hop'),
    ('resample a string', {'samples': OK, 'fs': FS, 'resample': 'yes'}, 422, 'resample', 'true or false'),
    ('unknown field', {'samples': OK, 'fs': FS, 'fs_hz': FS}, 422, 'fs_hz', 'unknown field'),
    ('body an array', [OK], 422, 'body', 'JSON object'),
    ('body empty', b'', 422, 'body', 'empty'),
    ('body whitespace', b'  ', 422, 'body', 'empty'),
    ('huge integer', {'samples': [10 ** 400] + OK, 'fs': FS}, 422, 'samples[0]', 'finite'),
    ('not JSON', b'samples=1,2,3', 422, 'body', 'not valid JSON'),
    ('truncated JSON', b'{"samples": [1, 2,', 422, 'body', 'not valid JSON'),
]


@pytest.mark.parametrize('name,body,status,loc,phrase', BAD, ids=[b[0] for b in BAD])
def test_predict_bad_input(client, name, body, status, loc, phrase):
    content = body if isinstance(body, bytes) else json.dumps(body)
    r = client.post('/predict', content=content, headers={'content-type': 'application/json'})
    assert r.status_code == status, r.text
    d = r.json()
    assert d['errors'] and d['errors'][0]['loc'] == loc, d
    assert phrase in d['detail'], d['detail']
    assert len(r.content) < 5000   # the rejected samples are not echoed back


def test_model_output_not_finite_is_422(client):
    "Finite float32 samples that overflow inside the model: refused with a message, not a 500 or NaN probabilities."
    r = client.post('/predict', json={'samples': [3e38] * L, 'fs': FS})
    assert r.status_code == 422 and 'not finite' in r.json()['detail']


@pytest.mark.parametrize('ct', ['text/plain', 'application/x-www-form-urlencoded', None])
def test_wrong_content_type(client, ct):
    headers = {'content-type': ct} if ct else {}
    for url in ('/predict', '/predict/batch'):
        r = client.post(url, content=json.dumps({'samples': OK, 'fs': FS}), headers=headers)
        assert r.status_code == 415 and 'Content-Type: application/json' in r.json()['detail'], r.text
    r = client.post('/predict', content=json.dumps({'samples': OK, 'fs': FS}),
                    headers={'content-type': 'application/json; charset=utf-8'})
    assert r.status_code == 200


def test_many_errors_are_capped(client):
    r = _post(client, '/predict', {'samples': [float('nan')] * 500, 'fs': FS})
    d = r.json()
    assert r.status_code == 422 and len(d['errors']) == 20 and 'and 497 more errors' in d['detail']


def test_unknown_route_and_method(client):
    assert client.get('/nope').status_code == 404
    assert client.get('/predict').status_code == 405


# ---------------------------------------------------------------- body size limit (413, before parsing)

def test_body_over_limit_by_content_length(client):
    body = json.dumps({'samples': [0.123456789] * 20_000, 'fs': FS})
    assert len(body) > 200_000
    r = client.post('/predict', content=body, headers={'content-type': 'application/json'})
    assert r.status_code == 413 and 'Content-Length' in r.json()['detail'] and '200000' in r.json()['detail']


def test_body_over_limit_streamed(client):
    "A chunked upload has no Content-Length: the streamed size is counted."
    def chunks():
        for _ in range(10): yield b' ' * 30_000
    r = client.post('/predict', content=chunks(), headers={'content-type': 'application/json'})
    assert r.status_code == 413 and 'streamed' in r.json()['detail']


def test_body_streamed_under_limit_passes(client):
    def chunks():
        s = json.dumps({'samples': _const(1.0), 'fs': FS}).encode()
        for i in range(0, len(s), 1000): yield s[i:i + 1000]
    r = client.post('/predict', content=chunks(), headers={'content-type': 'application/json'})
    assert r.status_code == 200 and r.json()['label'] == 'pos'


def _asgi_call(mw, headers, chunks):
    "Drive the middleware with a fake ASGI exchange; return (status, body, app_called)."
    sent, called, it = [], [], iter(chunks)
    async def app(scope, receive, send):
        called.append(True)
        await send({'type': 'http.response.start', 'status': 200, 'headers': []})
        await send({'type': 'http.response.body', 'body': b'ok'})
    async def receive():
        try: return {'type': 'http.request', 'body': next(it), 'more_body': True}
        except StopIteration: return {'type': 'http.request', 'body': b'', 'more_body': False}
    async def send(msg): sent.append(msg)
    scope = {'type': 'http', 'method': 'POST', 'path': '/predict', 'headers': headers}
    asyncio.run(BodySizeLimit(app, max_body_bytes=100)(scope, receive, send))
    return sent[0]['status'], b''.join(m.get('body', b'') for m in sent[1:]), bool(called)


def test_middleware_bad_and_lying_content_length():
    status, body, called = _asgi_call(None, [(b'content-length', b'abc')], [])
    assert status == 400 and b'Content-Length' in body and not called
    status, body, called = _asgi_call(None, [(b'content-length', b'-5')], [])
    assert status == 400 and not called
    # claims 50 bytes, streams 150: refused once the count passes the limit
    status, body, called = _asgi_call(None, [(b'content-length', b'50')], [b'x' * 60, b'x' * 90])
    assert status == 413 and not called
    status, body, called = _asgi_call(None, [(b'content-length', b'99')], [b'x' * 99])
    assert status == 200 and called


# ---------------------------------------------------------------- POST /predict/batch

def test_batch_in_order(client):
    recs = [{'samples': _const(1.0), 'fs': FS, 'id': 'a'},
            {'samples': _const(-1.0, n=L), 'fs': FS / 2, 'id': 'b'},
            {'samples': _const(0.0, 1.0), 'fs': FS}]
    r = client.post('/predict/batch', json={'records': recs})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d['n_records'] == 3
    assert [(x['id'], x['label'], x['resampled'], x['n_windows']) for x in d['results']] == \
        [('a', 'pos', False, 1), ('b', 'neg', True, 2), (None, 'pos', False, 2)]
    np.testing.assert_allclose(d['results'][0]['windows'][0]['probabilities'], _expected(1.0), atol=1e-6)


def test_batch_names_failing_records(client):
    recs = [{'samples': OK, 'fs': FS}, {'samples': OK[:5], 'fs': FS}, {'samples': OK, 'fs': FS},
            {'samples': OK[:2] + [float('nan')] + OK, 'fs': FS}]
    r = _post(client, '/predict/batch', {'records': recs})
    assert r.status_code == 422
    errs = r.json()['errors']
    assert [e['record'] for e in errs] == [3]            # schema errors are reported first, before model checks
    assert errs[0]['loc'] == 'records[3].samples[2]'
    recs[3] = {'samples': OK, 'fs': -1}
    recs[2] = {'samples': OK, 'fs': FS, 'hop': 0}
    errs = _post(client, '/predict/batch', {'records': recs}).json()['errors']
    assert sorted((e['record'], e['loc']) for e in errs) == [(2, 'records[2].hop'), (3, 'records[3].fs')]
    recs[2] = recs[3] = {'samples': OK, 'fs': FS}
    r = _post(client, '/predict/batch', {'records': recs})
    d = r.json()
    assert r.status_code == 422 and [e['record'] for e in d['errors']] == [1]
    assert d['errors'][0]['loc'] == 'records[1].samples' and '1 of 4 records' in d['detail']


@pytest.mark.parametrize('body,phrase', [
    ({'records': []}, 'empty'),
    ({'records': [{'samples': OK, 'fs': FS}] * 5}, 'max_batch = 4'),
    ({}, 'missing'),
    ({'records': {'samples': OK, 'fs': FS}}, 'JSON array'),
    ({'records': [{'samples': [0] * 15_000, 'fs': FS}] * 3}, 'max_samples'),
])
def test_batch_bad(client, body, phrase):
    r = _post(client, '/predict/batch', body)
    assert r.status_code == 422 and phrase in r.json()['detail'], r.text


# ---------------------------------------------------------------- configuration and entry points

def test_create_app_checks(tmp_path, mean_path):
    with pytest.raises(FileNotFoundError, match='not found'): create_app(tmp_path / 'missing.onnx')
    for k in ('max_body_bytes', 'max_batch', 'max_samples'):
        with pytest.raises(ValueError, match=k): create_app(mean_path, **{k: 0})
    bad = tmp_path / 'bad.onnx'; bad.write_bytes(b'not an onnx file')
    with pytest.raises(Exception): create_app(bad)


def test_serve_checks(mean_path, tmp_path):
    with pytest.raises(ValueError, match='port'): serve(mean_path, port=70000)
    assert main(['serve', str(tmp_path / 'missing.onnx')]) == 2   # `lstm-pfd serve` refuses a missing model
    assert _is_loopback('127.0.0.1') and _is_loopback('::1') and _is_loopback('localhost')
    assert not _is_loopback('0.0.0.0') and not _is_loopback('10.0.0.2')


def test_service_process_never_imports_torch(compact_path):
    code = textwrap.dedent(f"""
        import sys, warnings, json
        warnings.simplefilter('ignore')
        import numpy as np
        from lstm_pfd.serve import create_app
        from fastapi.testclient import TestClient
        c = TestClient(create_app({str(compact_path)!r}))
        r = c.post('/predict', json={{'samples': np.zeros(5000).tolist(), 'fs': 5120.0}})
        assert r.status_code == 200, r.text
        assert r.json()['resampled'] is True
        assert c.get('/health').json()['model_loaded']
        print(json.dumps({{'torch': 'torch' in sys.modules}}))
    """)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {'torch': False}


# ---------------------------------------------------------------- a real server under a concurrent burst

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _start_server(model_path, log_path, max_body_bytes):
    "uvicorn in a subprocess on 127.0.0.1; retries on a port taken between picking and binding."
    for _ in range(3):
        port = _free_port()
        code = (f"from lstm_pfd.serve import serve; serve({str(model_path)!r}, host='127.0.0.1', port={port}, "
                f"max_body_bytes={max_body_bytes}, log_level='warning')")
        log = open(log_path, 'ab')
        proc = subprocess.Popen([sys.executable, '-c', code], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f'http://127.0.0.1:{port}/health', timeout=1).status_code == 200:
                    return proc, port, log
            except httpx.TransportError: time.sleep(0.2)
        proc.kill(); proc.wait(); log.close()
    raise RuntimeError(f"the server did not start; log:\n{Path(log_path).read_text()[-3000:]}")


def test_real_server_burst(compact_path, tmp_path):
    ref = Predictor(compact_path)
    rng = np.random.default_rng(7)
    records = [(rng.standard_normal(n).astype(np.float32), fs)
               for n, fs in ((2048, 10240.0), (2048 * 4 + 100, 10240.0), (3000, 5120.0), (6000, 20480.0))]
    expected = [ref.predict(x, fs=fs, resample=fs != ref.fs) for x, fs in records]
    bodies = [json.dumps({'samples': x.tolist(), 'fs': fs, 'id': str(i)}) for i, (x, fs) in enumerate(records)]
    bad = json.dumps({'samples': [0.1, float('nan')] * 2048, 'fs': 10240.0})
    n_req, n_threads = 200, 8
    plan = ['bad' if i % 10 == 9 else i % len(records) for i in range(n_req)]   # 10 % invalid requests mixed in

    proc, port, log = _start_server(compact_path, tmp_path / 'server.log', max_body_bytes=1_000_000)
    base = f'http://127.0.0.1:{port}'
    try:
        def worker(chunk):
            out = []
            with httpx.Client(base_url=base, timeout=60, headers={'content-type': 'application/json'}) as c:
                for kind in chunk:
                    t0 = time.perf_counter()
                    r = c.post('/predict', content=bad if kind == 'bad' else bodies[kind])
                    out.append((kind, r.status_code, r.json(), time.perf_counter() - t0))
            return out
        chunks = [plan[i::n_threads] for i in range(n_threads)]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(n_threads) as ex:
            results = [r for part in ex.map(worker, chunks) for r in part]
        wall = time.perf_counter() - t0

        assert len(results) == n_req
        for kind, status, d, _ in results:
            if kind == 'bad':
                assert status == 422 and d['errors'][0]['loc'] == 'samples[1]', d
                continue
            assert status == 200, d
            want = expected[kind]
            assert d['id'] == str(kind) and d['label'] == want.label and d['n_windows'] == want.n_windows
            np.testing.assert_allclose([d['probabilities'][k] for k in ref.class_names], want.probabilities, atol=1e-6)
        # oversized body on a real socket: 413, and the server keeps serving
        big = json.dumps({'samples': [0.123456789] * 100_000, 'fs': 10240.0})
        try:
            r = httpx.post(base + '/predict', content=big, headers={'content-type': 'application/json'}, timeout=30)
            assert r.status_code == 413, r.text
            print('\noversized body on a real socket: 413')
        except httpx.TransportError as e:   # the server may close before the client has written everything
            print(f'\noversized body on a real socket: connection closed by the server ({type(e).__name__})')
        assert proc.poll() is None, 'the server process died'
        h = httpx.get(base + '/health', timeout=10).json()
        assert h['status'] == 'ok' and h['model_sha256'] == file_sha256(compact_path)

        lat = np.array([r[3] for r in results]) * 1e3
        srv = np.array([r[2]['latency_ms'] for r in results if r[0] != 'bad'])
        print(f"\nreal server burst: {n_req} requests ({plan.count('bad')} invalid) from {n_threads} threads in "
              f"{wall:.2f} s = {n_req / wall:.0f} req/s; client latency ms p50 {np.percentile(lat, 50):.1f} "
              f"p90 {np.percentile(lat, 90):.1f} p99 {np.percentile(lat, 99):.1f} max {lat.max():.1f}; "
              f"server-side ms p50 {np.percentile(srv, 50):.2f} p99 {np.percentile(srv, 99):.2f}")
    finally:
        proc.terminate()
        try: proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill(); proc.wait()
        log.close()
    logtext = (tmp_path / 'server.log').read_text()
    assert 'Traceback' not in logtext, logtext[-3000:]


def test_unexpected_error_is_500_json_and_service_survives(mean_path):
    "A bug path (simulated) answers a JSON 500 naming it a bug; the next request is served normally."
    app = create_app(mean_path)
    svc = app.state.service
    c = TestClient(app, raise_server_exceptions=False)
    real = svc.predictor.predict_windows
    svc.predictor.predict_windows = lambda *a, **k: (_ for _ in ()).throw(RuntimeError('simulated'))
    try:
        r = c.post('/predict', json={'samples': OK, 'fs': FS})
        assert r.status_code == 500 and 'bug' in r.json()['detail'] and 'RuntimeError' in r.json()['detail']
    finally:
        svc.predictor.predict_windows = real
    assert c.post('/predict', json={'samples': OK, 'fs': FS}).status_code == 200
