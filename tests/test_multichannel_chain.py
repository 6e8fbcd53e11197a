"""Four shaft channels through the whole chain: build -> train -> evaluate -> explain -> export -> Predictor -> HTTP,
and the refusals of a record whose channels do not match the model's."""
import numpy as np
import pytest

pytest.importorskip('onnxruntime')
pytest.importorskip('onnx')
pytest.importorskip('fastapi')
pytest.importorskip('httpx')
torch = pytest.importorskip('torch')
with __import__('warnings').catch_warnings():
    __import__('warnings').simplefilter('ignore', DeprecationWarning)
    from fastapi.testclient import TestClient

from lstm_pfd.config import CHANNELS, CHANNEL_UNITS, DataConfig
from lstm_pfd.data import build_dataset, open_dataset
from lstm_pfd.export import to_onnx
from lstm_pfd.models import create_model
from lstm_pfd.predict import Predictor, read_metadata
from lstm_pfd.serve import create_app
from lstm_pfd.train import evaluate, fit
from lstm_pfd.xai import channel_share, explain, explain_record_figure

pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning')

TINY = {'signal.duration_s': 1.0, 'dataset.records_per_class_severity': 3, 'dataset.window_s': 0.25, 'dataset.hop_s': 0.25}


@pytest.fixture(scope='module')
def chain(tmp_path_factory):
    "A tiny `quick_shaft` data set, a compact model trained one epoch on its 4 channels, and its ONNX export."
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp('mc')
    cfg = DataConfig.preset('quick_shaft').override(TINY)
    path = build_dataset(cfg, tmp / 'shaft.h5', progress=False)
    with open_dataset(path) as ds:
        channels, units, fs = list(ds.channels), list(ds.units), float(ds.fs)
        tr, va, te = ds.windows('train'), ds.windows('val'), ds.windows('test')
        model = create_model('compact', n_classes=len(ds.fault_names), in_channels=len(channels), seed=0)
        res = fit(model, tr, va, epochs=1, batch_size=32, progress=False, seed=0, checkpoint_path=tmp / 'shaft.pt')
        ev = evaluate(res.model, te)
        record, meta = ds['test'].record(0)
        x_te = np.stack([te[j][0].numpy() for j in range(len(te)) if te.record_ids[j] == te.record_ids[0]])
        L, normalize = int(x_te.shape[-1]), getattr(tr, 'normalize', None)
    rep = to_onnx(res.model, tmp / 'shaft.onnx', window_len=L, fs=fs, channels=channels, normalize=normalize)
    return dict(tmp=tmp, data=path, checkpoint=tmp / 'shaft.pt', model=res.model, ev=ev, channels=channels, units=units, fs=fs, L=L, record=record,
                x_te=x_te, onnx=tmp / 'shaft.onnx', rep=rep)


def test_data_and_evaluation_have_four_channels(chain):
    assert chain['channels'] == list(CHANNELS)
    assert chain['units'] == [CHANNEL_UNITS[c] for c in CHANNELS]
    assert chain['record'].shape[0] == 4 and chain['record'].shape[-1] == int(chain['fs'] * TINY['signal.duration_s'])
    assert chain['x_te'].shape[1:] == (4, chain['L'])
    s = chain['ev'].summary()
    assert s['n_records'] > 0 and s['n_windows'] == 4 * s['n_records']   # 1-s records, 0.25-s windows, no overlap
    assert 0.0 <= s['record_acc'] <= 1.0


def test_explain_gives_channel_attributions(chain):
    a = explain(chain['model'], chain['x_te'][:2], 'ig', n_steps=4, baseline='zero')
    assert a.shape == (2, 4, chain['L'])
    share = channel_share(a)
    assert share.shape == (2, 4) and np.allclose(share.sum(1), 1.0)
    named = channel_share(a[0], chain['channels'])
    assert list(named) == chain['channels']


def test_xai_report_names_the_channel(chain):
    fig, s = explain_record_figure(chain['checkpoint'], chain['data'], 0, split='test', n_steps=4, n_segments=8)
    assert s['channel'] in chain['channels'] and list(s['channel_share']) == chain['channels']
    assert abs(sum(s['channel_share'].values()) - 1) < 1e-6
    assert s['channel_share'][s['channel']] == max(s['channel_share'].values())
    assert f"on {s['channel']} (" in fig.axes[0].get_title()
    assert set(s['precession_share']) == {'forward', 'reverse', 'static'}   # x and y probes: forward vs reverse precession
    assert abs(sum(s['precession_share'].values()) - 1) < 1e-6


def test_export_metadata_names_channels(chain):
    meta = read_metadata(chain['onnx'])
    assert (meta['in_channels'], meta['channels'], meta['units']) == (4, chain['channels'], chain['units'])
    assert chain['rep']['max_abs_diff'] < 1e-3


