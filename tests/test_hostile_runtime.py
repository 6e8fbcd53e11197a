"""Hostile inputs for the runtime entry points: checkpoints, ONNX files, the Predictor, the command line and
the HTTP service.

Every case must end in a clear, typed error (a one-line message with exit status 2 on the command line, a
4xx with a JSON reason over HTTP), never a traceback, a 500, a silent wrong answer or a file left behind.
`TRIES` counts the cases per entry point; the last test prints the counts.
"""
import asyncio
import collections
import json
import math
import os
import re
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

with warnings.catch_warnings():
    warnings.simplefilter('ignore')   # starlette's httpx deprecation notice
    from fastapi.testclient import TestClient
import httpx
import onnx
from onnx import TensorProto, helper, numpy_helper

import lstm_pfd
from lstm_pfd.config import DataConfig
from lstm_pfd.data import build_dataset
from lstm_pfd.export import export_checkpoint, write_metadata
from lstm_pfd.models import create_model
from lstm_pfd.physics import class_names
from lstm_pfd.predict import MAX_WINDOWS, Predictor
from lstm_pfd.serve import BodySizeLimit, create_app
from lstm_pfd.train import CheckpointMismatch, load_checkpoint, save_checkpoint
from lstm_pfd.xai import explain_record_figure

pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning')

SCRIPT = Path(sys.executable).parent / 'lstm-pfd'
CFG = DataConfig.preset('quick', {'dataset.records_per_class_severity': 3, 'signal.duration_s': 1.0})
L, FS = CFG.window_len, float(CFG.signal.fs)
TRIES = collections.Counter()
MAX_MESSAGE = 1500


def _bounded(e):
    assert len(str(e)) < MAX_MESSAGE, f'{len(str(e))}-character message'


def _no_leftovers(folder: Path, allowed=()):
    left = sorted(p.name for p in folder.iterdir() if p.name not in allowed)
    assert left == [], f'left behind: {left}'


# --------------------------------------------------------------------------- files used below

