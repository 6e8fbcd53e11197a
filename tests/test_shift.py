"Learning under shift on a small fleet file: fit with transfer-path augmentation, AdaBN per test machine, Deep CORAL toward the test machines, commissioning baselines, the spectral model's ONNX export."
import numpy as np
import pytest
import torch

from lstm_pfd.data import build_dataset, open_dataset
from lstm_pfd.evaluation import evaluate
from lstm_pfd.models import create_model
from scipy import signal

from lstm_pfd.shift import (DomainAdaptLoss, TransferPathAugment, commissioning_split, compose, evaluate_adapted,
                          reference_to_baseline, window_groups)
from lstm_pfd.train import NoiseAugment, fit
from lstm_pfd.windows import concat_records

pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.fixture(scope='module')
def fleet_file(tmp_path_factory):
    p = tmp_path_factory.mktemp('shift') / 'quick_fleet.h5'
    build_dataset('quick_fleet', p, progress=False)
    return open_dataset(p)


class _Counting:
    "An augment that records what it was given and returned, around another augment."
    def __init__(self, inner): self.inner, self.calls = inner, []
    def __repr__(self): return f"counting({self.inner!r})"
    def __call__(self, x, g):
        y = self.inner(x, g)
        self.calls.append((x.clone(), y.clone()))
        return y