def test_predictor_matches_torch_on_a_four_channel_record(chain):
    p = Predictor(chain['onnx'])
    assert (p.in_channels, p.channels, p.units) == (4, chain['channels'], chain['units'])
    pred = p.predict(chain['record'], chain['fs'], channels=chain['channels'])
    assert pred.n_windows == chain['x_te'].shape[0]
    m = chain['model'].eval()
    x = torch.from_numpy(chain['x_te'])
    # the test windows come normalised as in training; the ONNX graph normalises the raw record itself
    with torch.no_grad(): want = torch.softmax(m(x), 1).mean(0).numpy()
    np.testing.assert_allclose(pred.probabilities, want, atol=1e-4)
    named = p.predict({c: chain['record'][k] for k, c in reversed(list(enumerate(chain['channels'])))}, chain['fs'])
    np.testing.assert_allclose(named.probabilities, pred.probabilities, atol=1e-6)


def test_http_round_trip_on_four_channels(chain):
    client = TestClient(create_app(chain['onnx']))
    card = client.get('/model').json()
    assert (card['in_channels'], card['channels'], card['units']) == (4, chain['channels'], chain['units'])
    body = {'channels': {c: chain['record'][k].tolist() for k, c in enumerate(chain['channels'])}, 'fs': chain['fs']}
    r = client.post('/predict', json=body)
    assert r.status_code == 200, r.json()
    d = r.json()
    want = Predictor(chain['onnx']).predict(chain['record'], chain['fs'])
    assert d['label'] == want.label and d['channels'] == chain['channels'] and d['n_windows'] == want.n_windows
    np.testing.assert_allclose([d['probabilities'][c] for c in want.class_names], want.probabilities, atol=1e-5)
    rb = client.post('/predict/batch', json={'records': [body, body]})
    assert rb.status_code == 200 and rb.json()['n_records'] == 2


# ---------------------------------------------------------------- refusals

def test_predictor_refuses_wrong_channel_count(chain):
    p = Predictor(chain['onnx'])
    with pytest.raises(ValueError, match=r"3 channels given; this model expects 4 channels \['x', 'y', 'keyphasor', 'accel'\]"):
        p.predict(chain['record'][:3], chain['fs'])
    with pytest.raises(ValueError, match=r"allowed: a record \[4, N\]"):
        p.predict(chain['record'][0], chain['fs'])


def test_predictor_refuses_wrong_names_and_order(chain):
    p, rec = Predictor(chain['onnx']), chain['record']
    with pytest.raises(ValueError, match=r"given \['y', 'x', 'keyphasor', 'accel'\]; this model expects "
                                         r"\['x', 'y', 'keyphasor', 'accel'\] \(the same names in another order"):
        p.predict(rec[[1, 0, 2, 3]], chain['fs'], channels=['y', 'x', 'keyphasor', 'accel'])
    with pytest.raises(ValueError, match=r"\(other names\)"):
        p.predict(rec, chain['fs'], channels=['x', 'y', 'kp', 'accel'])
    with pytest.raises(ValueError, match=r"missing \['accel'\], unknown \['z'\]"):
        p.predict({'x': rec[0], 'y': rec[1], 'keyphasor': rec[2], 'z': rec[3]}, chain['fs'])


def test_service_refuses_mismatched_channels(chain):
    client = TestClient(create_app(chain['onnx'], max_samples=4 * chain['record'].shape[-1]))
    rec = {c: chain['record'][k].tolist() for k, c in enumerate(chain['channels'])}
    cases = [({'channels': {c: rec[c] for c in ('x', 'y', 'keyphasor')}, 'fs': chain['fs']}, "missing ['accel']"),
             ({'channels': {**rec, 'z': rec['x']}, 'fs': chain['fs']}, 'all channels together'),   # 5 channels: over max_samples
             ({'channels': {**{c: rec[c] for c in ('x', 'y', 'keyphasor')}, 'z': rec['x']}, 'fs': chain['fs']}, "unknown ['z']"),
             ({'samples': rec['x'], 'fs': chain['fs']}, 'reads 4 channels'),
             ({'samples': rec['x'], 'channels': rec, 'fs': chain['fs']}, 'not both'),
             ({'fs': chain['fs']}, 'missing')]
    for body, want in cases:
        r = client.post('/predict', json=body)
        assert r.status_code == 422, (want, r.json())
        assert want in r.json()['detail'], (want, r.json())


# ---------------------------------------------------------------- checkpoint channels, CLI export, export report

