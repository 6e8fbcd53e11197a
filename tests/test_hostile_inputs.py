"""More hostile inputs: JSON bodies aimed at the service's array reader and duplicate checks, raw float32
queries, and recording files (HDF5 that reads other files, pickles, cut or odd files) for `read_recording`.

Every probe ends in a 4xx with a bounded message (HTTP), a typed one-line error (files), or an answer equal
to one computed by hand (the mean model: a window's class follows the sign of its mean). A probe that runs
code touches a flag file, which must never appear; every request has a timeout (a hang fails the probe).
"""
import io
import json
import os
import pickle
import sys
import warnings
import wave
from pathlib import Path

import h5py
import numpy as np
import pytest

pytest.importorskip('fastapi')
pytest.importorskip('onnxruntime')
pytest.importorskip('onnx')
with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    from fastapi.testclient import TestClient

from lstm_pfd.data import read_recording
from lstm_pfd.serve import create_app

sys.path.insert(0, str(Path(__file__).parent))
from test_serve import L, _mean_model   # noqa: E402

pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning')
MAX_MESSAGE = 1500
FLAG = Path(os.environ.get('TMPDIR', '/tmp')) / f'lstm_pfd_hostile_flag_{os.getpid()}'
OK = json.dumps([0.5] * L)


class _Evil:
    def __reduce__(self): return (os.system, (f'touch {FLAG}',))


@pytest.fixture(scope='module')
def client(tmp_path_factory):
    p = _mean_model(tmp_path_factory.mktemp('hostile_inputs') / 'mean.onnx')
    with TestClient(create_app(p, max_body_bytes=400_000, max_batch=4, max_samples=20_000), raise_server_exceptions=False) as c:
        yield c
    assert not FLAG.exists(), 'a probe ran code'


def _j(s: str) -> bytes: return s.replace('OK', OK).encode()


