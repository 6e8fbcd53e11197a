"""Questionable inputs get a clear error or an explicit warning, and expected errors are user errors on the
command line: HDF5 files that read other files, boolean recordings, empty classes, repeated or string class
names, a rate that overrides a WAV header, empty or cut files, a column out of range, weights that do not fit."""
import io
import json
import logging
import os
import subprocess
import sys
import wave
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from lstm_pfd.cli import main
from lstm_pfd.config import DataConfig
from lstm_pfd.data import DatasetError, choose_fs, import_recordings, open_dataset, read_recording
from lstm_pfd.models import create_model
from lstm_pfd.train import CheckpointMismatch, load_checkpoint, save_checkpoint

CFG = DataConfig.preset('quick', {'signal.duration_s': 1.0})
FS = float(CFG.signal.fs)
N = CFG.signal.n_samples


def _wav(path: Path, n: int, fs: int = 8000, cut: int | None = None) -> Path:
    b = io.BytesIO()
    with wave.open(b, 'wb') as w:
        w.setnchannels(1); w.setsampwidth(2); w.setframerate(fs)
        w.writeframes((np.sin(np.arange(n) / 5) * 2000).astype('<i2').tobytes())
    raw = b.getvalue()
    path.write_bytes(raw if cut is None else raw[:cut])
    return path


# --------------------------------------------------------------------------- HDF5 storage outside the file

def _external_h5(d: Path, name='ext.h5') -> Path:
    secret = d / 'secret.bin'
    secret.write_bytes(np.arange(4096, dtype='<f4').tobytes())
    p = d / name
    with h5py.File(p, 'w') as f:
        f.create_dataset('x', shape=(4096,), dtype='<f4', external=[(str(secret), 0, 4096 * 4)])
        f.attrs['format'] = 'lstm_pfd-dataset'
    return p


def _virtual_h5(d: Path) -> Path:
    src = d / 'src.h5'
    with h5py.File(src, 'w') as f: f['data'] = np.arange(4096, dtype='f4')
    layout = h5py.VirtualLayout(shape=(4096,), dtype='f4')
    layout[:] = h5py.VirtualSource(str(src), 'data', shape=(4096,))
    p = d / 'virtual.h5'
    with h5py.File(p, 'w') as f: f.create_virtual_dataset('x', layout)
    return p


@pytest.mark.parametrize('make', [_external_h5, _virtual_h5])
def test_recording_reading_other_files_refused(make, tmp_path):
    p = make(tmp_path)
    with pytest.raises(ValueError, match='external storage or virtual dataset'): read_recording(p)
    with pytest.raises(ValueError, match='external storage or virtual dataset'):
        import_recordings([p], ['healthy'], FS, tmp_path / 'out.h5', cfg=CFG, progress=False)
    assert not (tmp_path / 'out.h5').exists()


def test_dataset_reading_other_files_refused(tmp_path):
    p = _external_h5(tmp_path)
    with pytest.raises(DatasetError, match='external storage or virtual dataset'): open_dataset(p)


def test_plain_h5_recording_still_reads(tmp_path):
    p = tmp_path / 'plain.h5'
    with h5py.File(p, 'w') as f: f['x'] = np.arange(10, dtype='f4')
    x, fs = read_recording(p)
    assert x.tolist() == list(range(10)) and fs is None


# --------------------------------------------------------------------------- questionable recordings and labels

def test_boolean_recordings_refused(tmp_path):
    with pytest.raises(ValueError, match='boolean samples'):
        import_recordings([np.ones(N, bool), np.zeros(N, bool)], ['healthy', 'wear'], FS, tmp_path / 'b.h5', cfg=CFG, progress=False)
    np.save(tmp_path / 'b.npy', np.ones(N, bool))
    with pytest.raises(ValueError, match='boolean samples'): read_recording(tmp_path / 'b.npy')


def test_integer_labels_with_empty_classes_refused(tmp_path):
    x = np.random.default_rng(0).standard_normal(N).astype(np.float32)
    with pytest.raises(ValueError, match=r'leave classes \[1, 2\] without a recording'):
        import_recordings([x, x], [0, 3], FS, tmp_path / 'e.h5', cfg=CFG, progress=False)