def test_fit_records_channels_and_cli_export_carries_them(chain):
    import subprocess, sys
    from pathlib import Path
    from lstm_pfd.train import load_checkpoint
    _, info = load_checkpoint(chain['checkpoint'])
    assert info['channels'] == chain['channels']
    script = Path(sys.executable).parent / 'lstm-pfd'
    out = chain['tmp'] / 'cli.onnx'
    r = subprocess.run([str(script), 'export', str(chain['checkpoint']), '--out', str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    meta = read_metadata(out)
    assert (meta['in_channels'], meta['channels'], meta['units']) == (4, chain['channels'], chain['units'])
    assert 'input channels (from the checkpoint): x [um], y [um], keyphasor [V], accel [m/s^2]' in r.stdout
    with pytest.raises(ValueError, match=r"\(other names\)"):    # the exported model refuses a record named otherwise
        Predictor(out).predict(chain['record'], chain['fs'], channels=['a', 'b', 'c', 'd'])


def test_export_report_times_and_scores_multichannel_models(chain):
    from lstm_pfd.export import export_report
    from lstm_pfd.train import save_checkpoint
    xy = create_model('compact', n_classes=chain['model'].n_classes, in_channels=2, seed=1)
    save_checkpoint(chain['tmp'] / 'xy.pt', xy, window_len=chain['L'], fs=chain['fs'], channels=('y', 'x'))
    tab = export_report({'all': chain['checkpoint'], 'xy': chain['tmp'] / 'xy.pt'}, chain['data'], precisions=('fp32',),
                        out_dir=chain['tmp'] / 'rep', warmup=1, runs=2, runs_large=1, batch_sizes=(1, 2), progress=False)
    assert [(r['model'], r['precision']) for r in tab] == [('all', 'torch-eager'), ('all', 'fp32'), ('xy', 'torch-eager'), ('xy', 'fp32')]
    for torch_row, onnx_row in (tab[0:2], tab[2:4]):   # same windows (the model's channels), same predictions
        assert 0.0 <= torch_row['record_acc'] <= 1.0
        assert abs(torch_row['window_acc'] - onnx_row['window_acc']) < 1e-9
    assert read_metadata(chain['tmp'] / 'rep' / 'xy.fp32.onnx')['channels'] == ['y', 'x']
    q = export_report({'xy': chain['tmp'] / 'xy.pt'}, chain['data'], precisions=('int8',), out_dir=chain['tmp'] / 'rep',
                      n_calibration=8, warmup=1, runs=1, runs_large=1, batch_sizes=(1,), progress=False)
    assert 'error' not in q[1] and q[1]['precision'] == 'int8' and 0.0 <= q[1]['window_acc'] <= 1.0, q  # calibrated on y, x
    save_checkpoint(chain['tmp'] / 'z.pt', xy, window_len=chain['L'], fs=chain['fs'], channels=('x', 'z'))
    with pytest.raises(ValueError, match=r"z: the model reads channels \['x', 'z'\].*missing \['z'\]"):
        export_report({'z': chain['tmp'] / 'z.pt'}, chain['data'], precisions=('fp32',), out_dir=chain['tmp'] / 'rep',
                      warmup=1, runs=1, runs_large=1, batch_sizes=(1,), progress=False)


# ---------------------------------------------------------------- classical baseline with orbit features

def test_orbit_features_separate_imbalance_from_healthy(chain):
    "Probe orbits (forward/reverse 1X, ellipse, S(p-p)) tell imbalance from healthy on records of unseen splits."
    pytest.importorskip('sklearn')
    from lstm_pfd.train import ClassicalBaseline, classical_features, orbit_features
    cls = ['healthy', 'imbalance']
    with open_dataset(chain['data']) as ds:
        tr, va, te = (ds.windows(s, classes=cls) for s in ('train', 'val', 'test'))
    assert set(tr.record_labels) == {0, 2}
    base = ClassicalBaseline(n_estimators=100, seed=0, features='orbit').fit(tr)
    evs = [base.evaluate(va), base.evaluate(te)]
    n = sum(e.summary()['n_records'] for e in evs)
    right = sum(round(e.record_acc * e.summary()['n_records']) for e in evs)
    assert n >= 12 and right / n >= 0.75, (right, n)       # chance is 0.5; P(>= 75 % of 16 | chance) < 0.04
    both = ClassicalBaseline(n_estimators=20, seed=0, features='both')
    F, y, r = both.features(te)
    w = te.windows()
    n_acc = classical_features(w[:, 3], chain['fs'])[0].shape[1]
    F_orb, names = orbit_features(w, chain['fs'], chain['channels'])
    assert F.shape == (len(te), n_acc + len(names))
    np.testing.assert_allclose(F[:, n_acc:], F_orb, rtol=1e-6)
    assert F_orb[:, names.index('orb_keyphasor_ok')].min() == 1.0            # every window has its keyphasor pulses
    spd = F_orb[:, names.index('orb_speed_hz')]
    np.testing.assert_allclose(spd, np.asarray(te.meta['speed_hz'])[te.record_of_window], rtol=0.02)