def test_fit_with_transfer_paths_is_reproducible(fleet_file):
    ds = fleet_file
    train = ds.windows('train', track='new_machines')
    runs = []
    for _ in range(2):
        aug = _Counting(compose(TransferPathAugment(ds.fs, ds.config, n_paths=8, seed=100, p=1.0), NoiseAugment(p=0.0)))
        r = fit(create_model('compact', len(train.class_names), seed=0), train, epochs=1, batch_size=16,
                augment=aug, seed=4, progress=False, recalibrate=False)
        assert len(aug.calls) == -(-len(train) // 16) and all(np.isfinite(h['train_loss']) for h in r.history)
        x, y = aug.calls[0]
        assert y.shape == x.shape and y.dtype == torch.float32 and not torch.equal(x, y)
        runs.append((r.model.state_dict(), aug.calls))
    (sd_a, calls_a), (sd_b, calls_b) = runs
    assert all(torch.equal(v, sd_b[k]) for k, v in sd_a.items())
    assert all(torch.equal(a[1], b[1]) for a, b in zip(calls_a, calls_b))


def test_transfer_path_bank_is_not_the_file_fleet(fleet_file):
    ds = fleet_file
    with pytest.raises(ValueError, match="dataset's own machines"):
        TransferPathAugment(ds.fs, ds.config, seed=ds.config.fleet.seed)
    own = {tuple(m.mode_hz) for m in ds.machines if m.mode_hz}
    bank = {tuple(m.mode_hz) for m in TransferPathAugment(ds.fs, ds.config, n_paths=16, seed=100).machines}
    assert not own & bank


def test_adabn_per_test_machine(fleet_file):
    ds = fleet_file
    test = ds.windows('test', track='new_machines')
    model = create_model('compact', len(test.class_names), seed=0).eval()
    ev, plain = evaluate_adapted(model, test), evaluate(model, test)
    machines = set(np.unique(test.meta['machine_id'][test.record_of_window]).tolist())
    assert set(ev.adapted_windows) == machines and sum(ev.adapted_windows.values()) == len(test)
    assert np.array_equal(ev.records, plain.records) and np.array_equal(ev.record_labels, plain.record_labels)
    g = window_groups(test)
    for m in machines:             # each machine's windows are scored by the copy adapted on that machine alone
        idx = np.flatnonzero(g == m)
        sub = evaluate_adapted(model, test, by=np.where(g == m, 1, 0))
        np.testing.assert_allclose(sub.probs[idx], ev.probs[idx], atol=1e-6)
    assert np.abs(ev.probs - plain.probs).max() > 1e-4


def test_fit_with_coral_toward_the_test_machines(fleet_file):
    "Deep CORAL toward the test machines' unlabelled windows in `fit`: the terms in the history, reproducible, the hook gone with the loss."
    ds = fleet_file
    train, test = ds.windows('train', track='new_machines'), ds.windows('test', track='new_machines')
    runs = []
    for _ in range(2):
        m = create_model('compact', len(train.class_names), seed=0)
        r = fit(m, train, epochs=1, batch_size=32, seed=4, progress=False, recalibrate=False,
                loss=DomainAdaptLoss(m, test, kind='coral', weight=10.0, seed=1))
        h = r.history[-1]
        assert h['train_coral'] > 0 and np.isclose(h['train_loss'], h['train_ce'] + 10.0 * h['train_coral'], rtol=1e-5)
        assert not m.classifier._forward_pre_hooks       # the loss, passed inline, went when fit returned
        runs.append(m.state_dict())
    assert all(torch.equal(v, runs[1][k]) for k, v in runs[0].items())


def test_commissioning_baseline_on_new_machines(fleet_file):
    "The `new_machines_baseline` variant: k healthy records per test machine leave the scored set; referenced, the machines' healthy spectra agree."
    ds = fleet_file
    test = ds.windows('test', track='new_machines')
    healthy = test.class_names.index('healthy')
    base, scored = commissioning_split(test, 2)
    mid = test.meta['machine_id']
    assert set(base.record_labels.tolist()) == {healthy}
    assert sorted(base.meta['machine_id'].tolist()) == sorted(np.repeat(np.unique(mid), 2).tolist())
    assert not set(base.record_record_ids) & set(scored.record_record_ids)
    assert len(base.record_labels) + len(scored.record_labels) == len(test.record_labels)
    for m in np.unique(mid):      # the baseline is the machine's lowest-id healthy records
        ids = np.sort(test.record_record_ids[(mid == m) & (test.record_labels == healthy)])[:2]
        assert np.array_equal(np.sort(base.record_record_ids[base.meta['machine_id'] == m]), ids)
    ref = reference_to_baseline(scored, base)
    assert ref.signals.dtype == np.float32 and ref.signals.shape == scored.signals.shape
    assert np.array_equal(ref.record_labels, scored.record_labels) and not np.array_equal(ref.signals, scored.signals)
    every = concat_records([ds.windows(sp, track='new_machines') for sp in ('train', 'val', 'test')])   # every machine
    tb, ts = commissioning_split(every, 2)
    tr, tm = reference_to_baseline(ts, tb), ts.meta['machine_id']
    assert len(np.unique(tm)) >= 3
    logpsd = lambda x: np.log10(signal.welch(x.astype(np.float64), nperseg=256, axis=-1)[1][..., 4:100]).mean(0)
    h = ts.record_labels == healthy
    spread = lambda x: np.std([logpsd(x[h & (tm == m)]) for m in np.unique(tm)], axis=0).mean()
    assert spread(tr.signals) < 0.5 * spread(ts.signals)    # the paths' differences cancel on healthy records


@pytest.mark.parametrize('exporter', ['auto', 'torchscript'])
def test_spectral_onnx_parity_on_edge_windows(tmp_path, exporter):
    pytest.importorskip('onnxruntime'); pytest.importorskip('onnx')
    from lstm_pfd.export import to_onnx
    from lstm_pfd.predict import ort_session
    m = create_model('spectral', 11, seed=0).eval()
    rep = to_onnx(m, tmp_path / 'spectral.onnx', window_len=2048, exporter=exporter)
    assert rep['diffs']['all-zero window'] <= 1e-4 and rep['diffs']['constant window'] <= 1e-4
    sess = ort_session(str(tmp_path / 'spectral.onnx'))
    x = np.stack([np.zeros((1, 2048)), np.full((1, 2048), 0.7), np.full((1, 2048), -3e-4)]).astype(np.float32)
    with torch.no_grad():
        ref = m(torch.from_numpy(x)).numpy()
    out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('exporter', ['auto', 'torchscript'])
def test_full_spectrum_spectral_onnx_parity_on_four_channels(tmp_path, exporter):
    "The probe-pair front end (`full_spectrum=True`) on `[B, 4, L]`: random, zero, constant and a pure forward orbit."
    pytest.importorskip('onnxruntime'); pytest.importorskip('onnx')
    from lstm_pfd.export import to_onnx
    from lstm_pfd.predict import ort_session
    m = create_model('spectral', 11, in_channels=4, full_spectrum=True, seed=0).eval()
    to_onnx(m, tmp_path / 'fs.onnx', window_len=2048, exporter=exporter)
    sess = ort_session(str(tmp_path / 'fs.onnx'))
    t = 2 * np.pi * 37 / 1024 * np.arange(2048)
    orbit = np.stack([np.cos(t), np.sin(t), np.zeros_like(t), 0.1 * np.cos(2 * t)])
    x = np.stack([np.random.default_rng(0).standard_normal((4, 2048)), np.zeros((4, 2048)), np.full((4, 2048), 0.7),
                  orbit, orbit * [[1], [-1], [1], [1]]]).astype(np.float32)     # the last: the same orbit, reverse
    with torch.no_grad():
        ref = m(torch.from_numpy(x)).numpy()
    out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-4)
    assert np.abs(ref[3] - ref[4]).max() > 1e-3          # forward and reverse precession reach the head differently