def test_class_names_without_recordings_warned(tmp_path, caplog):
    x = np.random.default_rng(0).standard_normal(N).astype(np.float32)
    with caplog.at_level(logging.WARNING, logger='lstm_pfd.recordings'):
        import_recordings([x, x], ['a', 'b'], FS, tmp_path / 'w.h5', cfg=CFG, class_names=['a', 'b', 'c'], progress=False)
    assert "['c'] have no recording" in caplog.text


def test_class_names_as_a_string_refused(tmp_path):
    x = np.zeros(N, np.float32)
    with pytest.raises(TypeError, match='class_names: got the string'):
        import_recordings([x, x], ['a', 'b'], FS, tmp_path / 's.h5', cfg=CFG, class_names='ab', progress=False)
    with pytest.raises(TypeError, match='class_names: got the string'):
        save_checkpoint(tmp_path / 's.pt', create_model('compact', n_classes=3, seed=0), class_names='abc')


def test_repeated_class_names_refused(tmp_path):
    m = create_model('compact', n_classes=3, seed=0)
    with pytest.raises(ValueError, match='repeat a name'): save_checkpoint(tmp_path / 'r.pt', m, class_names=['a', 'a', 'b'])
    ok = save_checkpoint(tmp_path / 'ok.pt', m, class_names=['a', 'b', 'c'])
    ck = torch.load(ok, weights_only=True)
    torch.save(dict(ck, class_names=['a', 'a', 'b']), tmp_path / 'dup.pt')
    with pytest.raises(CheckpointMismatch, match='not distinct names'): load_checkpoint(tmp_path / 'dup.pt')
    x = np.zeros(N, np.float32)
    with pytest.raises(ValueError, match='distinct'):
        import_recordings([x, x], ['a', 'b'], FS, tmp_path / 'd.h5', cfg=CFG, class_names=['a', 'a', 'b'], progress=False)


def test_repeated_class_names_in_onnx_metadata_refused(tmp_path):
    pytest.importorskip('onnxruntime'); pytest.importorskip('onnx')
    sys.path.insert(0, str(Path(__file__).parent))
    from test_serve import _mean_model
    from lstm_pfd.predict import Predictor
    import onnx
    p = _mean_model(tmp_path / 'm.onnx')
    proto = onnx.load(p)
    for e in proto.metadata_props:
        if 'class_names' in e.value or e.key.endswith('class_names'):
            e.value = e.value.replace('"neg"', '"pos"')
    p.write_bytes(proto.SerializeToString())
    with pytest.raises(ValueError, match='not distinct names'): Predictor(p)


def test_rate_overriding_a_wav_header_is_warned(tmp_path, caplog):
    w = _wav(tmp_path / 'r.wav', 2 * N, fs=8000)
    with caplog.at_level(logging.WARNING, logger='lstm_pfd.recordings'):
        assert choose_fs(FS, 8000.0, 'r.wav') == FS
        assert choose_fs(None, 8000.0, 'r.wav') == 8000.0 and choose_fs(8000.0, 8000.0, 'r.wav') == 8000.0
    assert caplog.text.count('overrides the rate stated in the file (8000 Hz)') == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger='lstm_pfd.recordings'):
        import_recordings([w], ['healthy'], 4000.0, tmp_path / 'o.h5', cfg=CFG, progress=False)
    assert 'overrides the rate stated in the file (8000 Hz)' in caplog.text


# --------------------------------------------------------------------------- the command line: exit 2, one line, the flag

