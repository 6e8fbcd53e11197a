"""Headless checks of lstm_pfd.explorers: construct each explorer, change controls by setting `.value`,
assert on the state the explorer keeps (arrays, predictions, bands), never on pixels or timings."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip('ipywidgets')
torch = pytest.importorskip('torch')

import ipywidgets as W

from lstm_pfd.config import DataConfig, NoiseConfig
from lstm_pfd.physics import FAULTS, expected_bands, viscosity
from lstm_pfd.signals import generate, generate_batch
from lstm_pfd import explorers as E

PNG = b'\x89PNG\r\n\x1a\n'


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is as fast as several
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope='module')
def cfg():
    return DataConfig.preset('quick', {'signal.duration_s': 1.0, 'dataset.records_per_class_severity': 3,
                                       'dataset.snr_db': [10.0]})


@pytest.fixture(scope='module')
def ds(cfg, tmp_path_factory):
    from lstm_pfd.data import build_dataset, open_dataset
    path = build_dataset(cfg, tmp_path_factory.mktemp('expl') / 'tiny.h5', progress=False)
    with open_dataset(path) as d:
        yield d


@pytest.fixture(scope='module')
def model(ds):
    from lstm_pfd.models import create_model
    from lstm_pfd.train import fit
    m = create_model('compact', channels=(8, 16), first_stride=32, seed=0)
    fit(m, ds.windows('train'), epochs=1, batch_size=32, progress=False, seed=0)
    return m.eval()


# ------------------------------------------------------------------------------------------ helpers
def test_amplitude_spectrum_reads_sine_amplitude():
    fs, n = 1000.0, 1000
    t = np.arange(n) / fs
    f, a = E.amplitude_spectrum(0.25 * np.cos(2 * np.pi * 50 * t) + 2 * np.sin(2 * np.pi * 200 * t), fs)
    assert f[np.argmax(a)] == 200.0
    assert a[f == 200.0][0] == pytest.approx(2.0, rel=1e-3)
    assert a[f == 50.0][0] == pytest.approx(0.25, rel=1e-3)
    with pytest.raises(ValueError, match='fs'): E.amplitude_spectrum(t, 0)


def test_spectrogram_tracks_a_chirp():
    fs = 8192.0
    t = np.arange(int(fs)) / fs
    x = np.sin(2 * np.pi * (100 * t + 1000 * t ** 2))  # 100 Hz -> 2100 Hz over 1 s
    f, tt, db = E.spectrogram_db(x, fs, nperseg=256)
    peak = f[db.argmax(0)]
    assert np.all(np.abs(peak - (100 + 2000 * tt)) <= 2 * fs / 256)


# ------------------------------------------------------------------------------------------ SignalExplorer
def test_signal_explorer_state_follows_controls(cfg):
    se = E.SignalExplorer(cfg, 'looseness', seed=1, speed_hz=60.0)
    assert isinstance(se.widget, W.Widget) and se.png.startswith(PNG) and se.image.value == se.png
    x_ref, _ = generate(cfg, 'looseness', severity=2, seed=1, speed_hz=60.0, load=se.params['load'],
                        temperature_c=se.params['temperature_c'])
    np.testing.assert_array_equal(se.x, x_ref)
    b60, png60 = se.bands.copy(), se.png
    se.speed.value = 57.0
    np.testing.assert_allclose(se.bands, b60 * 57.0 / 60.0)
    np.testing.assert_allclose(se.bands, expected_bands('looseness', 57.0))
    assert se.png != png60
    x0 = se.x.copy()
    se.seed.value = 2
    assert not np.array_equal(se.x, x0)
    se.fault.value = 'cavitation'
    assert se.bands.max() == pytest.approx(2600.0)  # the burst carriers, an absolute band
    assert se.params['fault'] == 'cavitation'


def test_signal_explorer_physics_and_window(cfg):
    se = E.SignalExplorer(cfg, 'oil_whirl')
    se.temperature.value = 45.0
    hot_mu, cold = None, dict(se.physics)
    se.temperature.value = 75.0
    assert se.physics['viscosity'] == pytest.approx(float(viscosity(75.0, cfg.bearing.oil)))
    assert se.physics['viscosity'] < cold['viscosity'] and se.physics['sommerfeld'] < cold['sommerfeld']
    se.window.value = 0.25
    assert len(se.view) == int(0.25 * cfg.signal.fs)
    assert se.freqs[1] == pytest.approx(4.0)  # 1 / 0.25 s
    se.start.value = 0.5
    np.testing.assert_array_equal(se.view, se.x[int(0.5 * cfg.signal.fs):int(0.75 * cfg.signal.fs)])
    se.window.value = 1.0  # the start slider is pulled back inside the record
    assert se.start.value == 0.0 and len(se.view) == len(se.x)


def test_signal_explorer_noise_layers(cfg):
    se = E.SignalExplorer(cfg, 'misalignment', speed_hz=60.0)
    with se.hold():
        for c in se.noise.values(): c.value = False
    assert se.params['noise'] == ()
    assert se.freqs[np.argmax(se.amp)] == pytest.approx(120.0, abs=1.5)  # 2X dominates misalignment
    hf = se.freqs > 3000
    quiet = np.median(se.amp[hf])
    se.noise['measurement'].value = True
    assert np.median(se.amp[hf]) > 10 * quiet
    se.noise['emi'].value = True  # mains tone at exactly 50 Hz
    k50 = np.argmin(np.abs(se.freqs - cfg.noise.emi.mains_hz))
    assert se.amp[k50] > 10 * np.median(se.amp[hf])


def test_signal_explorer_set_and_errors(cfg):
    se = E.SignalExplorer(cfg)
    n = se.n_updates
    se.set(fault='wear', severity=0, seed=7, measurement=False)
    assert se.n_updates == n + 1 and se.params['seed'] == 7 and 'measurement' not in se.params['noise']
    with pytest.raises(AttributeError, match="no control 'colour'"): se.set(colour=1)
    with pytest.raises(ValueError, match='window_s'): E.SignalExplorer(cfg, window_s=0.3)
    with pytest.raises(ValueError): E.SignalExplorer(cfg, 'not_a_fault')


def test_widget_state_carries_png_for_offline_docs(cfg):
    "The saved widget state (what the docs embed) holds the plot as PNG bytes, so it renders without a kernel."
    import base64
    from ipywidgets.embed import dependency_state
    se = E.SignalExplorer(cfg)
    state = dependency_state(se.widget)
    images = [v for v in state.values() if v['model_name'] == 'ImageModel']
    assert len(images) == 1 and images[0]['state'].get('format', 'png') == 'png'
    (buf,) = [b for b in images[0]['buffers'] if b['path'] == ['value']]
    data = base64.b64decode(buf['data']) if isinstance(buf['data'], str) else bytes(buf['data'])
    assert data == se.png and data.startswith(PNG)


# ------------------------------------------------------------------------------------------ DatasetExplorer
def test_dataset_explorer_filters_and_records(ds):
    dx = E.DatasetExplorer(ds, 'train')
    tab = ds['train']
    assert dx.counts.sum() == len(tab) and dx.counts.shape == (len(FAULTS), len(ds.severity_names))
    np.testing.assert_array_equal(dx.counts.sum(1), np.bincount(tab.labels, minlength=len(FAULTS)))
    dx.classes.value = (FAULTS.index('wear'),)
    assert set(tab.labels[dx.rows]) == {FAULTS.index('wear')} and dx.counts.sum() == (tab.labels == 6).sum()
    np.testing.assert_array_equal(dx.x, tab.signals[dx.row])
    assert dx.record_meta['label'] == 6 and dx.png.startswith(PNG)
    np.testing.assert_allclose(dx.bands, expected_bands('wear', tab.meta['speed_hz'][dx.row]))
    r2 = int(dx.rows[-1])
    dx.record.value = r2
    assert dx.row == r2 and dx.record_meta['record_index'] == tab.record_index[r2]
    dx.classes.value = tuple(range(len(FAULTS)))
    lo, hi = 0.3, 0.6
    dx.ranges['load'].value = (lo, hi)
    loads = tab.meta['load'][dx.rows]
    assert 0 < len(dx.rows) < len(tab) and loads.min() >= lo and loads.max() <= hi
    dx.split.value = 'test'
    assert dx.table.name == 'test' and dx.counts.sum() == len(dx.rows) <= len(ds['test'])
    png = dx.png
    dx.severities.value = tuple(v for _, v in dx.severities.options)   # the record shown is still kept: no redraw
    assert dx.png is png
    dx.severities.value = ()
    assert len(dx.rows) == 0 and dx.row is None and dx.x is None


# ------------------------------------------------------------------------------------------ TrainingMonitor
def test_training_monitor_follows_fit():
    from lstm_pfd.models import create_model
    from lstm_pfd.train import ToneDataset, fit
    tr, va = ToneDataset(records_per_class=4, window_len=256, seed=0), ToneDataset(records_per_class=2, window_len=256, seed=1, record_offset=100)
    mon = E.TrainingMonitor()
    res = fit(create_model('compact', n_classes=4, channels=(8, 16), first_kernel=16, first_stride=4, seed=0), tr, va,
              epochs=3, batch_size=16, callbacks=[mon], progress=False)
    assert [r['epoch'] for r in mon.history] == [r['epoch'] for r in res.history]
    assert mon.history[-1]['val_loss'] == res.history[-1]['val_loss']
    n_batches = int(np.ceil(len(tr) / 16))
    assert len(mon.batch_losses) == 3 * n_batches and mon.batch_bar.max == n_batches
    assert mon.epochs_bar.value == 3 and mon.done and mon.best_epoch == res.best_epoch
    assert mon.n_draws == 4 and mon.png.startswith(PNG)
    mon2 = E.TrainingMonitor(every=2)
    fit(create_model('compact', n_classes=4, channels=(8,), first_kernel=16, first_stride=4, seed=0), tr, epochs=3,
        batch_size=16, callbacks=[mon2], progress=False)
    assert mon2.n_draws == 1 + 1  # epoch 2, then the end of the fit


# ------------------------------------------------------------------------------------------ ModelExplorer
def test_model_explorer_predictions_and_confusion(ds, model):
    from lstm_pfd.train import evaluate
    mx = E.ModelExplorer(model, ds, 'test', method='none')
    ev = evaluate(model, ds.windows('test'))
    tab = ds['test']
    assert mx.cm.sum() == len(tab)
    np.testing.assert_array_equal(mx.cm, ev.confusion_matrix('record'))
    for (t, p), rows in mx.cells.items():
        assert len(rows) == mx.cm[t, p]
        assert all(tab.labels[r] == t and mx.record_pred[r] == p for r in rows)
    row = len(tab) - 1
    mx.record.value = row
    rid = tab.record_index[row]
    np.testing.assert_allclose(mx.window_probs, ev.probs[ev.record_ids == rid], rtol=1e-6)
    np.testing.assert_allclose(mx.probs, mx.window_probs.mean(0), rtol=1e-5)
    assert mx.attribution is None and mx.png.startswith(PNG)
    w = mx.windows.windows_per_record - 1
    mx.window.value = w
    np.testing.assert_array_equal(mx.x, np.asarray(tab.signals[row])[w * len(mx.x):(w + 1) * len(mx.x)])
    t, p = next(iter(mx.cells))
    listed = mx.open_cell(t, p)
    mx.cell_list.value = listed[0]
    assert mx.row == listed[0] and mx.cell == (t, p)
    mx.cm_buttons[t, p].click()
    assert [v for _, v in mx.cell_list.options] == mx.cells[(t, p)]


def test_model_explorer_attributions(ds, model):
    pytest.importorskip('captum')
    mx = E.ModelExplorer(model, ds, 'test', method='occlusion', n_steps=4)
    assert mx.attribution.shape == mx.x.shape and np.isfinite(mx.attribution).all()
    assert mx.spectral.values.shape == (1, len(mx.x) // 2 + 1)
    mx.target_mode.value = 'true'
    assert mx.target == mx.true_label
    assert mx.pending == 'occlusion' and mx.attribution is None  # answered at once, computing in the background
    mx.wait()
    assert mx.pending is None and mx.attribution.shape == mx.x.shape
    name = FAULTS[mx.target]
    if name == 'healthy': assert mx.alignment is None or not np.isfinite(mx.alignment['alignment'])
    else:
        np.testing.assert_allclose(mx.bands, expected_bands(name, ds['test'].meta['speed_hz'][mx.row], merge=False))
        assert 0 <= mx.alignment['alignment'] <= 1
    a_occ = mx.attribution.copy()
    mx.method.value = 'gradcam'
    mx.wait()
    assert mx.attribution.shape == a_occ.shape and not np.allclose(mx.attribution, a_occ)


def test_model_explorer_computes_once_per_record(ds, model):
    "The explainer hook runs once per (method, record, target mode): every window of the record in one batch."
    from lstm_pfd import xai
    calls = []
    def counting(m, x, method, target=None, **kw):
        calls.append((method, np.shape(x), list(target)))
        return xai.explain(m, x, method, target=target, **kw)
    mx = E.ModelExplorer(model, ds, 'test', method='gradcam', explainer=counting, background_methods=())
    wpr = mx.windows.windows_per_record
    assert len(calls) == 1 and calls[0][1] == (wpr, 1, len(mx.x))
    assert calls[0][2] == list(mx.window_probs.argmax(1))   # 'predicted': each window's top class
    ref = np.asarray(xai.explain(model, mx._record_windows(mx.row), 'gradcam', target=calls[0][2])).reshape(wpr, -1)
    for w in range(wpr):
        mx.window.value = w
        np.testing.assert_allclose(mx.attribution, ref[w], rtol=1e-5, atol=1e-7)
    assert len(calls) == 1   # windows of a computed record cost no attribution
    mx.target_mode.value = 'true'
    assert len(calls) == 2 and calls[1][2] == [mx.true_label] * wpr
    mx.target_mode.value = 'predicted'
    mx.record.value = 1
    mx.record.value = 0
    assert len(calls) == 3   # record 1 is new; record 0 was cached


def test_model_explorer_background_state(ds, model):
    "A slow method: the control answers with 'computing', the attribution and its redraw follow."
    import threading, time
    from lstm_pfd import xai
    gate = threading.Event()
    def slow(m, x, method, target=None, **kw):
        gate.wait(10)
        return xai.explain(m, x, method, target=target, **kw)
    mx = E.ModelExplorer(model, ds, 'test', method='none', explainer=slow)
    png0 = mx.png
    mx.method.value = 'gradcam'
    assert mx.pending == 'gradcam' and mx.attribution is None and 'computing gradcam' in mx.title.value
    assert mx.png != png0   # the new view is drawn at once
    gate.set()
    mx.wait(10)
    assert mx.pending is None and mx.attribution.shape == mx.x.shape and 'computing' not in mx.title.value
    mx.close()


def test_model_explorer_labels_and_colour_bars(ds, model):
    mx = E.ModelExplorer(model, ds, 'test', method='none')
    labels = [a.get_ylabel() for a in mx._fig.axes]
    assert 'probability' in labels and 'attribution / max' in labels   # the two colour bars
    t = mx.title.value
    assert 'predicted' in t and 'record vote' in t and 'attribution target' in t and 'ranks first' in t
    mx.target_mode.value = 'true'
    assert "the record's label" in mx.title.value


def test_model_explorer_from_checkpoint(ds, model, tmp_path):
    from lstm_pfd.train import save_checkpoint
    ck = save_checkpoint(tmp_path / 'm.pt', model, class_names=FAULTS, window_len=ds.config.window_len, fs=ds.fs)
    mx = E.ModelExplorer(ck, ds, 'val', method='none')
    ref = E.ModelExplorer(model, ds, 'val', method='none')
    np.testing.assert_allclose(mx.record_probs, ref.record_probs, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------ RobustnessExplorer
def test_robustness_explorer_noise_and_layers(ds, model):
    rx = E.RobustnessExplorer(model, ds, 'test', snr_db=0.0, max_records=22)
    tab = ds['test']
    assert len(rx.rows) == 22 and len(set(tab.labels[rx.rows])) == len(FAULTS)
    snr = 10 * np.log10(np.mean(rx.X_clean.astype(np.float64) ** 2, 1) / np.mean((rx.X - rx.X_clean).astype(np.float64) ** 2, 1))
    np.testing.assert_allclose(snr, 0.0, atol=0.3)
    np.testing.assert_array_equal(rx.X_clean, tab.load(rx.rows))
    stored = ds['test_snr10'].load(rx.rows)
    rx.snr.value = 10.0
    assert not np.array_equal(rx.X, stored)  # fresh noise, not the stored copy's streams
    rx.clean.value = True
    assert rx.snr_db is None and rx.X is rx.X_clean
    rx.noise['pink'].value = False
    ref, _ = generate_batch(ds.config.override({'noise.pink.enabled': False}), [FAULTS[l] for l in tab.labels[rx.rows]],
                            list(tab.severity[rx.rows]), list(tab.seed[rx.rows]))
    np.testing.assert_array_equal(rx.X, ref)
    assert len(rx.results) == 4 and rx.results[-1]['layers'] == tuple(l for l in NoiseConfig.LAYERS if l != 'pink')
    out = rx.sweep((20, -5))
    assert [r['snr_db'] for r in out] == [20.0, -5.0] and rx.png.startswith(PNG)
    rx.snr.value = 5.0
    ev5 = rx.evaluation
    rx.snr.value = 6.0
    rx.snr.value = 5.0
    assert rx.evaluation is ev5 and rx.results[-1]['record_acc'] == ev5.record_acc   # the same noise: cached
    rx.auto = False
    n = len(rx.results)
    rx.snr.value = 3.0
    assert len(rx.results) == n  # manual mode: nothing until evaluate
    rx.run_button.click()
    assert len(rx.results) == n + 1 and rx.results[-1]['snr_db'] == 3.0



def test_robustness_explorer_on_imported_recordings(tmp_path):
    "An imported 3-class file: the file's class names, SNR only (noise layers off and disabled), clean records for a noisy split."
    from lstm_pfd.data import add_snr_noise, import_recordings, open_dataset
    from lstm_pfd.models import create_model
    fs, rng = 6144.0, np.random.default_rng(0)
    t = np.arange(int(2 * fs)) / fs
    recs = [(np.sin(2 * np.pi * f0 * t) + 0.3 * rng.standard_normal(len(t))).astype(np.float32) for f0 in (100, 300, 50) for _ in range(2)]
    p = import_recordings(recs, ['inner'] * 2 + ['outer'] * 2 + ['ok'] * 2, fs, tmp_path / 'own.h5', cfg=DataConfig.preset('quick'),
                          target_fs=fs, record_s=1.0, split=(0.5, 0, 0.5), snr_db=[10.0], progress=False)
    model = create_model('compact', n_classes=3, channels=(8, 16), first_stride=32, seed=0)
    rx = E.RobustnessExplorer(model, p, 'test', snr_db=5.0)
    with open_dataset(p) as ds: tab, clean, stored = ds['test'], ds['test'].load(rx.rows), ds['test_snr10'].load(rx.rows)
    assert rx.imported and rx.class_names == ['inner', 'outer', 'ok'] and len(rx.evaluation.per_class_recall('record')) == 3
    assert all(c.disabled and not c.value for c in rx.noise.values()) and rx.layers == ()
    assert any('cannot be regenerated' in w.value for w in _boxes(rx.widget) if isinstance(w, W.HTML))
    np.testing.assert_array_equal(rx.X_clean, clean)
    np.testing.assert_array_equal(rx.X, add_snr_noise(clean, 5.0, E._fresh_seeds(tab.seed[rx.rows], 0)))
    snr = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2, 1) / np.mean((rx.X - clean).astype(np.float64) ** 2, 1))
    np.testing.assert_allclose(snr, 5.0, atol=0.3)
    rx.noise['pink'].value = True                      # set from code: still the recorded signals, nothing regenerated
    assert rx.layers == () and 'as recorded' in rx.status.value
    np.testing.assert_array_equal(rx.X_clean, clean)
    rz = E.RobustnessExplorer(model, p, 'test_snr10', snr_db=None)   # a stored noisy copy: its clean records are used
    assert rz.split == 'test' and rz.X is rz.X_clean
    np.testing.assert_array_equal(rz.X_clean, clean)
    assert not np.array_equal(rz.X_clean, stored)
    for e in (rx, rz): e.close()

# ------------------------------------------------------------------------------------------ fitting the page
def _boxes(w):
    "Every widget under `w` (depth first)."
    yield w
    for c in getattr(w, 'children', ()): yield from _boxes(c)


def test_layouts_wrap_and_images_keep_their_aspect(cfg, ds):
    for ex in (E.SignalExplorer(cfg), E.DatasetExplorer(ds, 'train')):
        imgs = [w for w in _boxes(ex.widget) if isinstance(w, W.Image)]
        assert imgs == [ex.image]
        lay = ex.image.layout
        assert (lay.max_width, lay.height, lay.object_fit, lay.align_self) == ('100%', 'auto', 'contain', 'flex-start')
        assert not ex.image.width and not ex.image.height   # natural size: no width/height attributes to stretch it
        # the box holding the image wraps and does not stretch its items to a common height
        parent = next(w for w in _boxes(ex.widget) if ex.image in getattr(w, 'children', ()))
        assert parent.layout.flex_flow == 'row wrap' and parent.layout.align_items == 'flex-start'
        for w in _boxes(ex.widget):
            if isinstance(w, W.HBox): assert w.layout.flex_flow == 'row wrap', type(ex).__name__


def test_spectrogram_limit_and_log_axis(cfg):
    se = E.SignalExplorer(cfg, 'misalignment', seed=3, speed_hz=60.0)
    assert se.spec_log.value and se.spec_fmax.value == cfg.signal.fs / 2
    f = se.spec_freqs
    assert f[0] < 30 and f[-1] == pytest.approx(cfg.signal.fs / 2, rel=0.01)
    np.testing.assert_allclose(np.diff(np.log(f)), np.log(f[1] / f[0]), rtol=1e-6)  # log-spaced rows
    # 50-200 Hz (1X to 3X) gets about a fifth of the displayed rows on the log axis, not 3 % as on a linear one
    assert ((f >= 50) & (f <= 200)).mean() > 0.15
    assert se.spec_f[1] <= 5.0   # frames long enough to resolve the low orders
    se.set(spec_log=False, spec_fmax=1000.0)
    assert se.spec_freqs.max() <= 1000.0 and se.spec_freqs.max() > 1000.0 - se.spec_f[1]
    np.testing.assert_array_equal(se.spec_freqs, se.spec_f[se.spec_rows])
    with pytest.raises(ValueError, match='spec_fmax'): E.SignalExplorer(cfg, spec_fmax=123.0)
    with pytest.raises(ValueError, match='fmin'): E.log_rows(np.arange(10.0), 5.0, 5.0)


def test_full_class_names_everywhere(ds, model):
    mx = E.ModelExplorer(model, ds, 'test', method='none')
    texts = [w.value for w in _boxes(mx.widget) if isinstance(w, W.HTML)]
    for name in ds.fault_names:
        assert sum(f'>{name}</div>' in t for t in texts) == 2, name   # row label and column label, not cut
    assert list(E.SignalExplorer(ds.config).fault.options) == list(FAULTS)
    dx = E.DatasetExplorer(ds, 'train')
    assert [n for n, _ in dx.classes.options] == list(ds.fault_names)
    assert all(n in dx.counts_html.value for n in ds.fault_names)


def test_class_names_follow_the_model_size(ds):
    from lstm_pfd.models import create_model
    m = create_model('compact', n_classes=len(FAULTS), channels=(8,), seed=0)
    assert E.ModelExplorer(m, ds, 'val', method='none').class_names == list(FAULTS)
    assert E.physics.class_names(3) == ('class_0', 'class_1', 'class_2')


def test_training_monitor_replaces_the_progress_bar():
    assert E.TrainingMonitor.replaces_progress is True
    mon = E.TrainingMonitor()
    assert mon.image.layout.max_width == '100%'


def test_a_registered_class_appears_in_the_explorers(cfg):
    "Class lists are read from the catalogue when an explorer is built: a 12th class shows up, and can be explored."
    from lstm_pfd import physics
    physics.register_fault('imbalance_whirl', atoms=('imbalance', 'oil_whirl'))
    try:
        se = E.SignalExplorer(cfg, 'imbalance_whirl', speed_hz=60.0)
        assert list(se.fault.options) == list(physics.class_names()) and len(se.fault.options) == len(FAULTS) + 1
        np.testing.assert_allclose(se.bands, expected_bands('imbalance_whirl', 60.0))
        from lstm_pfd.demo import plot_catalogue, plot_confusion
        fig = plot_catalogue(cfg, duration_s=0.5)
        assert f'{len(FAULTS)} imbalance_whirl' in [a.get_title() for a in fig.axes]
        n = physics.n_classes()
        ticks = [t.get_text() for t in plot_confusion(np.eye(n, dtype=int)).axes[0].get_xticklabels()]
        assert ticks[-1] == 'imbalance_whirl'
    finally:
        physics.unregister_fault('imbalance_whirl')
    assert len(E.SignalExplorer(cfg).fault.options) == len(FAULTS)


# ------------------------------------------------------------------------------------------ RunsExplorer
@pytest.fixture(scope='module')
def runs_root(tmp_path_factory):
    from lstm_pfd.experiments import load_experiment, run_experiment
    root = tmp_path_factory.mktemp('runs')
    dirs = [run_experiment(load_experiment('quick', {'train.seed': s, 'train.epochs': 2}), root) for s in (0, 1, 2)]
    return root, dirs


def test_runs_explorer_state(runs_root):
    import json
    from lstm_pfd import experiments
    root, dirs = runs_root
    assert not hasattr(experiments, 'RunsExplorer')   # it lives with the explorers
    rx = E.RunsExplorer(root, max_runs=2)
    assert rx.run_ids == [d.name for d in dirs[:2]] and rx.condition == 'clean' and rx.png.startswith(PNG)
    rx.set(runs=tuple(d.name for d in dirs[::-1]), level_w='window', condition_w='snr5')
    assert rx.run_ids == [dirs[2].name, dirs[1].name] and '1 more picked' in rx.status.value
    m = json.loads((dirs[2] / 'metrics.json').read_text())['conditions']['snr5']['window']
    cm = np.asarray(m['confusion'], float)
    np.testing.assert_allclose(rx.confusions[0], cm / np.maximum(cm.sum(1, keepdims=True), 1))
    np.testing.assert_allclose(rx.accuracy[0], np.trace(cm) / cm.sum())
    np.testing.assert_array_equal(np.isnan(rx.recall[0]), [v is None for v in m['per_class_recall']])
    rx.runs.value = ()
    assert rx.run_ids == [] and 'pick at least one' in rx.status.value
    with pytest.raises(ValueError, match='condition'): E.RunsExplorer(root, condition='snr99')


def test_runs_explorer_readable(runs_root):
    "Natural width under 1000 px, labels of at least 7 pt, epochs from 1, the legend above every panel (not over bars)."
    from PIL import Image
    import io
    root, dirs = runs_root
    rx = E.RunsExplorer(root)
    assert Image.open(io.BytesIO(rx.png)).size[0] <= 1000
    fig = rx.figure([d.name for d in dirs])
    fig.canvas.draw()
    loss = fig._ax['loss']
    assert min(min(l.get_xdata()) for l in loss.lines) == 1 and max(max(l.get_xdata()) for l in loss.lines) == 2
    sizes = [t.get_fontsize() for a in fig.axes for t in a.get_xticklabels() + a.get_yticklabels() + [a.title]]
    assert min(sizes) >= 7
    leg = fig.legends[0].get_window_extent()
    assert all(leg.y0 >= a.get_window_extent().y1 for a in fig.axes)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [f'run {i + 1}: {d.name}' for i, d in enumerate(dirs)]


# ------------------------------------------------------------------------------------------ OrbitExplorer
def _orbit_reference(ex):
    "The same record as the explorer's, analysed here with `lstm_pfd.orbits` alone."
    from lstm_pfd import orbits as O
    from lstm_pfd.fleet import fleet, machine_config
    p = ex.params
    mach = None if p['machine'] < 0 else fleet(ex.cfg)[p['machine']]
    cfg = ex.cfg if mach is None else machine_config(ex.cfg, mach)
    lo, hi = cfg.operating.temperature_c_range
    rec, meta = generate(cfg, p['fault'], severity=p['severity'], seed=ex.seed, speed_hz=p['speed_hz'], load=p['load'],
                         temperature_c=0.5 * (lo + hi), machine=mach)
    fs = cfg.signal.fs
    times = O.keyphasor_times(rec[2], fs)
    vp = O.order_vectors(rec[:2], fs, times, (0.5, 1.0, 2.0))
    vx, vy = O.probes_to_xy(vp[0], vp[1])
    x, y = O.probes_to_xy(rec[0].astype(np.float64), rec[1].astype(np.float64))
    freqs, full = O.full_spectrum(x, y, fs, window='hann')
    return dict(rec=rec, meta=meta, times=times, vx=vx, vy=vy, centre=(x.mean(), y.mean()), freqs=freqs, full=full)


def _orbit_drawn(ex):
    "Copies of the data in the explorer's artists."
    return dict(filt=np.array(ex._filt.get_xydata()), direct=np.array(ex._direct.get_xydata()), centre=np.array(ex._cmeas.get_xydata()),
                circle=np.array(ex._circle.get_xydata()), vec=np.array(ex._vec[1.0, 'x'].get_xydata()))


def _check_orbit(ex):
    from lstm_pfd import orbits as O
    ref, a, p = _orbit_reference(ex), ex.analysis, ex.params
    np.testing.assert_array_equal(ex.rec, ref['rec'])
    np.testing.assert_allclose(a['times'], ref['times'])
    np.testing.assert_allclose(a['vx'], ref['vx'], atol=1e-9); np.testing.assert_allclose(a['vy'], ref['vy'], atol=1e-9)
    np.testing.assert_allclose(ex._cmeas.get_xydata()[0], ref['centre'], rtol=1e-9)
    np.testing.assert_allclose(np.abs(ex._circle.get_xydata()).max(), ref['meta']['clearance_um'], rtol=1e-6)
    v1 = ex._vec[1.0, 'x'].get_xydata()[1]                                     # (angle, radius) of the 1X x vector
    np.testing.assert_allclose(v1, [np.angle(ref['vx'][1]), abs(ref['vx'][1])], atol=1e-9)
    if p['order'] == 'direct': assert len(ex._filt.get_xdata()) == 0
    else:
        i = {'0.5X': 0, '1X': 1, '2X': 2}[p['order']]
        fx, fy, _ = O.filtered_orbit(ref['vx'][i:i + 1], ref['vy'][i:i + 1], ((0.5, 1.0, 2.0)[i],))
        np.testing.assert_allclose(ex._filt.get_xdata(), fx, atol=1e-9); np.testing.assert_allclose(ex._filt.get_ydata(), fy, atol=1e-9)
    seg = np.array([s[1] for s in ex._fwd.get_segments()])                     # (order, amplitude) of each forward line
    sp = a['speed_hz']
    keep = (ref['freqs'] > 0) & (ref['freqs'] <= 4 * sp)
    np.testing.assert_allclose(seg[:, 0], ref['freqs'][keep] / sp); np.testing.assert_allclose(seg[:, 1], ref['full'][keep])


def test_orbit_explorer_controls_match_orbits():
    ex = E.OrbitExplorer('quick_shaft', 'misalignment', severity=2, order='1X', dpi=50)
    _check_orbit(ex)
    assert ex.png.startswith(PNG)
    for k in ('record', 'render', 'total', 'cpu'): assert ex.timings[k] >= 0
    changes = [dict(fault='oil_whirl'), dict(severity=1), dict(speed=float(ex.speed.min) + 1.0), dict(load=0.9),
               dict(machine=1), dict(order='2X'), dict(order='0.5X'), dict(order='direct')]
    for ch in changes:
        before, png = _orbit_drawn(ex), ex.png
        ex.set(**ch)
        _check_orbit(ex)
        after = _orbit_drawn(ex)
        changed = [k for k in ('filt', 'direct', 'centre', 'circle', 'vec') if before[k].shape != after[k].shape
                   or not np.allclose(before[k], after[k])]
        assert changed, f'{ch}: no plotted data changed'
        assert ex.png != png, f'{ch}: the image did not change'
        if 'order' in ch: assert ex.cached and changed == ['filt'], (ch, changed)   # the filter reuses the analysed record
        else: assert not ex.cached and 'direct' in changed, (ch, changed)
    assert ex.meta['machine_id'] == 1 and ex.params['fault'] == 'oil_whirl'


def test_orbit_explorer_machine_moves_speed_range_and_errors():
    from lstm_pfd.fleet import fleet, machine_config
    ex = E.OrbitExplorer('quick_shaft', render=False)
    ex.set(machine=2)
    lo, hi = machine_config(ex.cfg, fleet(ex.cfg)[2]).operating.speed_hz_range
    assert (ex.speed.min, ex.speed.max) == pytest.approx((lo, hi)) and lo <= ex.params['speed_hz'] <= hi
    assert ex.meta['speed_hz'] == pytest.approx(ex.params['speed_hz'], rel=0.05)
    assert not hasattr(ex, '_fig') and not hasattr(ex, 'png')                       # render=False: state only
    ex.set(machine=-1)
    assert (ex.speed.min, ex.speed.max) == pytest.approx(ex.cfg.operating.speed_hz_range) and ex.meta['machine_id'] == -1
    with pytest.raises(ValueError, match='quick_shaft'): E.OrbitExplorer('quick')
    with pytest.raises(ValueError, match='order'): E.OrbitExplorer('quick_shaft', order='3X')
    with pytest.raises(ValueError, match='machine'): ex._machine_cfg(99)
    with pytest.raises(AttributeError, match='no control'): ex.set(colour=1)


def test_signal_explorer_channel_selector():
    import lstm_pfd.shaft  # noqa: F401  (multi-channel records)
    ex = E.SignalExplorer('quick_shaft', 'looseness', window_s=0.5, dpi=50)
    assert ex.params['channel'] == 'accel' and ex.unit == 'm/s^2'
    assert ex.channel in ex.widget.children[0].children[0].children          # shown for a multi-channel preset
    rec, _ = generate(ex.config(ex.params['noise']), 'looseness', severity=2, seed=0, speed_hz=ex.params['speed_hz'],
                      load=ex.params['load'], temperature_c=ex.params['temperature_c'])
    np.testing.assert_array_equal(ex.x, rec[3])
    for i, (ch, unit) in enumerate([('x', 'um'), ('y', 'um'), ('keyphasor', 'V')]):
        png, r0 = ex.png, ex.record
        ex.set(channel=ch)
        assert ex.record is r0 and ex.unit == unit and ex.png != png
        np.testing.assert_array_equal(ex.x, rec[i])
        np.testing.assert_array_equal(ex.view, rec[i][:len(ex.view)])
        assert ex._axw.get_ylabel() == f'{ch} ({unit})'
    one = E.SignalExplorer(DataConfig.preset('quick', {'signal.duration_s': 1.0}), render=False)
    assert one.channel not in one.widget.children[0].children[0].children and one.x.ndim == 1


def test_signal_explorer_opens_a_shaft_preset_in_a_fresh_interpreter():
    "No `import lstm_pfd.shaft` needed first: the explorer registers the multi-channel generator itself."
    import subprocess, sys
    code = ("from lstm_pfd.explorers import SignalExplorer\n"
            "e = SignalExplorer('quick_shaft')\n"
            "print(e.record.shape[0])\n")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == '4', r.stdout


# ------------------------------------------------------------------------------------------ multi-channel files
SHAFT = {'signal.duration_s': 1.0, 'dataset.records_per_class_severity': 3, 'dataset.window_s': 0.25, 'dataset.hop_s': 0.25}


@pytest.fixture(scope='module')
def shaft(tmp_path_factory):
    "A tiny 4-channel `quick_shaft` file, a model on all its channels and one on the probes in the order (y, x) (checkpoints)."
    from lstm_pfd.data import build_dataset, open_dataset
    from lstm_pfd.models import create_model
    from lstm_pfd.train import fit
    tmp = tmp_path_factory.mktemp('shaft')
    path = build_dataset(DataConfig.preset('quick_shaft', SHAFT), tmp / 'shaft.h5', progress=False)
    with open_dataset(path) as d:
        n = len(d.fault_names)
        for name, chans in (('all', None), ('yx', ('y', 'x'))):
            m = create_model('compact', n_classes=n, in_channels=2 if chans else 4, channels=(8, 16), first_stride=16, seed=0)
            fit(m, d.windows('train', channels=chans), epochs=1, batch_size=32, progress=False, seed=0, checkpoint_path=tmp / f'{name}.pt')
        yield dict(path=path, ds=d, all=tmp / 'all.pt', yx=tmp / 'yx.pt')


def test_dataset_explorer_channel_picker(shaft, ds):
    d = shaft['ds']
    dx = E.DatasetExplorer(d, 'test', dpi=50)
    assert list(dx.channel.options) == d.channels and dx.channel.value == 'accel'
    assert dx.channel in dx.widget.children[0].children[1].children
    rec, _ = d['test'].record(dx.row)
    sig = dx.signals
    np.testing.assert_array_equal(sig, rec)
    for i, (ch, unit) in enumerate(zip(d.channels, d.units)):
        png = dx.png
        dx.channel.value = ch
        assert dx.signals is sig and dx.unit == unit and (dx.png != png or ch == 'accel')
        np.testing.assert_array_equal(dx.x, rec[i])
        np.testing.assert_allclose(dx.amp, E.amplitude_spectrum(rec[i], d.fs)[1])
        assert dx._axw.get_ylabel() == f"{'acceleration' if ch == 'accel' else ch} ({unit.replace('^2', '$^2$')})"
    r2 = int(dx.rows[-1])
    dx.set(channel='y', record=r2)                        # one update: the new record's y channel
    np.testing.assert_array_equal(dx.x, d['test'].record(r2)[0][1])
    one = E.DatasetExplorer(ds, 'train', dpi=50)          # a single-channel file: no picker, the record as stored
    assert list(one.channel.options) == ['signal'] and one.channel not in one.widget.children[0].children[1].children
    assert one.x is one.signals and one.unit == ds.config.signal.units
    with pytest.raises(ValueError, match="allowed: \\['signal'\\]"): E.DatasetExplorer(ds, 'train', channel='x')


def test_explorers_close_a_file_they_opened_on_a_bad_split(shaft):
    h5py = pytest.importorskip('h5py')
    n = h5py.h5f.get_obj_count(h5py.h5f.OBJ_ALL, h5py.h5f.OBJ_FILE)
    with pytest.raises(ValueError, match="split: got 'nope'"): E.DatasetExplorer(shaft['path'], 'nope')
    with pytest.raises(ValueError, match="split: got 'nope'"): E.ModelExplorer(shaft['all'], shaft['path'], 'nope')
    assert h5py.h5f.get_obj_count(h5py.h5f.OBJ_ALL, h5py.h5f.OBJ_FILE) == n


def test_model_explorer_all_channels(shaft):
    pytest.importorskip('captum')
    from lstm_pfd import xai
    from lstm_pfd.train import load_checkpoint
    d, calls = shaft['ds'], []
    def counting(m, x, method, target=None, **kw):
        calls.append(np.shape(x))
        return xai.explain(m, x, method, target=target, **kw)
    mx = E.ModelExplorer(shaft['all'], d, 'test', method='ig', n_steps=4, explainer=counting, background_methods=(), dpi=50)
    wpr, L = mx.wpr, mx.windows.window_len
    assert mx.model_channels == d.channels and mx.channel.value == 'accel' and mx.channel in mx.widget.children[1].children[0].children
    assert calls == [(wpr, 4, L)] and mx.inputs.shape == (4, L) == mx.channel_attribution.shape
    model, _ = load_checkpoint(shaft['all'])
    sp = xai.frequency_attribution(model, mx._record_windows(mx.row), d.fs, target=list(mx._targets(mx.row, 'predicted')), n_steps=4)
    share = xai.channel_share(mx.channel_attribution)
    assert mx.top_channel == d.channels[int(np.argmax(share))] and mx.channel_share[mx.top_channel] == share.max()
    assert f"relied most on <b>{mx.top_channel}</b>" in mx.title.value
    for k, ch in enumerate(d.channels):
        png = mx.png
        mx.channel.value = ch
        assert mx.png != png or ch == 'accel'
        np.testing.assert_array_equal(mx.x, mx.inputs[k])
        np.testing.assert_array_equal(mx.attribution, mx.channel_attribution[k])
        np.testing.assert_allclose(mx.spectral.values[0], sp.channel_values[mx.window_index, k], rtol=1e-4, atol=1e-6)
        assert f'channel shown <b>{ch}</b>' in mx.title.value and mx._axt.get_ylabel() == ch
    assert len(calls) == 1   # another channel shown: no new attribution
    mx.window.value = wpr - 1
    np.testing.assert_array_equal(mx.x, mx.inputs[3])
    assert len(calls) == 1
    mx.close()


def test_model_explorer_feeds_the_stored_channels_in_order(shaft):
    from lstm_pfd.train import evaluate, load_checkpoint
    d = shaft['ds']
    model, info = load_checkpoint(shaft['yx'])
    assert info['channels'] == ['y', 'x']
    mx = E.ModelExplorer(shaft['yx'], d, 'test', method='none', dpi=50)
    yx = d.windows('test', channels=('y', 'x'), normalize=mx.windows.normalize)
    assert mx.model_channels == ['y', 'x'] and mx.channel.value == 'y' and list(mx.channel.options) == d.channels
    np.testing.assert_allclose(mx.record_probs, evaluate(model, yx).record_probs, rtol=1e-5, atol=1e-6)
    j = mx.row * mx.wpr
    np.testing.assert_array_equal(mx.inputs, yx.window(j))
    mx.channel.value = 'keyphasor'                        # not read by the model: shown, the model's inputs unchanged
    np.testing.assert_array_equal(mx.inputs, yx.window(j))
    np.testing.assert_array_equal(mx.x, d.windows('test', normalize=mx.windows.normalize).window(j)[2])
    assert mx.attribution is None and 'does not read keyphasor' in mx._note.get_text()
    same = E.ModelExplorer(model, d, 'test', method='none', channels=['y', 'x'], dpi=50)   # a bare model, its channels named
    np.testing.assert_array_equal(same.record_probs, mx.record_probs)
    with pytest.raises(ValueError, match='name its input channels'): E.ModelExplorer(model, d, 'test', method='none')
    with pytest.raises(ValueError, match="trained on \\['y', 'x'\\]"): E.ModelExplorer(shaft['yx'], d, 'test', channels=['x', 'y'])
    rx = E.RobustnessExplorer(shaft['yx'], d, 'test', snr_db=None, dpi=50)   # the same channels, the same evaluation
    assert rx.model_channels == ['y', 'x'] and rx.X.shape[1] == 4
    assert rx.accuracy['record'] == pytest.approx(evaluate(model, yx).record_acc)