# (body, status, words in the detail)
JSON_PROBES = {
    'duplicate fs': (_j('{"samples": OK, "fs": 1000, "fs": 1000}'), 422, "duplicate key 'fs'"),
    'duplicate samples, same value': (_j('{"samples": OK, "samples": OK, "fs": 1000}'), 422, "duplicate key 'samples'"),
    'duplicate key, other spelling': (_j('{"samples": OK, "fs": 1000, "f\\u0073": 1000}'), 422, "duplicate key 'fs'"),
    'duplicate key in batch': (_j('{"records": [{"samples": OK, "fs": 1000, "id": "a", "id": "a"}]}'), 422, 'duplicate key'),
    'duplicate records': (_j('{"records": [], "records": [{"samples": OK, "fs": 1000}]}'), 422, "duplicate key 'records'"),
    'empty element': (_j('{"samples": [1,,2], "fs": 1000}'), 422, 'samples[1]'),
    'trailing comma': (_j('{"samples": [1, 2,], "fs": 1000}'), 422, 'samples[2]'),
    'leading comma': (_j('{"samples": [, 1], "fs": 1000}'), 422, 'samples[0]'),
    'leading zero': (_j('{"samples": [0, 01], "fs": 1000}'), 422, "got '01'"),
    'plus sign': (_j('{"samples": [+1], "fs": 1000}'), 422, "got '+1'"),
    'bare dot': (_j('{"samples": [.5], "fs": 1000}'), 422, "got '.5'"),
    'trailing dot': (_j('{"samples": [1.], "fs": 1000}'), 422, "got '1.'"),
    'bare exponent': (_j('{"samples": [1e], "fs": 1000}'), 422, "got '1e'"),
    'lone minus': (_j('{"samples": [-], "fs": 1000}'), 422, "got '-'"),
    'two dots': (_j('{"samples": [1..2], "fs": 1000}'), 422, "got '1..2'"),
    'space inside a number': (_j('{"samples": [1 2], "fs": 1000}'), 422, 'samples[0]'),
    'hex number': (_j('{"samples": [0x10], "fs": 1000}'), 422, ''),
    'NaN in a long array': (('{"samples": [' + '0.5, ' * 2000 + 'NaN], "fs": 1000}').encode(), 422, 'samples[2000]'),
    'Infinity in a long array': (('{"samples": [' + '0.5, ' * 2000 + '-Infinity], "fs": 1000}').encode(), 422, 'samples[2000]'),
    'true in a long array': (('{"samples": [' + '0.5, ' * 2000 + 'true], "fs": 1000}').encode(), 422, 'samples[2000]'),
    'null in a long array': (('{"samples": [' + '0.5, ' * 2000 + 'null], "fs": 1000}').encode(), 422, 'samples[2000]'),
    '1e999 in a long array': (('{"samples": [' + '0.5, ' * 2000 + '1e999], "fs": 1000}').encode(), 422, 'samples[2000]'),
    'strings in a long array': (('{"samples": [' + '"0.5", ' * 5000 + '"1"], "fs": 1000}').encode(), 422, ''),
    'over max_samples': (('{"samples": [' + '0,' * 20_000 + '0], "fs": 1000}').encode(), 422, 'max_samples'),
    'over max_samples in a batch': (('{"records": [{"samples": [' + '0,' * 20_000 + '0], "fs": 1000}]}').encode(), 422, 'records[0].samples'),
    'samples an object of arrays': (_j('{"samples": {"a": OK}, "fs": 1000}'), 422, ''),
    'samples nested once': (_j('{"samples": [OK], "fs": 1000}'), 422, ''),
    'fs an array': (_j('{"samples": OK, "fs": [1000]}'), 422, 'fs'),
    'hop an array': (_j('{"samples": OK, "fs": 1000, "hop": [1, 2]}'), 422, 'hop'),
    'id an array': (_j('{"samples": OK, "fs": 1000, "id": [1]}'), 422, 'id'),
    'records an array of numbers': (b'{"records": [1, 2, 3]}', 422, 'records'),
    'body a flat array': (_j('OK'), 422, 'JSON object'),
    'body a long flat array': (('[' + '0,' * 30_000 + '0]').encode(), 422, ''),
    'placeholder-like id': (_j('{"samples": OK, "fs": 1000, "id": "\\u0000deadbeefdeadbeef:0"}'), 200, ''),
    'placeholder-like samples': (b'{"samples": "\\u0000deadbeefdeadbeef:0", "fs": 1000}', 422, 'JSON array'),
    'brackets in a string': (_j('{"samples": OK, "fs": 1000, "id": "[1, 2, 3]"}'), 200, ''),
    'escaped quote before an array': (_j('{"samples": OK, "fs": 1000, "id": "a\\"[1,2]"}'), 200, ''),
    'unterminated string': (_j('{"samples": OK, "fs": 1000, "id": "abc [1, 2]}'), 422, 'not valid JSON'),
    'code in a string': (_j('{"samples": OK, "fs": 1000, "id": "__import__(\'os\').system(\'touch /tmp/x\')"}'), 200, ''),
    'lone surrogate in id': (_j('{"samples": OK, "fs": 1000, "id": "\\ud800"}'), 422, ''),
    'UTF-8 BOM': (b'\xef\xbb\xbf' + _j('{"samples": OK, "fs": 1000}'), 422, 'not valid JSON'),
    'UTF-16 body': (('{"samples": [0.5], "fs": 1000}').encode('utf-16'), 422, ''),
    'NUL byte in the body': (_j('{"samples": OK, "fs": 1000}\x00'), 422, 'not valid JSON'),
    'two objects': (_j('{"samples": OK, "fs": 1000} {"fs": 1}'), 422, 'not valid JSON'),
    'deep objects': (b'{"a":' * 3000 + b'1' + b'}' * 3000, 422, ''),
    'deep arrays in samples': (b'{"samples": ' + b'[' * 3000 + b']' * 3000 + b', "fs": 1000}', 422, ''),
    'huge integer fs': (_j('{"samples": OK, "fs": ' + '9' * 5000 + '}'), 422, ''),
    'long text outside arrays': (_j('{"samples": OK, "fs": 1000, "id": "' + 'x' * 300_000 + '"}'), 422, ''),
    'many keys': (('{' + ', '.join(f'"k{i}": 1' for i in range(20_000)) + '}').encode(), 422, ''),
    'whitespace between numbers': (_j('{"samples": [\n' + ',\n\t '.join(['0.5'] * L) + '\n], "fs": 1000}'), 200, ''),
    'exponent forms': (_j('{"samples": [' + ', '.join(['5E-1', '5e-1', '0.05e1', '50e-2'] * (L // 4)) + '], "fs": 1000}'), 200, ''),
    'negative zero mean': (_j('{"samples": [' + ', '.join(['-0.0'] * L) + '], "fs": 1000}'), 200, ''),
}


@pytest.mark.parametrize('name', list(JSON_PROBES))
def test_hostile_json_body(client, name):
    body, status, words = JSON_PROBES[name]
    r = client.post('/predict' if b'"records"' not in body[:20] else '/predict/batch', content=body,
                    headers={'content-type': 'application/json'}, timeout=60)
    assert r.status_code == status, (r.status_code, r.text[:400])
    d = r.json()
    if status == 200:   # by hand: constant windows of value v have class sign(v), or 'zero' for 0
        v = float(json.loads(body.decode('utf-8'))['samples'][0])
        assert d['label'] == ('pos' if v > 0 else 'neg' if v < 0 else 'zero') and d['n_windows'] == 1, d
        return
    assert words in d['detail'] and len(d['detail']) < MAX_MESSAGE, d['detail'][:400]
    assert 'Traceback' not in r.text and d['errors']


BINARY_PROBES = {
    'fs twice': '?fs=1000&fs=1000',
    'fs twice, different': '?fs=1000&fs=2000',
    'hop twice': '?fs=1000&hop=256&hop=256',
    'resample twice': '?fs=1000&resample=true&resample=false',
    'id twice': '?fs=1000&id=a&id=b',
    'fs empty': '?fs=',
    'fs inf': '?fs=inf',
    'fs 1e400': '?fs=1e400',
    'fs negative': '?fs=-1000',
    'id too long': '?fs=1000&id=' + 'x' * 500,
    'unknown parameter': '?fs=1000&eval=1',
}


@pytest.mark.parametrize('name', list(BINARY_PROBES))
def test_hostile_binary_query(client, name):
    x = np.full(L, 0.5, np.float32).tobytes()
    r = client.post('/predict' + BINARY_PROBES[name], content=x, headers={'content-type': 'application/octet-stream'}, timeout=60)
    assert r.status_code == 422, (r.status_code, r.text[:400])
    assert len(r.json()['detail']) < MAX_MESSAGE and 'Traceback' not in r.text


# --------------------------------------------------------------------------- recording files

def _wav_bytes(n=4000, fs=8000, width=2, channels=1) -> bytes:
    b = io.BytesIO()
    with wave.open(b, 'wb') as w:
        w.setnchannels(channels); w.setsampwidth(width); w.setframerate(fs)
        w.writeframes(np.zeros(n * channels, f'<i{width}').tobytes())
    return b.getvalue()


def _h5_external(p: Path):
    raw = p.parent / (p.name + '.bin'); raw.write_bytes(os.urandom(64))
    with h5py.File(p, 'w') as f: f.create_dataset('x', shape=(16,), dtype='<f4', external=[(str(raw), 0, 64)])


def _h5_external_etc_passwd(p: Path):
    with h5py.File(p, 'w') as f: f.create_dataset('x', shape=(64,), dtype='u1', external=[('/etc/passwd', 0, 64)])


def _h5_external_second(p: Path):
    raw = p.parent / (p.name + '.bin'); raw.write_bytes(os.urandom(64))
    with h5py.File(p, 'w') as f:
        f['fs'] = 1000.0
        f.create_dataset('x', shape=(16,), dtype='<f4', external=[(str(raw), 0, 64)])


def _h5_virtual(p: Path):
    src = p.parent / (p.name + '.src.h5')
    with h5py.File(src, 'w') as f: f['d'] = np.arange(16, dtype='f4')
    lay = h5py.VirtualLayout(shape=(16,), dtype='f4'); lay[:] = h5py.VirtualSource(str(src), 'd', shape=(16,))
    with h5py.File(p, 'w') as f: f.create_virtual_dataset('x', lay)


def _h5_virtual_in_group(p: Path):
    src = p.parent / (p.name + '.src.h5')
    with h5py.File(src, 'w') as f: f['d'] = np.arange(16, dtype='f4')
    lay = h5py.VirtualLayout(shape=(16,), dtype='f4'); lay[:] = h5py.VirtualSource(str(src), 'd', shape=(16,))
    with h5py.File(p, 'w') as f: f.create_group('bearing').create_virtual_dataset('gs', lay)


def _write(data):
    def w(p: Path): p.write_bytes(data)
    return w


def _npy(a):
    def w(p: Path): np.save(p, a, allow_pickle=True)
    return w


FILE_PROBES = {   # name -> (file name, writer, words in the message)
    'h5 external storage': ('e.h5', _h5_external, 'external storage'),
    'h5 external /etc/passwd': ('p.h5', _h5_external_etc_passwd, 'external storage'),
    'h5 external beside a rate': ('s.h5', _h5_external_second, 'external storage'),
    'h5 virtual dataset': ('v.h5', _h5_virtual, 'virtual dataset'),
    'h5 virtual in a group': ('g.h5', _h5_virtual_in_group, 'virtual dataset'),
    'mat v7.3 with external storage': ('m.mat', _h5_external, 'external storage'),
    'npy pickle': ('pk.npy', _npy(np.array([_Evil()], dtype=object)), 'pk.npy'),
    'npy 0 bytes': ('z.npy', _write(b''), 'empty or truncated'),
    'npy magic only': ('m.npy', _write(b'\x93NUMPY'), 'm.npy'),
    'npy cut header': ('h.npy', lambda p: p.write_bytes(_npy_bytes(np.zeros(100, 'f4'))[:40]), 'h.npy'),
    'npy cut data': ('d.npy', lambda p: p.write_bytes(_npy_bytes(np.zeros(100, 'f4'))[:200]), 'd.npy'),
    'npy booleans': ('b.npy', _npy(np.ones(100, bool)), 'boolean samples'),
    'npy strings': ('s.npy', _npy(np.array(['a', 'b'])), 'not real numbers'),
    'npy complex': ('c.npy', _npy(np.ones(10, complex)), 'complex'),
    'npy 3-D': ('t.npy', _npy(np.zeros((2, 2, 2), 'f4')), 'one channel'),
    'npy text': ('x.npy', _write(b'hello world'), 'x.npy'),
    'wav 0 bytes': ('z.wav', _write(b''), 'z.wav'),
    'wav header only': ('h.wav', lambda p: p.write_bytes(_wav_bytes()[:44]), 'h.wav'),
    'wav cut in the data': ('c.wav', lambda p: p.write_bytes(_wav_bytes()[:1000]), 'truncated WAV'),
    'wav cut in the header': ('k.wav', lambda p: p.write_bytes(_wav_bytes()[:20]), 'k.wav'),
    'wav not RIFF': ('r.wav', _write(b'RIFX' + bytes(100)), 'r.wav'),
    'wav stereo without column': ('st.wav', lambda p: p.write_bytes(_wav_bytes(channels=2)), 'column'),
    'csv empty': ('e.csv', _write(b''), 'e.csv'),
    'csv header only': ('ho.csv', _write(b'x\n'), 'ho.csv'),
    'npy empty array': ('ea.npy', _npy(np.zeros(0, 'f4')), 'no samples'),
    'csv text only': ('t.csv', _write(b'a,b\nc,d\n'), 't.csv'),
    'csv ragged rows': ('r.csv', _write(b'1,2\n3\n'), 'r.csv'),
    'csv binary': ('b.csv', _write(bytes(range(256))), 'b.csv'),
    'txt latin-1': ('l.txt', _write('1\n2\n\u00b5\n'.encode('latin-1')), 'l.txt'),
    'h5 0 bytes': ('z.h5', _write(b''), 'z.h5'),
    'h5 not HDF5': ('n.h5', _write(b'not hdf5 at all' * 10), 'n.h5'),
    'mat garbage': ('g2.mat', _write(b'MATLAB 5.0' + os.urandom(200)), 'g2.mat'),
    'unknown extension': ('x.exe', _write(b'MZ'), 'unsupported recording format'),
}


def _npy_bytes(a) -> bytes:
    b = io.BytesIO(); np.save(b, a); return b.getvalue()


@pytest.mark.parametrize('name', list(FILE_PROBES))
def test_hostile_recording_file(name, tmp_path):
    fname, writer, words = FILE_PROBES[name]
    p = tmp_path / fname
    writer(p)
    with pytest.raises((ValueError, KeyError, OSError)) as e: read_recording(p)
    msg = str(e.value)
    assert words in msg and len(msg) < MAX_MESSAGE, msg[:400]
    assert not FLAG.exists(), 'a probe ran code'


def test_huge_hop_is_one_window(client):
    "A hop longer than the record is not an error: one window, the same answer as without a hop (by hand: mean 0.5 -> 'pos')."
    x = np.full(L, 0.5, np.float32).tobytes()
    r = client.post('/predict?fs=1000&hop=99999999999999999999999', content=x, headers={'content-type': 'application/octet-stream'})
    assert r.status_code == 200 and r.json()['n_windows'] == 1 and r.json()['label'] == 'pos'


def test_external_storage_data_never_returned(tmp_path):
    "The bytes an external dataset points at never come back, whatever key or rate field is asked for."
    p = tmp_path / 'e.h5'; _h5_external_second(p)
    for kw in (dict(), dict(key='x'), dict(key='fs'), dict(key='x', fs_key='fs')):
        with pytest.raises(ValueError, match='external storage'): read_recording(p, **kw)