@pytest.fixture(scope='module')
def files(tmp_path_factory):
    pytest.importorskip('onnxruntime'); pytest.importorskip('onnx')
    sys.path.insert(0, str(Path(__file__).parent))
    from test_serve import _mean_model
    d = tmp_path_factory.mktemp('inputs')
    (d / 'empty.npy').write_bytes(b'')
    np.save(d / 'half.npy', np.zeros(5000, np.float32)); (d / 'cut.npy').write_bytes((d / 'half.npy').read_bytes()[:3000])
    _wav(d / 'cut.wav', 8000, cut=3000)
    _wav(d / 'head.wav', 8000, cut=30)
    _wav(d / 'ok.wav', 8000)
    np.savetxt(d / 'two.csv', np.zeros((3000, 2)), delimiter=',')
    np.save(d / 'two.npy', np.zeros((2, 3000), np.float32))
    m = create_model('compact', n_classes=3, seed=0)
    ok = save_checkpoint(d / 'ok.pt', m, class_names=['a', 'b', 'c'], window_len=1024, fs=FS)
    ck = torch.load(ok, weights_only=True)
    k = next(k for k, v in ck['state_dict'].items() if v.ndim >= 2)
    torch.save(dict(ck, state_dict={**ck['state_dict'], k: ck['state_dict'][k][:1]}), d / 'shape.pt')
    torch.save(dict(ck, state_dict={kk: v for kk, v in ck['state_dict'].items() if kk != k}), d / 'missing.pt')
    (d / 'labels.csv').write_text('file,label\nempty.npy,healthy\n')
    return dict(d=d, onnx=_mean_model(d / 'm.onnx'), layer=k)


CASES = {
    '0-byte .npy': (['predict', '{onnx}', '{d}/empty.npy', '--fs', '1000'], ['empty.npy', 'empty or truncated']),
    'cut .npy': (['predict', '{onnx}', '{d}/cut.npy', '--fs', '1000'], ['cut.npy']),
    'truncated WAV data': (['predict', '{onnx}', '{d}/cut.wav'], ['cut.wav', 'truncated WAV']),
    'truncated WAV header': (['predict', '{onnx}', '{d}/head.wav'], ['head.wav', 'empty or truncated']),
    '--column out of range (csv)': (['predict', '{onnx}', '{d}/two.csv', '--fs', '1000', '--column', '5'], ['--column', 'no column 5']),
    '--column out of range (npy)': (['predict', '{onnx}', '{d}/two.npy', '--fs', '1000', '--column', '7'], ['--column', 'out of range']),
    '--column a name for an array': (['predict', '{onnx}', '{d}/two.npy', '--fs', '1000', '--column', 'x'], ['--column']),
    'import: 0-byte .npy': (['import', '{d}/labels.csv', '--fs', '1000', '--out', '{d}/i.h5', '--no-progress'], ['empty.npy', 'empty or truncated']),
    'weights of another shape': (['export', '{d}/shape.pt', '--out', '{d}/e.onnx'], ['do not fit', '{layer}', 'another shape']),
    'weights missing a layer': (['export', '{d}/missing.pt', '--out', '{d}/e.onnx'], ['do not fit', '{layer}', 'missing']),
}


@pytest.mark.parametrize('name', list(CASES))
def test_cli_user_errors(files, name, capfd):
    args, words = CASES[name]
    fill = dict(d=files['d'], onnx=files['onnx'], layer=files['layer'])
    before = sorted(p.name for p in files['d'].iterdir())
    rc = main([a.format(**fill) for a in args])
    err = capfd.readouterr().err.strip()
    assert rc == 2, (rc, err)
    assert len(err.splitlines()) == 1 and 'Traceback' not in err, err
    for w in words: assert w.format(**fill) in err, err
    assert sorted(p.name for p in files['d'].iterdir()) == before


def test_cli_fs_over_a_wav_header_warns(files):
    script = Path(sys.executable).parent / 'lstm-pfd'
    r = subprocess.run([str(script), 'predict', str(files['onnx']), str(files['d'] / 'ok.wav'), '--fs', '1000'],
                       capture_output=True, text=True, timeout=120, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0 and 'overrides the rate stated in the file (8000 Hz)' in r.stderr, r.stderr[-2000:]


def test_batch_size_over_the_training_set_refused_before_the_build(tmp_path):
    from lstm_pfd.config import ConfigError
    from lstm_pfd.experiments import run_experiment
    with pytest.raises(ConfigError, match='train.batch_size: got 100000; allowed: at most the 704 training windows'):
        run_experiment({'data': {'preset': 'quick'}, 'train': {'batch_size': 100_000, 'epochs': 1}}, tmp_path)
    assert not (tmp_path / 'datasets').exists() or not any((tmp_path / 'datasets').iterdir())   # nothing was built