class _Evil:
    "Unpickling this runs a shell command: a weights-only load must refuse it."
    def __init__(self, flag): self.flag = str(flag)
    def __reduce__(self): return (os.system, (f'touch {self.flag}',))


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp('runtime')
    ds = build_dataset(CFG, d / 'd.h5', progress=False)
    names = list(class_names())
    model = create_model('compact', n_classes=len(names), seed=0)
    ok = save_checkpoint(d / 'ok.pt', model, class_names=names, window_len=L, fs=FS, config_hash=CFG.hash())
    f = dict(d=d, ds=ds, ok=ok, flag=d / 'PWNED')
    torch.save({'format': 'x', 'payload': _Evil(f['flag'])}, d / 'evil.pt')
    (d / 'empty.pt').write_bytes(b'')
    raw = ok.read_bytes()
    (d / 'trunc.pt').write_bytes(raw[:len(raw) // 2])
    (d / 'text.pt').write_text('model: compact\n')
    ck = torch.load(ok, weights_only=True)
    big = dict(ck, model_kwargs={**ck['model_kwargs'], 'channels': [6000, 6000, 6000]})
    torch.save(big, d / 'big.pt')
    nan = dict(ck, state_dict={k: torch.full_like(v, float('nan')) if v.is_floating_point() else v
                               for k, v in ck['state_dict'].items()})
    torch.save(nan, d / 'nan.pt')
    save_checkpoint(d / 'short.pt', create_model('compact', n_classes=len(names), seed=0), class_names=names,
                    window_len=L // 2, fs=FS)
    save_checkpoint(d / 'five.pt', create_model('compact', n_classes=5, seed=0), class_names=list('abcde'),
                    window_len=L, fs=FS)
    save_checkpoint(d / 'rate.pt', model, class_names=names, window_len=L, fs=FS / 2)
    f['onnx'] = Path(export_checkpoint(ok, d / 'ok.onnx')['fp32']['path'])
    return f


def _graph_model(path: Path, *, in_shape, nodes, inits=(), out_shape=('batch', 3), meta=None, in_type=TensorProto.FLOAT):
    x = helper.make_tensor_value_info('x', in_type, list(in_shape))
    y = helper.make_tensor_value_info('logits', TensorProto.FLOAT, list(out_shape))
    g = helper.make_graph(nodes, 'g', [x], [y], initializer=list(inits))
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid('', 17)])
    proto.ir_version = 8
    if meta: write_metadata(proto, meta)
    path.write_bytes(proto.SerializeToString())
    return path


def _mean_nodes(gain=4.0):
    w = numpy_helper.from_array(np.array([[0.0, gain, -gain]], np.float32), 'w')
    return [helper.make_node('ReduceMean', ['x'], ['m'], axes=[2], keepdims=0),
            helper.make_node('MatMul', ['m', 'w'], ['logits'])], [w]


@pytest.fixture(scope='module')
def onnx_files(tmp_path_factory):
    d = tmp_path_factory.mktemp('onnx')
    meta = dict(class_names=['zero', 'pos', 'neg'], fs=1000.0, window_len=256)
    nodes, inits = _mean_nodes()
    good = _graph_model(d / 'mean.onnx', in_shape=('batch', 1, 256), nodes=nodes, inits=inits, meta=meta)
    # logits = log(mean): NaN for a window of negative mean
    w = numpy_helper.from_array(np.array([[1.0, 1.0, 1.0]], np.float32), 'w')
    nan = _graph_model(d / 'nan.onnx', in_shape=('batch', 1, 256), meta=meta, inits=[w],
                       nodes=[helper.make_node('ReduceMean', ['x'], ['m'], axes=[2], keepdims=0),
                              helper.make_node('Log', ['m'], ['lm']), helper.make_node('MatMul', ['lm', 'w'], ['logits'])])
    w2 = numpy_helper.from_array(np.array([[0.0, 1.0, -1.0]], np.float32), 'w')
    rank2 = _graph_model(d / 'rank2.onnx', in_shape=('batch', 256), meta=meta, inits=[w2],
                         nodes=[helper.make_node('ReduceMean', ['x'], ['m'], axes=[1], keepdims=1),
                                helper.make_node('MatMul', ['m', 'w'], ['logits'])])
    wide = _graph_model(d / 'wide.onnx', in_shape=('batch', 1, 512), nodes=nodes, inits=inits, meta=meta)
    four = _graph_model(d / 'four.onnx', in_shape=('batch', 1, 256), nodes=nodes, inits=inits,
                        meta=dict(meta, class_names=list('abcd')))
    ints = _graph_model(d / 'int.onnx', in_shape=('batch', 1, 256), meta=meta, in_type=TensorProto.INT64,
                        nodes=[helper.make_node('Cast', ['x'], ['xf'], to=TensorProto.FLOAT),
                               helper.make_node('ReduceMean', ['xf'], ['m'], axes=[2], keepdims=0),
                               helper.make_node('MatMul', ['m', 'w'], ['logits'])], inits=inits)
    raw = good.read_bytes()
    (d / 'trunc.onnx').write_bytes(raw[:len(raw) // 2])
    (d / 'garbage.onnx').write_bytes(os.urandom(4096))
    (d / 'empty.onnx').write_bytes(b'')
    (d / 'text.onnx').write_text('{"not": "onnx"}')
    return dict(d=d, good=good, nan=nan, rank2=rank2, wide=wide, four=four, ints=ints)


# --------------------------------------------------------------------------- checkpoints, every load path

BAD_CKPTS = {'evil.pt': 'not a readable', 'empty.pt': 'not a readable', 'trunc.pt': 'not a readable',
             'text.pt': 'not a readable', 'big.pt': 'channels', 'nan.pt': 'NaN/Inf values in the weights'}


@pytest.mark.parametrize('name', list(BAD_CKPTS))
@pytest.mark.parametrize('path_', ['load', 'evaluate', 'explain', 'export'])
def test_bad_checkpoint_every_load_path(files, name, path_, tmp_path):
    TRIES['checkpoint'] += 1
    ck, ds = files['d'] / name, files['ds']
    call = {'load': lambda: load_checkpoint(ck),
            'evaluate': lambda: _cli_evaluate(ck, ds),
            'explain': lambda: explain_record_figure(ck, ds, 0, out=tmp_path / 'x.png'),
            'export': lambda: export_checkpoint(ck, tmp_path / 'x.onnx')}[path_]
    with pytest.raises((CheckpointMismatch, ValueError)) as e: call()
    _bounded(e.value)
    assert BAD_CKPTS[name] in str(e.value), str(e.value)
    assert not files['flag'].exists(), 'the pickle payload ran'
    _no_leftovers(tmp_path)


def _cli_evaluate(ck, ds):
    "evaluate's load path as the CLI runs it (checkpoint checked against the data)."
    from lstm_pfd.data import open_dataset
    from lstm_pfd.train import data_expectations
    with open_dataset(ds) as f: return load_checkpoint(ck, **data_expectations(f.windows('test')))


@pytest.mark.parametrize('name, words', [('short.pt', 'window_len'), ('five.pt', 'class'), ('rate.pt', 'fs')])
def test_wrong_model_for_the_data(files, name, words, tmp_path):
    TRIES['checkpoint'] += 2
    with pytest.raises(ValueError, match=words): _cli_evaluate(files['d'] / name, files['ds'])
    with pytest.raises(ValueError, match=words):
        explain_record_figure(files['d'] / name, files['ds'], 0, out=tmp_path / 'x.png')
    _no_leftovers(tmp_path)


def test_oversized_kwargs_refused_before_allocating(files):
    "channels=(6000, ...) would need hundreds of MB: refused in well under the time it takes to allocate them."
    TRIES['checkpoint'] += 1
    import psutil
    before = psutil.Process().memory_info().rss
    with pytest.raises(ValueError, match='channels'): load_checkpoint(files['d'] / 'big.pt')
    assert psutil.Process().memory_info().rss - before < 200 * 2**20


# --------------------------------------------------------------------------- ONNX files

@pytest.mark.parametrize('name, words', [
    ('garbage.onnx', 'not a usable ONNX model'), ('trunc.onnx', 'not a usable ONNX model'),
    ('empty.onnx', 'not a usable ONNX model'), ('text.onnx', 'not a usable ONNX model'),
    ('rank2.onnx', 'expected tensor(float) of shape [batch, channels, L]'), ('wide.onnx', 'window_len = 256'),
    ('four.onnx', '4 class names for a model with 3 outputs'), ('int.onnx', 'tensor(int64)'),
    ('missing.onnx', 'not found')])
def test_bad_onnx_file(onnx_files, name, words):
    TRIES['onnx file'] += 2
    with pytest.raises((ValueError, FileNotFoundError), match=re.escape(words)) as e: Predictor(onnx_files['d'] / name)
    _bounded(e.value)
    with pytest.raises((ValueError, FileNotFoundError), match=re.escape(words)): create_app(onnx_files['d'] / name)


def test_nan_producing_graph_is_an_error_not_an_answer(onnx_files):
    TRIES['onnx file'] += 3
    p = Predictor(onnx_files['nan'])
    assert p.predict(np.full(512, 0.5), fs=1000).n_windows == 2   # positive mean: finite logits
    with pytest.raises(ValueError, match='not finite'): p.predict(np.full(512, -0.5), fs=1000)
    with pytest.raises(ValueError, match='outputs'): create_app(onnx_files['nan'])   # the zero-window probe: log(0)


# --------------------------------------------------------------------------- Predictor

@pytest.fixture(scope='module')
def pred(onnx_files): return Predictor(onnx_files['good'])


BAD_X = {
    'string array': (np.array(['1.0'] * 512), TypeError, 'dtype'),
    'object array': (np.array([1.0, None] * 256, dtype=object), TypeError, 'dtype'),
    'complex': (np.ones(512, np.complex64), TypeError, 'dtype'),
    'bool': (np.ones(512, bool), TypeError, 'dtype'),
    'empty': (np.zeros(0), ValueError, 'empty'),
    'nan': (np.r_[np.zeros(300), np.nan, np.zeros(300)], ValueError, 'NaN/Inf'),
    '+inf': (np.r_[np.zeros(300), np.inf, np.zeros(300)], ValueError, 'NaN/Inf'),
    'float64 1e300': (np.full(512, 1e300), ValueError, 'float32 range'),
    'float32 max then scaled': (np.full(512, np.finfo(np.float32).max, np.float64) * 2, ValueError, 'float32 range'),
    '4-D': (np.zeros((1, 1, 1, 512)), ValueError, 'allowed: a record'),
    '3-D with 2 channels': (np.zeros((2, 2, 256)), ValueError, 'allowed: a record'),
    'windows of wrong length': (np.zeros((3, 100)), ValueError, 'L = 256'),
    'too short': (np.zeros(100), ValueError, 'too short'),
}


@pytest.mark.parametrize('name', list(BAD_X))
def test_predictor_bad_samples(pred, name):
    TRIES['Predictor'] += 1
    x, exc, words = BAD_X[name]
    with pytest.raises(exc, match=words) as e: pred.predict(x, fs=1000)
    _bounded(e.value)


def test_int64_huge_is_never_a_silent_nan(pred):
    "2**62 casts to a finite float32 (4.6e18); the model's logits overflow: an error, never 'p=nan'."
    TRIES['Predictor'] += 1
    try: r = pred.predict(np.full(512, 2**62, np.int64), fs=1000)
    except ValueError as e: assert 'not finite' in str(e)
    else: assert np.isfinite(r.probabilities).all()


@pytest.mark.parametrize('fs, words', [
    (0, 'positive'), (-1, 'positive'), (float('nan'), 'positive'), (float('inf'), 'positive'), (1e-300, 'fs'),
    (True, 'positive'), ('1000', 'positive'), (None, 'required'), (1001, 'resample=True')])
def test_predictor_bad_fs(pred, fs, words):
    TRIES['Predictor'] += 1
    with pytest.raises(ValueError, match=words): pred.predict(np.zeros(600), fs=fs)


@pytest.mark.parametrize('fs', [1e-300, 1000.013, 1e12])
def test_predictor_resampling_edge_rates(pred, fs):
    "Rates with no usable ratio to the model's are refused with the reason (never a crash or a huge allocation)."
    TRIES['Predictor'] += 1
    with pytest.raises(ValueError, match='fs: cannot resample'): pred.predict(np.zeros(600), fs=fs, resample=True)


def test_predictor_upsampling_is_bounded_before_it_runs(pred):
    "20,000 samples at 1 Hz would become 20 M samples at 1 kHz: refused from the ratio, before resampling."
    TRIES['Predictor'] += 2
    import psutil
    before = psutil.Process().memory_info().rss
    with pytest.raises(ValueError, match='resampled from 1 to 1000 Hz .* over max_windows'):
        pred.predict(np.zeros(20_000, np.float32), fs=1, resample=True)
    assert psutil.Process().memory_info().rss - before < 50 * 2**20
    assert pred.predict(np.zeros(600), fs=1, resample=True).n_windows == 2343   # 600,000 samples: allowed


@pytest.mark.parametrize('hop', [0, -3, 1.5, '3', True])
def test_predictor_bad_hop(pred, hop):
    TRIES['Predictor'] += 1
    with pytest.raises(ValueError, match='hop'): pred.predict(np.zeros(600), fs=1000, hop=hop)


def test_predictor_dtypes_agree(pred):
    TRIES['Predictor'] += 4
    x = np.tile(np.r_[np.full(256, 0.5), np.full(256, -0.25)], 2)
    ref = pred.predict(x.astype(np.float32), fs=1000).probabilities
    for dt in (np.float64, np.float16):
        np.testing.assert_allclose(pred.predict(x.astype(dt), fs=1000).probabilities, ref, atol=1e-6)
    r = pred.predict(np.ones(512, np.int16), fs=1000)
    assert r.label == 'pos'
    assert pred.predict(x.astype(np.float32), fs=1000.0000001).n_windows == 4   # within tolerance: not resampled


def test_predictor_window_bound(onnx_files):
    """A 60-s record with hop=1 is refused before it is framed, naming the count and the limit; the limit can be raised."""
    TRIES['Predictor'] += 4
    p = Predictor(onnx_files['good'])
    x = np.zeros(60 * 1000, np.float32)
    with pytest.raises(ValueError, match=f'59745 windows, over max_windows = {MAX_WINDOWS}'): p.predict(x, fs=1000, hop=1)
    with pytest.raises(ValueError, match='over max_windows = 10'):
        Predictor(onnx_files['good'], max_windows=10).predict(np.zeros((11, 256)), fs=1000)
    assert Predictor(onnx_files['good'], max_windows=60_000).predict(x[:20_000], fs=1000, hop=1).n_windows == 19_745
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match='max_windows'): Predictor(onnx_files['good'], max_windows=bad)


# --------------------------------------------------------------------------- command line

def run(*args, timeout=120, **kw):
    assert SCRIPT.exists(), f'console script not installed at {SCRIPT}'
    return subprocess.run([str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, 'OMP_NUM_THREADS': '1'}, **kw)


def _one_line_error(r, *words, rc=2):
    TRIES['CLI'] += 1
    err = r.stderr.strip()
    assert r.returncode == rc, (r.returncode, r.stderr[-2000:])
    assert 'Traceback' not in r.stderr and len(err.splitlines()) == 1, r.stderr[-2000:]
    for w in words: assert w in err, err


@pytest.fixture(scope='module')
def cli_files(files, onnx_files, tmp_path_factory):
    d = tmp_path_factory.mktemp('cli')
    (d / 'bad.yaml').write_text('signal: [1, 2\n')
    (d / 'empty.yaml').write_text('')
    (d / 'tabs.yaml').write_text('signal:\n\tfs: 3\n')
    (d / 'bin.yaml').write_bytes(b'\x00\x01\x02')
    np.save(d / 'r.npy', np.random.default_rng(0).standard_normal(4 * L).astype(np.float32))
    np.save(d / 'long.npy', np.zeros(int(60 * FS), np.float32))
    np.save(d / 'nan.npy', np.r_[np.zeros(L), np.nan].astype(np.float32))
    np.save(d / 'huge.npy', np.full(2 * L, 1e300))
    (d / 'labels.csv').write_text('file,label\nr.npy,healthy\n')
    return dict(files, **{f'onnx_{k}': v for k, v in onnx_files.items()}, c=d)


CLI_CASES = {
    # checkpoints
    'evaluate: pickle with code': (('evaluate', '{d}/evil.pt', '{ds}'), 'not a readable'),
    'evaluate: empty checkpoint': (('evaluate', '{d}/empty.pt', '{ds}'), 'not a readable'),
    'evaluate: truncated checkpoint': (('evaluate', '{d}/trunc.pt', '{ds}'), 'not a readable'),
    'evaluate: NaN weights': (('evaluate', '{d}/nan.pt', '{ds}'), 'NaN/Inf'),
    'evaluate: other window length': (('evaluate', '{d}/short.pt', '{ds}'), 'window_len'),
    'evaluate: 5-class model': (('evaluate', '{d}/five.pt', '{ds}'), 'class'),
    'evaluate: other rate': (('evaluate', '{d}/rate.pt', '{ds}'), 'fs'),
    'evaluate: dataset is an ONNX file': (('evaluate', '{d}/ok.pt', '{onnx}'), 'HDF5'),
    'explain: pickle with code': (('explain', '{d}/evil.pt', '{ds}', '--out', '{c}/x.png'), 'not a readable'),
    'explain: 5-class model': (('explain', '{d}/five.pt', '{ds}', '--out', '{c}/x.png'), 'class'),
    'explain: --out a folder': (('explain', '{d}/ok.pt', '{ds}', '--out', '{c}'), 'is a folder'),
    'export: pickle with code': (('export', '{d}/evil.pt', '--out', '{c}/e.onnx'), 'not a readable'),
    'export: oversized kwargs': (('export', '{d}/big.pt', '--out', '{c}/e.onnx'), 'channels'),
    'export: --out a folder': (('export', '{d}/ok.pt', '--out', '/tmp'), 'is a folder'),
    'export: --out under a missing folder': (('export', '{d}/ok.pt', '--out', '/nonexistent_lstm_pfd/dir/m.onnx'), 'does not exist'),
    'export: --out exists': (('export', '{d}/ok.pt', '--out', '{onnx}'), '--force'),
    'export: missing checkpoint': (('export', '{c}/none.pt', '--out', '{c}/e.onnx'), 'no checkpoint'),
    # ONNX files
    'predict: garbage ONNX': (('predict', '{onnx_d}/garbage.onnx', '{c}/r.npy', '--fs', FS), 'not a usable ONNX model'),
    'predict: truncated ONNX': (('predict', '{onnx_d}/trunc.onnx', '{c}/r.npy', '--fs', FS), 'not a usable ONNX model'),
    'predict: a checkpoint as model': (('predict', '{d}/ok.pt', '{c}/r.npy', '--fs', FS), 'not a usable ONNX model'),
    'predict: rank-2 model': (('predict', '{onnx_d}/rank2.onnx', '{c}/r.npy', '--fs', 1000), 'shape [batch, channels, L]'),
    'serve: garbage ONNX': (('serve', '{onnx_d}/garbage.onnx', '--port', 1), 'not a usable ONNX model'),
    'serve: NaN-producing model': (('serve', '{onnx_d}/nan.onnx', '--port', 1), 'outputs'),
    'serve: port out of range': (('serve', '{onnx}', '--port', 70000), 'port'),
    # recordings
    'predict: 60 s with hop 1': (('predict', '{onnx}', '{c}/long.npy', '--fs', FS, '--hop', 1), 'over max_windows'),
    'predict: NaN sample': (('predict', '{onnx}', '{c}/nan.npy', '--fs', FS), 'NaN/Inf'),
    'predict: 1e300 float64': (('predict', '{onnx}', '{c}/huge.npy', '--fs', FS), 'float32 range'),
    'predict: fs 1e-300': (('predict', '{onnx}', '{c}/r.npy', '--fs', '1e-300', '--resample'), 'fs'),
    'predict: fs nan': (('predict', '{onnx}', '{c}/r.npy', '--fs', 'nan'), 'fs'),
    'predict: hop 0': (('predict', '{onnx}', '{c}/r.npy', '--fs', FS, '--hop', 0), 'hop'),
    'predict: max-windows 0': (('predict', '{onnx}', '{c}/r.npy', '--fs', FS, '--max-windows', 0), 'max_windows'),
    'predict: missing recording': (('predict', '{onnx}', '{c}/none.npy', '--fs', FS), 'none.npy'),
    # config
    'config: YAML syntax error': (('config', '--config', '{c}/bad.yaml'), 'valid YAML'),
    'config: empty file': (('config', '--config', '{c}/empty.yaml'), 'empty'),
    'config: tabs': (('config', '--config', '{c}/tabs.yaml'), 'YAML'),
    'config: binary file': (('config', '--config', '{c}/bin.yaml'), 'bin.yaml'),
    'config: missing file': (('config', '--config', '{c}/none.yaml'), 'none.yaml'),
    '--set YAML syntax error': (('config', '--set', 'signal.fs=[1,'), '--set signal.fs'),
    '--set without a key': (('config', '--set', '=3'), 'KEY=VALUE'),
    '--set without =': (('config', '--set', 'signal.fs'), 'KEY=VALUE'),
    '--set unknown key': (('config', '--set', 'signal.nope=1'), 'nope'),
    '--set 1e9 Hz': (('config', '--set', 'signal.fs=1e9'), 'fs x duration_s'),
    'config --out a folder': (('config', '--out', '{c}'), 'is a folder'),
    # the other commands
    'import: record 10 us': (('import', '{c}/labels.csv', '--fs', FS, '--record-s', '0.00001', '--out', '{c}/i.h5'), 'record'),
    'import: missing labels': (('import', '{c}/none.csv', '--fs', FS, '--out', '{c}/i.h5'), 'none.csv'),
    'train: 0 threads': (('train', '{ds}', '--threads', 0, '--out', '{c}/t.pt'), '--threads'),
    'train: --out under a missing folder': (('train', '{ds}', '--out', '/nonexistent_lstm_pfd/x/t.pt'), 'does not exist'),
    'train: --out exists': (('train', '{ds}', '--out', '{d}/ok.pt'), '--force'),
    'generate: --out a folder': (('generate', '--out', '{c}', '--force'), 'folder'),
    'generate: 1e5-s records': (('generate', '--set', 'signal.duration_s=1.0e+5', '--out', '{c}/g.h5'), 'limit'),
    'generate: --out exists': (('generate', '--out', '{ds}'), '--force'),
}


def _fill(f, args):
    fill = dict(d=f['d'], ds=f['ds'], onnx=f['onnx'], c=f['c'], onnx_d=f['onnx_d'])
    return [a.format(**fill) if isinstance(a, str) else str(a) for a in args]


def _check_nothing_written(f, before):
    assert sorted(p.name for p in f['c'].iterdir()) == before, 'a file was written or left behind'
    assert not Path('/nonexistent_lstm_pfd').exists() and not Path('/tmp.tmp').exists()
    assert not f['flag'].exists()


@pytest.mark.parametrize('name', list(CLI_CASES))
def test_cli_one_line_error(cli_files, name, capfd):
    "Each case through `cli.main` in this process (stderr captured at the file-descriptor level)."
    from lstm_pfd.cli import main
    args, words = CLI_CASES[name]
    before = sorted(p.name for p in cli_files['c'].iterdir())
    rc = main(_fill(cli_files, args))
    out, err = capfd.readouterr()
    _one_line_error(subprocess.CompletedProcess(args, rc, out, err), words)
    _check_nothing_written(cli_files, before)


SUBPROCESS_CASES = ['predict: 1e300 float64', 'evaluate: pickle with code', '--set YAML syntax error',
                    'export: --out a folder', 'predict: garbage ONNX', 'train: 0 threads', 'generate: 1e5-s records']


@pytest.mark.parametrize('name', SUBPROCESS_CASES)
def test_cli_one_line_error_console_script(cli_files, name):
    "A few cases through the installed console script: the exit status and all of stderr, warnings included."
    args, words = CLI_CASES[name]
    before = sorted(p.name for p in cli_files['c'].iterdir())
    _one_line_error(run(*_fill(cli_files, args)), words)
    _check_nothing_written(cli_files, before)


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes into read-only folders')
def test_cli_read_only_folder(cli_files, tmp_path):
    ro = tmp_path / 'ro'; ro.mkdir(); ro.chmod(0o555)
    try:
        _one_line_error(run('config', '--out', ro / 'c.yaml'), 'Permission denied')
        _one_line_error(run('export', cli_files['d'] / 'ok.pt', '--out', ro / 'm.onnx'), 'Permission denied')
    finally: ro.chmod(0o755)


def test_cli_debug_shows_the_traceback(cli_files):
    TRIES['CLI'] += 1
    r = run('--debug', 'config', '--set', 'signal.fs=[1,')
    assert r.returncode != 0 and 'Traceback' in r.stderr


def test_cli_ctrl_c_is_130_and_one_line(cli_files):
    "SIGINT while serving: exit status 130 and one line, no traceback."
    TRIES['CLI'] += 1
    import signal
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    p = subprocess.Popen([str(SCRIPT), 'predict', str(cli_files['onnx']), str(cli_files['c'] / 'r.npy'), '--fs', str(FS)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.communicate(timeout=120)   # a run that finishes: no interruption
    p = subprocess.Popen([str(SCRIPT), 'serve', str(cli_files['onnx']), '--port', str(port)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):
            try:
                if httpx.get(f'http://127.0.0.1:{port}/health', timeout=1).status_code == 200: break
            except httpx.TransportError: time.sleep(0.1)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None: p.kill(); p.wait()
    assert 'Traceback' not in err, err[-2000:]
    assert p.returncode in (0, 130), (p.returncode, err[-2000:])   # uvicorn handles SIGINT itself: a clean stop


def test_cli_keyboard_interrupt_in_a_command(monkeypatch, capsys):
    "A KeyboardInterrupt inside any command: 130 and one line."
    TRIES['CLI'] += 1
    from lstm_pfd import cli
    def boom(args): raise KeyboardInterrupt
    monkeypatch.setitem(cli.COMMANDS, 'config', (cli.COMMANDS['config'][0], cli.COMMANDS['config'][1], boom))
    assert cli.main(['config']) == 130
    err = capsys.readouterr().err.strip()
    assert err == 'lstm-pfd config: interrupted'


def test_cli_unexpected_error_is_one_line_rc1(monkeypatch, capsys):
    TRIES['CLI'] += 1
    from lstm_pfd import cli
    def boom(args): raise ZeroDivisionError('simulated bug\nsecond line')
    monkeypatch.setitem(cli.COMMANDS, 'config', (cli.COMMANDS['config'][0], cli.COMMANDS['config'][1], boom))
    assert cli.main(['config']) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'simulated bug' in err and '--debug' in err


def test_cli_set_numbers_are_numbers():
    TRIES['CLI'] += 1
    r = run('config', '--set', 'signal.duration_s=1e1')
    assert r.returncode == 0, r.stderr
    assert 'duration_s: 10.0' in r.stdout


# --------------------------------------------------------------------------- HTTP: test client

@pytest.fixture(scope='module')
def client(onnx_files):
    app = create_app(onnx_files['good'], max_body_bytes=100_000, max_batch=4, max_samples=20_000)
    return TestClient(app, raise_server_exceptions=False)


OK = [0.5] * 512
HTTP_CASES = {
    'malformed JSON': (b'{"samples": [1, 2', 422, 'not valid JSON'),
    'JSON array': (b'[1, 2, 3]', 422, 'JSON object'),
    'JSON string': (b'"hello"', 422, 'JSON object'),
    'JSON null': (b'null', 422, 'JSON object'),
    'deeply nested': (b'[' * 5000 + b']' * 5000, 422, ''),
    'samples a string': (json.dumps({'samples': 'abc', 'fs': 1000}), 422, 'JSON array'),
    'samples of booleans': (json.dumps({'samples': [True] * 512, 'fs': 1000}), 422, 'number'),
    'samples of objects': (json.dumps({'samples': [{}] * 512, 'fs': 1000}), 422, 'number'),
    'samples nested': (json.dumps({'samples': [OK, OK], 'fs': 1000}), 422, 'number'),
    'samples NaN': (json.dumps({'samples': OK[:5] + [float('nan')] + OK, 'fs': 1000}), 422, 'NaN'),
    'samples 1e300': (json.dumps({'samples': OK + [1e300], 'fs': 1000}), 422, 'float32 range'),
    'samples 1e999': (b'{"samples": [1e999], "fs": 1000}', 422, ''),
    'samples huge int': (json.dumps({'samples': [10**400] + OK, 'fs': 1000}), 422, ''),
    'fs 1': (json.dumps({'samples': OK, 'fs': 1}), 422, 'fs'),
    'fs 1e-300': (json.dumps({'samples': OK, 'fs': 1e-300}), 422, 'fs'),
    'fs 1000.013 (no simple ratio)': (json.dumps({'samples': OK, 'fs': 1000.013}), 422, 'fs'),
    'fs negative': (json.dumps({'samples': OK, 'fs': -5}), 422, 'fs'),
    'fs string': (json.dumps({'samples': OK, 'fs': '1000'}), 422, 'number'),
    'fs huge': (json.dumps({'samples': OK, 'fs': 1e308}), 422, 'fs'),
    'hop 0': (json.dumps({'samples': OK, 'fs': 1000, 'hop': 0}), 422, 'hop'),
    'hop float': (json.dumps({'samples': OK, 'fs': 1000, 'hop': 1.5}), 422, 'integer'),
    'hop 1 over the window cap': (json.dumps({'samples': [0.5] * 19_000, 'fs': 1000, 'hop': 1}), 422, 'hop'),
    'id too long': (json.dumps({'samples': OK, 'fs': 1000, 'id': 'x' * 1000}), 422, 'id'),
    'id a number': (json.dumps({'samples': OK, 'fs': 1000, 'id': 5}), 422, 'string'),
    'extra field': (json.dumps({'samples': OK, 'fs': 1000, 'x': 1}), 422, 'unknown field'),
    'resample a string': (json.dumps({'samples': OK, 'fs': 1000, 'resample': 'yes'}), 422, 'true or false'),
    'too short': (json.dumps({'samples': OK[:10], 'fs': 1000}), 422, 'too short'),
    'upsampling past max_samples': (json.dumps({'samples': OK * 4, 'fs': 100}), 422, 'max_samples'),
    'over max_samples': (json.dumps({'samples': [0] * 20_001, 'fs': 1000}), 422, 'max_samples'),
    'invalid UTF-8': (b'{"samples": [1], "fs": 1000, "id": "\xff\xfe"}', 422, ''),
    'empty body': (b'', 422, 'empty'),
    'whitespace body': (b'   \n ', 422, 'empty'),
    'body over the limit': (json.dumps({'samples': [0.123456789] * 20_000, 'fs': 1000}), 413, 'limit'),
}


@pytest.mark.parametrize('name', list(HTTP_CASES))
def test_http_bad_json_input(client, name):
    TRIES['HTTP'] += 1
    body, status, words = HTTP_CASES[name]
    r = client.post('/predict', content=body, headers={'content-type': 'application/json'})
    assert r.status_code == status, (r.status_code, r.text[:500])
    d = r.json()
    assert words in d['detail'] and len(d['detail']) < MAX_MESSAGE and 'Traceback' not in r.text
    assert d['errors'] and all('loc' in e for e in d['errors'])


BINARY_CASES = {
    'no fs': ('', np.full(512, 0.5, np.float32).tobytes(), 'fs'),
    'fs text': ('?fs=abc', np.full(512, 0.5, np.float32).tobytes(), 'number'),
    'fs nan': ('?fs=nan', np.full(512, 0.5, np.float32).tobytes(), 'NaN'),
    'fs 10241: too short at that rate': ('?fs=10241', np.full(512, 0.5, np.float32).tobytes(), 'at 10241 Hz'),
    'odd byte count': ('?fs=1000', b'\x00' * 1027, 'float32'),
    'NaN sample': ('?fs=1000', np.r_[np.full(300, 0.5), np.nan, np.full(300, .5)].astype(np.float32).tobytes(), 'samples[300]'),
    'inf sample': ('?fs=1000', np.r_[np.full(300, 0.5), np.inf, np.full(300, .5)].astype(np.float32).tobytes(), 'samples[300]'),
    'unknown parameter': ('?fs=1000&gain=2', np.full(512, 0.5, np.float32).tobytes(), 'gain'),
    'resample maybe': ('?fs=1000&resample=maybe', np.full(512, 0.5, np.float32).tobytes(), 'true or false'),
    'hop -1': ('?fs=1000&hop=-1', np.full(512, 0.5, np.float32).tobytes(), 'hop'),
    'empty': ('?fs=1000', b'', 'empty'),
}


@pytest.mark.parametrize('name', list(BINARY_CASES))
def test_http_bad_binary_input(client, name):
    TRIES['HTTP'] += 1
    q, body, words = BINARY_CASES[name]
    r = client.post('/predict' + q, content=body, headers={'content-type': 'application/octet-stream'})
    assert r.status_code == 422, (r.status_code, r.text[:500])
    assert words in r.json()['detail'], r.json()['detail']


def test_http_binary_equals_json(client):
    TRIES['HTTP'] += 2
    x = np.r_[np.full(256, 0.5), np.full(256, -0.25), np.zeros(100)].astype(np.float32)
    a = client.post('/predict?fs=1000&id=r1', content=x.tobytes(), headers={'content-type': 'application/octet-stream'})
    b = client.post('/predict', json={'samples': x.tolist(), 'fs': 1000, 'id': 'r1'})
    assert a.status_code == b.status_code == 200, a.text
    da, db = a.json(), b.json()
    assert da['probabilities'] == db['probabilities'] and da['id'] == 'r1' and da['n_windows'] == 2
    e = [1.0, math.exp(4 * 0.5), math.exp(-4 * 0.5)]
    assert da['windows'][0]['probabilities'] == pytest.approx([v / sum(e) for v in e], abs=1e-6)   # by hand
    r = client.post('/predict?fs=1000', json={'samples': x.tolist(), 'fs': 1000})
    assert r.status_code == 422 and 'query' in r.json()['detail']
    r = client.post('/predict/batch?fs=1000', content=x.tobytes(), headers={'content-type': 'application/octet-stream'})
    assert r.status_code == 415


def test_http_declared_size_lies(client):
    "Content-Length bigger than the limit: 413 before reading; a non-number: 400."
    TRIES['HTTP'] += 2
    r = client.post('/predict', content=b'{}', headers={'content-type': 'application/json', 'content-length': '999999999999'})
    assert r.status_code == 413
    status, _, called = _asgi(BodySizeLimit(_ok_app, max_body_bytes=100), [(b'content-length', b'1e3')], [])
    assert status == 400 and not called


async def _ok_app(scope, receive, send):
    while (await receive()).get('more_body'): pass
    await send({'type': 'http.response.start', 'status': 200, 'headers': []})
    await send({'type': 'http.response.body', 'body': b'ok'})


def _asgi(mw, headers, chunks, delay=0.0):
    "Drive a middleware with a fake exchange (`delay` s before each chunk); (status, body, app called)."
    sent, called, it = [], [], iter(chunks)
    async def app(scope, receive, send):
        called.append(True); await mw_app(scope, receive, send)
    mw_app, mw.app = mw.app, app
    async def receive():
        await asyncio.sleep(delay)
        try: return {'type': 'http.request', 'body': next(it), 'more_body': True}
        except StopIteration: return {'type': 'http.request', 'body': b'', 'more_body': False}
    async def send(msg): sent.append(msg)
    scope = {'type': 'http', 'method': 'POST', 'path': '/predict', 'headers': headers}
    asyncio.run(mw(scope, receive, send))
    return sent[0]['status'], b''.join(m.get('body', b'') for m in sent[1:]), bool(called)


def test_middleware_slow_body_is_408():
    TRIES['HTTP'] += 2
    mw = BodySizeLimit(_ok_app, max_body_bytes=10_000, max_inflight=1, body_timeout_s=0.3)
    status, body, called = _asgi(mw, [(b'content-length', b'1000')], [b'x' * 10] * 100, delay=0.05)
    assert status == 408 and b'did not arrive within 0.3 s' in body and not called
    mw = BodySizeLimit(_ok_app, max_body_bytes=10_000, max_inflight=1, body_timeout_s=5)
    status, _, called = _asgi(mw, [(b'content-length', b'100')], [b'x' * 10] * 10, delay=0.001)
    assert status == 200 and called


def test_middleware_queue_full_is_503():
    "One slot, one waiter allowed: the third concurrent request is answered 503 with Retry-After at once."
    TRIES['HTTP'] += 3
    async def slow_app(scope, receive, send):
        await asyncio.sleep(0.3)
        await send({'type': 'http.response.start', 'status': 200, 'headers': []})
        await send({'type': 'http.response.body', 'body': b'ok'})
    mw = BodySizeLimit(slow_app, max_body_bytes=1000, max_inflight=1, max_queue=1, body_timeout_s=5)
    async def one():
        sent = []
        async def receive(): return {'type': 'http.request', 'body': b'{}', 'more_body': False}
        async def send(m): sent.append(m)
        await mw({'type': 'http', 'method': 'POST', 'path': '/predict', 'headers': [(b'content-length', b'2')]}, receive, send)
        return sent[0]
    async def main(): return await asyncio.gather(one(), one(), one())
    starts = asyncio.run(main())
    assert sorted(s['status'] for s in starts) == [200, 200, 503]
    busy = next(s for s in starts if s['status'] == 503)
    assert (b'retry-after', b'1') in busy['headers']


def test_create_app_limit_checks(onnx_files):
    TRIES['HTTP'] += 4
    for kw in (dict(max_inflight=0), dict(max_queue=-1), dict(body_timeout_s=float('nan')), dict(max_inflight=True)):
        with pytest.raises(ValueError, match=list(kw)[0]): create_app(onnx_files['good'], **kw)


# --------------------------------------------------------------------------- HTTP: a real server on loopback

def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


@pytest.fixture(scope='module')
def server(onnx_files, tmp_path_factory):
    "uvicorn on 127.0.0.1 with small limits: 1 request at work, 2 waiting, 1.5-s body timeout."
    port = _free_port()
    log = tmp_path_factory.mktemp('srv') / 'server.log'
    code = (f"from lstm_pfd.serve import serve; serve({str(onnx_files['good'])!r}, port={port}, log_level='warning', "
            "max_body_bytes=200_000, max_inflight=1, max_queue=2, body_timeout_s=1.5)")
    with open(log, 'w') as lf:
        proc = subprocess.Popen([sys.executable, '-c', code], stdout=lf, stderr=subprocess.STDOUT)
    base = f'http://127.0.0.1:{port}'
    for _ in range(300):
        try:
            if httpx.get(base + '/health', timeout=1).status_code == 200: break
        except httpx.TransportError: time.sleep(0.1)
    else:
        proc.kill(); raise RuntimeError(log.read_text()[-2000:])
    yield dict(base=base, port=port, proc=proc, log=log)
    proc.terminate()
    try: proc.wait(10)
    except subprocess.TimeoutExpired: proc.kill(); proc.wait()
    assert 'Traceback' not in log.read_text()


def _raw(port, head: bytes, parts=(), pause=0.0, read_timeout=10.0) -> bytes:
    "Send a raw HTTP request over a socket (head, then `parts` with `pause` s between them); the answer's bytes."
    with socket.create_connection(('127.0.0.1', port), timeout=read_timeout) as s:
        s.sendall(head)
        try:
            for p in parts:
                time.sleep(pause); s.sendall(p)
        except OSError: pass   # the server answered and closed while we were still sending
        out = b''
        try:
            while chunk := s.recv(65536): out += chunk
        except (socket.timeout, ConnectionResetError): pass
        return out


def test_real_server_slow_body_is_cut(server):
    "A body trickled at 1 byte per 0.2 s is answered 408 after body_timeout_s (1.5 s), not held open."
    TRIES['HTTP'] += 1
    body = json.dumps({'samples': OK, 'fs': 1000}).encode()
    head = (f'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
            f'Content-Length: {len(body)}\r\n\r\n').encode()
    t0 = time.monotonic()
    out = _raw(server['port'], head, [body[i:i + 1] for i in range(40)], pause=0.2)
    assert out.startswith(b'HTTP/1.1 408'), out[:300]
    assert time.monotonic() - t0 < 20
    assert httpx.get(server['base'] + '/health', timeout=5).status_code == 200


def test_real_server_stalled_uploads_do_not_block(server):
    "Five stalled uploads (headers, then nothing): each is cut with 408; a normal request is then served."
    TRIES['HTTP'] += 5
    from concurrent.futures import ThreadPoolExecutor
    head = b'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n'
    with ThreadPoolExecutor(5) as ex:
        outs = list(ex.map(lambda _: _raw(server['port'], head, [b'{"sa'], read_timeout=30), range(5)))
    assert all(o.split(b'\r\n')[0].split()[1] in (b'408', b'503') for o in outs), [o[:40] for o in outs]
    assert any(o.startswith(b'HTTP/1.1 408') for o in outs)
    r = httpx.post(server['base'] + '/predict', json={'samples': OK, 'fs': 1000}, timeout=30)
    assert r.status_code == 200 and r.json()['label'] == 'pos'


def test_real_server_over_the_queue_is_503(server):
    "A stalled upload holds no work slot (1 slot, 2 may wait): of 8 requests sent meanwhile some are served, the rest get 503 + Retry-After."
    TRIES['HTTP'] += 8
    from concurrent.futures import ThreadPoolExecutor
    head = b'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n'
    with socket.create_connection(('127.0.0.1', server['port'])) as stall:
        stall.sendall(head)
        time.sleep(0.3)
        def post(_):
            try: return httpx.post(server['base'] + '/predict', json={'samples': OK, 'fs': 1000}, timeout=30)
            except httpx.TransportError as e: return e
        with ThreadPoolExecutor(8) as ex: rs = list(ex.map(post, range(8)))
    codes = collections.Counter(getattr(r, 'status_code', type(r).__name__) for r in rs)
    assert codes.get(200, 0) >= 1 and set(codes) <= {200, 503}, codes
    for busy in (r for r in rs if getattr(r, 'status_code', 0) == 503):
        assert busy.headers.get('retry-after') == '1' and 'busy' in busy.json()['detail']
    r = httpx.post(server['base'] + '/predict', json={'samples': OK, 'fs': 1000}, timeout=30)
    assert r.status_code == 200


def test_tries_per_entry_point():
    "Not a check: prints how many hostile cases each entry point met in this run."
    print('\nhostile tries per entry point: ' + ', '.join(f'{k} {v}' for k, v in sorted(TRIES.items())))
