"""ONNX export (numerics kept by the default exporter, parity on edge inputs), the Predictor runtime and
quantization checks (lstm_pfd.export, lstm_pfd.predict)."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip('torch')
pytest.importorskip('onnxruntime')
pytest.importorskip('onnx')

from lstm_pfd import models, train
from lstm_pfd.cli import main
from lstm_pfd.export import ExportError, export_checkpoint, quantize, to_onnx
from lstm_pfd.predict import Prediction, Predictor, read_metadata
from lstm_pfd.utils import frame, normalize_windows, record_vote, softmax

L = 1024          # short windows keep every export fast
FS = 2048.0


class TinyConv(torch.nn.Module):
    def __init__(self, n=4):
        super().__init__()
        self.f = torch.nn.Sequential(torch.nn.Conv1d(1, 8, 16, stride=4), torch.nn.BatchNorm1d(8), torch.nn.ReLU(),
                                     torch.nn.Conv1d(8, 16, 5, stride=2), torch.nn.ReLU())
        self.fc = torch.nn.Linear(16, n)

    def forward(self, x): return self.fc(self.f(x).mean(-1))


class TinyLSTM(torch.nn.Module):
    "The LSTM's initial state is derived from the batch: the classic batch-1 export trap."
    def __init__(self, n=4):
        super().__init__()
        self.c = torch.nn.Conv1d(1, 8, 16, stride=16)
        self.lstm = torch.nn.LSTM(8, 12, batch_first=True, bidirectional=True)
        self.fc = torch.nn.Linear(24, n)

    def forward(self, x):
        h = self.c(x).transpose(1, 2)
        h0 = x.new_zeros(2, x.shape[0], 12)
        o, _ = self.lstm(h, (h0, h0))
        return self.fc(o.mean(1))


class TinyAttention(torch.nn.Module):
    def __init__(self, n=4):
        super().__init__()
        self.c = torch.nn.Conv1d(1, 16, 32, stride=32)
        self.att = torch.nn.MultiheadAttention(16, 2, batch_first=True)
        self.fc = torch.nn.Linear(16, n)

    def forward(self, x):
        h = self.c(x).transpose(1, 2)
        o, _ = self.att(h, h, h)
        return self.fc(o.mean(1))


def _seeded(cls, seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls()


def _run(path, x):
    import onnxruntime as ort
    return ort.InferenceSession(str(path), providers=['CPUExecutionProvider']).run(None, {'x': x})[0]


def _ref(model, x):
    with torch.no_grad(): return model.eval()(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize('cls', [TinyConv, TinyLSTM, TinyAttention])
@pytest.mark.parametrize('exporter', ['dynamo', 'torchscript'])
def test_tiny_models_parity_and_batch_axis(tmp_path, cls, exporter):
    m = _seeded(cls)
    rep = to_onnx(m, tmp_path / 'm.onnx', window_len=L, class_names=list('abcd'), exporter=exporter)
    assert rep['exporter'] == exporter and rep['max_abs_diff'] < 1e-4
    rng = np.random.default_rng(5)
    for b in (1, 3, 32):
        x = rng.standard_normal((b, 1, L)).astype(np.float32)
        out = _run(tmp_path / 'm.onnx', x)
        assert out.shape == (b, 4)
        np.testing.assert_allclose(out, _ref(m, x), atol=1e-4)


def test_every_registry_model_exports_with_parity(tmp_path):
    assert len(models.MODELS) >= 2
    rng = np.random.default_rng(0)
    x1, x32 = (rng.standard_normal((b, 1, L)).astype(np.float32) for b in (1, 32))
    for name in models.MODELS:
        m = models.create_model(name, seed=0)
        p = tmp_path / f'{name}.onnx'
        rep = to_onnx(m, p, window_len=L, fs=FS)
        assert rep['max_abs_diff'] < 1e-4, name
        o1, o32 = _run(p, x1), _run(p, x32)
        assert o1.shape == (1, 11) and o32.shape == (32, 11), name
        np.testing.assert_allclose(o32, _ref(m, x32), atol=1e-4, err_msg=name)
        assert not list(tmp_path.glob(f'{name}.onnx.*')), 'no external-data side files'


def test_metadata_round_trip(tmp_path):
    m = _seeded(TinyConv)
    to_onnx(m, tmp_path / 'm.onnx', window_len=L, fs=FS, class_names=['a', 'b', 'c', 'd'], config_hash='deadbeef')
    meta = read_metadata(tmp_path / 'm.onnx')
    import lstm_pfd
    assert meta['class_names'] == ['a', 'b', 'c', 'd']
    assert meta['fs'] == FS and meta['window_len'] == L and meta['config_hash'] == 'deadbeef'
    assert meta['lstm_pfd_version'] == lstm_pfd.__version__ and meta['precision'] == 'fp32'
    p = Predictor(tmp_path / 'm.onnx')
    assert p.class_names == ['a', 'b', 'c', 'd'] and p.fs == FS and p.window_len == L


def test_default_class_names_are_the_faults(tmp_path):
    from lstm_pfd import physics
    to_onnx(_seeded(lambda: TinyConv(11)), tmp_path / 'm.onnx', window_len=L)
    assert read_metadata(tmp_path / 'm.onnx')['class_names'] == list(physics.FAULTS)


def test_parity_failure_raises_and_writes_nothing(tmp_path):
    class Counter(torch.nn.Module):
        def __init__(self):
            super().__init__(); self.fc, self.calls = torch.nn.Linear(1, 2), 0
        def forward(self, x):
            self.calls += 1
            return self.fc(x.mean(-1)) + float(self.calls)
    with pytest.raises(ExportError, match=r'max \|logit difference\|'):
        to_onnx(Counter(), tmp_path / 'bad.onnx', window_len=64, class_names=['a', 'b'], exporter='torchscript')
    assert not (tmp_path / 'bad.onnx').exists()


def test_bad_export_arguments(tmp_path):
    m = _seeded(TinyConv)
    for kw, msg in [(dict(window_len=0), 'window_len'), (dict(window_len=L, fs=-1.0), 'fs'),
                    (dict(window_len=L, class_names=['a']), '4 logits'), (dict(window_len=L, exporter='x'), 'exporter')]:
        with pytest.raises(ValueError, match=msg): to_onnx(m, tmp_path / 'x.onnx', **kw)


@pytest.fixture(scope='module')
def conv_onnx(tmp_path_factory):
    d = tmp_path_factory.mktemp('pred')
    m = _seeded(TinyConv)
    to_onnx(m, d / 'm.onnx', window_len=L, fs=FS, class_names=list('abcd'))
    return d / 'm.onnx', m


def test_predictor_record_soft_vote(conv_onnx):
    path, m = conv_onnx
    rng = np.random.default_rng(2)
    rec = rng.standard_normal(4 * L + 17).astype(np.float32)
    r = Predictor(path).predict(rec, fs=FS)
    assert isinstance(r, Prediction) and r.n_windows == 4
    w = np.stack([rec[i * L:(i + 1) * L] for i in range(4)])[:, None]     # windows cut by hand
    p = torch.softmax(torch.from_numpy(_ref(m, w)), -1).numpy()
    np.testing.assert_allclose(r.window_probabilities, p, atol=1e-5)
    np.testing.assert_allclose(r.probabilities, p.mean(0), atol=1e-5)
    # the predicted class holds the maximum probability (by value: near-equal classes may swap under float noise)
    assert p.mean(0)[r.index] == pytest.approx(p.mean(0).max(), abs=1e-5) and r.label == 'abcd'[r.index]
    assert [p[j, 'abcd'.index(lab)] for j, lab in enumerate(r.window_labels)] == pytest.approx(p.max(1).tolist(), abs=1e-5)
    d = json.loads(json.dumps(r.to_dict()))
    assert set(d['probabilities']) == set('abcd') and d['n_windows'] == 4


def test_predictor_windows_forms_and_float64(conv_onnx):
    path, _ = conv_onnx
    pred = Predictor(path)
    w = np.random.default_rng(3).standard_normal((5, L))
    a = pred.predict(w, fs=FS)
    b = pred.predict(w[:, None, :].astype(np.float32), fs=FS)
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-6)
    assert a.n_windows == 5
    assert pred.predict(np.arange(3 * L, dtype=np.int16), fs=FS).n_windows == 3   # integer samples are converted
    assert pred.predict(np.zeros(3 * L), fs=FS, hop=L // 2).n_windows == 5


@pytest.mark.parametrize('x, fs, kw, err, msg', [
    (np.zeros(4 * L), None, {}, ValueError, 'sampling rate of x is required'),
    (np.zeros(4 * L), 2 * FS, {}, ValueError, 'resample=True'),
    (np.zeros(4 * L), 0.0, {}, ValueError, 'positive'),
    (np.zeros(4 * L), float('nan'), {}, ValueError, 'positive'),
    (np.zeros(L - 1), FS, {}, ValueError, 'too short'),
    (np.r_[np.zeros(L), np.inf, np.zeros(L)], FS, {}, ValueError, 'NaN/Inf'),
    (np.r_[np.zeros(L), np.nan], FS, {}, ValueError, r'first at index \(1024,\)'),
    (np.zeros((3, L // 2)), FS, {}, ValueError, f'L = {L}'),
    (np.zeros((3, 2, L)), FS, {}, ValueError, 'allowed: a record'),
    (np.zeros((1, 1, 1, L)), FS, {}, ValueError, 'allowed: a record'),
    (np.zeros(0), FS, {}, ValueError, 'empty'),
    (np.zeros(4 * L, complex), FS, {}, TypeError, 'dtype complex'),
    (np.array(['a'] * (2 * L)), FS, {}, TypeError, 'dtype'),
    (np.zeros((3, L)), 2 * FS, dict(resample=True), ValueError, 'needs a 1-D record'),
    (np.zeros((3, L)), FS, dict(hop=10), ValueError, 'hop'),
])
def test_predictor_validation_errors(conv_onnx, x, fs, kw, err, msg):
    with pytest.raises(err, match=msg): Predictor(conv_onnx[0]).predict(x, fs=fs, **kw)


def test_predictor_explicit_resampling(conv_onnx):
    path, _ = conv_onnx
    pred = Predictor(path)
    t = np.arange(3 * L) / FS
    rec = np.sin(2 * np.pi * 50 * t).astype(np.float32)
    r = pred.predict(rec[::2], fs=FS / 2, resample=True)      # 1024 Hz -> 2048 Hz: 3 windows again
    assert r.n_windows == 3 and r.fs == FS
    assert np.abs(r.probabilities - pred.predict(rec, fs=FS).probabilities).max() < 0.2


def test_predictor_bad_construction(tmp_path, conv_onnx):
    with pytest.raises(FileNotFoundError): Predictor(tmp_path / 'nope.onnx')
    with pytest.raises(ValueError, match='threads'): Predictor(conv_onnx[0], threads=0)
    assert Predictor(conv_onnx[0], threads=2).session.get_session_options().intra_op_num_threads == 2
    assert Predictor(conv_onnx[0]).session.get_session_options().intra_op_num_threads == 1


def test_predictor_does_not_import_torch(conv_onnx):
    rec = conv_onnx[0].with_name('rec.npy')
    np.save(rec, np.zeros(3 * L, np.float32))
    code = textwrap.dedent(f"""
        import sys, numpy as np
        import lstm_pfd.predict, lstm_pfd.export, lstm_pfd.cli
        assert 'torch' not in sys.modules, 'importing predict, export or cli imported torch'
        from lstm_pfd.predict import Predictor
        r = Predictor({str(conv_onnx[0])!r}).predict(np.zeros({3 * L}, np.float32), fs={FS})
        assert r.n_windows == 3
        assert 'torch' not in sys.modules, 'predicting imported torch'
        assert lstm_pfd.cli.main(['predict', {str(conv_onnx[0])!r}, {str(rec)!r}, '--fs', '{FS}', '--json']) == 0
        assert 'torch' not in sys.modules, 'lstm-pfd predict imported torch'
        print('ok')
    """)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and 'ok' in out.stdout, out.stderr[-2000:]


def test_helpers():
    w = frame(np.arange(10.), 3)
    assert w.shape == (3, 3) and w.dtype == np.float32 and w[2].tolist() == [6, 7, 8]
    ids, p = record_vote(np.array([[1, 0], [0, 1], [1, 0]], np.float32), np.array([5, 2, 5]))
    assert ids.tolist() == [2, 5]
    np.testing.assert_allclose(p, [[0, 1], [1, 0]])
    np.testing.assert_allclose(softmax(np.array([[np.log(3.), 0.]])), [[0.75, 0.25]], atol=1e-6)


# --- numerics: the amplitude normalisation's epsilon survives the default exporter ------------------------

def _sqrt_inputs(path):
    "Op type producing each Sqrt node's input in the ONNX graph at `path`."
    import onnx
    g = onnx.load(str(path)).graph
    producer = {o: n.op_type for n in g.node for o in n.output}
    return [producer.get(n.input[0]) for n in g.node if n.op_type == 'Sqrt']


def test_epsilon_survives_default_exporter(tmp_path):
    m = models.create_model('compact', seed=0)
    rep = to_onnx(m, tmp_path / 'c.onnx', window_len=L, fs=FS)     # the default exporter (auto: dynamo)
    assert rep['exporter'] == 'dynamo'
    srcs = _sqrt_inputs(tmp_path / 'c.onnx')
    assert srcs and all(s in ('Add', 'Max', 'Clip') for s in srcs), f'Sqrt fed by {srcs}: the epsilon was dropped'
    out = _run(tmp_path / 'c.onnx', np.zeros((2, 1, L), np.float32))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, _ref(m, np.zeros((2, 1, L), np.float32)), atol=1e-4)
    for name in ('all-zero window', 'constant window', 'tiny amplitude (1e-6)', 'large amplitude (1e3)', 'generated record'):
        assert name in rep['diffs']


def test_parity_check_catches_a_dropped_epsilon(tmp_path, monkeypatch):
    "With the dynamo graph optimiser on (it folds '+ 1e-12' away) the export must be refused, naming the input."
    import lstm_pfd.export as ex
    real = torch.onnx.export
    monkeypatch.setattr(torch.onnx, 'export', lambda *a, **kw: real(*a, **{**kw, 'optimize': True}) if kw.get('dynamo') else real(*a, **kw))
    with pytest.raises(ExportError, match='all-zero window'):
        ex.to_onnx(models.create_model('compact', seed=0), tmp_path / 'c.onnx', window_len=L, exporter='dynamo')
    assert not (tmp_path / 'c.onnx').exists()


def test_normalized_wrapper_keeps_epsilon(tmp_path):
    class Lin(torch.nn.Module):
        def __init__(self): super().__init__(); self.fc = torch.nn.Linear(L, 3)
        def forward(self, x): return self.fc(x[:, 0])
    m = _seeded(Lin)
    for mode in ('zscore', 'rms'):
        p = tmp_path / f'{mode}.onnx'
        to_onnx(m, p, window_len=L, class_names=list('abc'), normalize=mode)
        x = np.concatenate([np.zeros((1, 1, L)), np.full((1, 1, L), 3.0),
                            np.random.default_rng(0).normal(5, 2, (2, 1, L))]).astype(np.float32)
        out = _run(p, x)
        assert np.isfinite(out).all()
        np.testing.assert_allclose(out, _ref(m, normalize_windows(x, mode)), atol=1e-4)


def test_export_refuses_an_existing_file_and_leaves_no_temporary(tmp_path):
    m = _seeded(TinyConv)
    to_onnx(m, tmp_path / 'm.onnx', window_len=L, class_names=list('abcd'))
    with pytest.raises(FileExistsError, match='overwrite=True'):
        to_onnx(m, tmp_path / 'm.onnx', window_len=L, class_names=list('abcd'))
    to_onnx(m, tmp_path / 'm.onnx', window_len=L, class_names=list('abcd'), overwrite=True)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        to_onnx(m, tmp_path / 'no' / 'm.onnx', window_len=L, class_names=list('abcd'))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['m.onnx']


def test_metadata_is_strict_json(tmp_path):
    m = _seeded(TinyConv)
    to_onnx(m, tmp_path / 'm.onnx', window_len=L, class_names=list('abcd'), config_hash=None)
    import onnx
    for p in onnx.load(str(tmp_path / 'm.onnx')).metadata_props:
        json.loads(p.value, parse_constant=lambda c: pytest.fail(f'{p.key} holds {c}'))


def test_zscore_training_gives_the_same_predictions_in_torch_and_onnx(tmp_path):
    "A compact model trained one short epoch on z-scored windows: the exported file normalises raw windows itself."
    from lstm_pfd.data import WindowDataset
    names = ['60', '180', '420']
    def records(n, seed):
        x, y = _tones(n, seed)
        off = np.random.default_rng(seed).uniform(-3, 3, (n, 1)).astype(np.float32)   # a DC offset zscore removes
        return np.tile(x[:, 0], 3) * np.float32(5) + off, y
    (xtr, ytr), (xva, yva) = records(48, 0), records(12, 1)
    tr = WindowDataset(xtr, ytr, np.arange(48), window_len=L, normalize='zscore', fs=FS, class_names=names)
    va = WindowDataset(xva, yva, np.arange(12), window_len=L, normalize='zscore', fs=FS, class_names=names)
    m = models.create_model('compact', n_classes=3, seed=0)
    ck = tmp_path / 'z.pt'
    res = train.fit(m, tr, va, epochs=1, batch_size=32, checkpoint_path=ck, progress=False)
    c = torch.load(ck, weights_only=True)
    c['normalize'] = tr.normalize        # contract: the checkpoint records the training data's normalisation
    torch.save(c, ck)
    rep = export_checkpoint(ck, tmp_path / 'z.onnx')
    assert rep['fp32']['metadata']['normalize'] == 'zscore'
    raw = np.ascontiguousarray(np.stack([xva[:, i * L:(i + 1) * L] for i in range(3)], 1).reshape(-1, 1, L))
    with torch.no_grad():
        want = torch.softmax(res.model.eval()(torch.from_numpy(normalize_windows(raw, 'zscore'))), -1).numpy()
    got = Predictor(tmp_path / 'z.onnx').predict_windows(raw)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(want[np.arange(len(got)), got.argmax(1)], want.max(1), atol=1e-5)   # same top class, by value
    r = Predictor(tmp_path / 'z.onnx').predict(xva[0], fs=FS)
    np.testing.assert_allclose(r.probabilities, want[:3].mean(0), atol=1e-5)


# --- quantization on a small trained model ---------------------------------------------------------------

def _tones(n, seed):
    "Three classes: a tone at 60, 180 or 420 Hz (+-5 %) in white noise."
    g = np.random.default_rng(seed)
    y = g.integers(0, 3, n)
    t = np.arange(L) / FS
    f = np.array([60., 180., 420.])[y][:, None] * g.uniform(0.95, 1.05, (n, 1))
    x = np.sin(2 * np.pi * f * t + g.uniform(0, 2 * np.pi, (n, 1))) + 0.5 * g.standard_normal((n, L))
    return x[:, None].astype(np.float32), y


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp('quant')
    xtr, ytr = _tones(256, 0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        m = TinyConv(3)
        opt = torch.optim.Adam(m.parameters(), 1e-2)
        g = torch.Generator().manual_seed(0)
        X, Y = torch.from_numpy(xtr), torch.from_numpy(ytr)
        for _ in range(80):
            i = torch.randint(0, len(X), (32,), generator=g)
            loss = torch.nn.functional.cross_entropy(m(X[i]), Y[i])
            opt.zero_grad(); loss.backward(); opt.step()
    m.eval()
    to_onnx(m, d / 'fp32.onnx', window_len=L, fs=FS, class_names=['60', '180', '420'])
    return d, m, xtr


def test_static_int8_runs_and_agrees(trained):
    d, m, xtr = trained
    rep = quantize(d / 'fp32.onnx', d / 'int8.onnx', mode='int8', calibration=xtr, n_calibration=128)
    assert rep['bytes'] < rep['fp32_bytes']
    import onnx
    ops = {n.op_type for n in onnx.load(str(d / 'int8.onnx')).graph.node}
    assert 'QuantizeLinear' in ops and 'DequantizeLinear' in ops and 'ConvInteger' not in ops
    xte, yte = _tones(200, 1)
    p32, p8 = Predictor(d / 'fp32.onnx'), Predictor(d / 'int8.onnx')
    a32, a8 = p32.predict_windows(xte).argmax(1), p8.predict_windows(xte).argmax(1)
    assert (a32 == yte).mean() > 0.8, 'the toy model did not train'
    assert (a8 == a32).mean() >= 0.9
    assert p8.metadata['precision'] == 'int8' and p8.class_names == ['60', '180', '420'] and p8.fs == FS


def test_dynamic_int8_and_fp16(trained):
    d, m, xtr = trained
    import onnx
    rep = quantize(d / 'fp32.onnx', d / 'dyn.onnx', mode='int8-dynamic')
    ops = {n.op_type for n in onnx.load(str(d / 'dyn.onnx')).graph.node}
    assert 'ConvInteger' not in ops, 'convolutions must not be dynamically quantized'
    assert rep['argmax_agreement'] >= 0.9
    rep = quantize(d / 'fp32.onnx', d / 'fp16.onnx', mode='fp16')
    assert rep['bytes'] < rep['fp32_bytes'] and rep['max_abs_diff'] < 0.05
    m16 = onnx.load(str(d / 'fp16.onnx'))
    conv_w = {n.input[1] for n in m16.graph.node if n.op_type == 'Conv'}
    assert conv_w and all(t.data_type == onnx.TensorProto.FLOAT16 for t in m16.graph.initializer if t.name in conv_w)
    assert read_metadata(d / 'fp16.onnx')['precision'] == 'fp16'


def test_fp16_refuses_recurrent_models(tmp_path):
    to_onnx(_seeded(TinyLSTM), tmp_path / 'l.onnx', window_len=L, class_names=list('abcd'))
    with pytest.raises(ValueError, match='LSTM'):    # an FP16 LSTM graph segfaults onnxruntime's CPU provider
        quantize(tmp_path / 'l.onnx', tmp_path / 'l16.onnx', mode='fp16')
    assert not (tmp_path / 'l16.onnx').exists()
    rep = quantize(tmp_path / 'l.onnx', tmp_path / 'l8.onnx', mode='int8-dynamic')
    assert rep['max_abs_diff'] < 0.1


def test_quantize_errors(trained):
    d, _, xtr = trained
    with pytest.raises(ValueError, match='mode'): quantize(d / 'fp32.onnx', d / 'x.onnx', mode='int4')
    with pytest.raises(ValueError, match='calibration'): quantize(d / 'fp32.onnx', d / 'x.onnx', mode='int8')
    with pytest.raises(ValueError, match=r'\[n, 1, 1024\]'):
        quantize(d / 'fp32.onnx', d / 'x.onnx', mode='int8', calibration=xtr[:, :, :100])
    quantize(d / 'fp32.onnx', d / 'q.onnx', mode='fp16')
    with pytest.raises(ValueError, match='already fp16'): quantize(d / 'q.onnx', d / 'x.onnx', mode='int8', calibration=xtr)


# --- export from a checkpoint, and the CLI over it -------------------------------------------------------

def test_export_checkpoint_and_cli_predict(tmp_path, capsys):
    m = models.create_model('compact', n_classes=3, seed=0)
    ck = train.save_checkpoint(tmp_path / 'c.pt', m, class_names=['x', 'y', 'z'], window_len=L, fs=FS, config_hash='h1')
    xcal = np.random.default_rng(0).standard_normal((32, 1, L)).astype(np.float32)
    res = export_checkpoint(ck, tmp_path / 'm.onnx', quantize='int8', calibration=xcal)
    assert res['fp32']['max_abs_diff'] < 1e-4 and (tmp_path / 'm.int8.onnx').exists()
    meta = read_metadata(tmp_path / 'm.onnx')
    assert meta['class_names'] == ['x', 'y', 'z'] and meta['fs'] == FS and meta['config_hash'] == 'h1'
    assert meta['normalize'] is None
    rec = np.random.default_rng(1).standard_normal(3 * L).astype(np.float32)
    np.save(tmp_path / 'r.npy', rec)
    np.savetxt(tmp_path / 'r.csv', rec, delimiter=',')
    capsys.readouterr()
    assert main(['predict', str(tmp_path / 'm.onnx'), str(tmp_path / 'r.npy'), '--fs', str(FS)]) == 0
    out = capsys.readouterr().out
    want = Predictor(tmp_path / 'm.onnx').predict(rec, fs=FS)
    assert out.startswith(want.label) and 'windows agree' in out
    assert main(['predict', str(tmp_path / 'm.onnx'), str(tmp_path / 'r.csv'), '--fs', str(FS), '--json']) == 0
    assert json.loads(capsys.readouterr().out)['label'] == want.label
    for args, msg in [(['r.npy', '--fs', str(2 * FS)], 'resample'), (['two.npy', '--fs', str(FS)], 'channel'),
                      (['c.pt', '--fs', str(FS)], 'format')]:
        np.save(tmp_path / 'two.npy', np.zeros((2, 3 * L)))
        assert main(['predict', str(tmp_path / 'm.onnx'), str(tmp_path / args[0]), *args[1:]]) == 2
        err = capsys.readouterr().err
        assert msg in err and 'Traceback' not in err
