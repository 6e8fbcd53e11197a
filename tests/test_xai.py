"Checks of lstm_pfd.xai against known answers, on every registry model, and on a model trained in seconds."
import numpy as np
import pytest
import torch
from torch import nn

from lstm_pfd import xai
from lstm_pfd.xai import (METHODS, ToneDetector, band_alignment, band_occlusion, deletion_insertion, explain, explain_info,
                          frequency_attribution, randomization_check)

FS, L = 2048.0, 2048
SMALL = {'compact': dict(channels=(8, 8, 16, 16, 16)), 'cnn1d': dict(channels=(8, 16, 16, 16)),
         'attention_cnn': dict(channels=(8, 16, 16, 16)), 'cnn_lstm': dict(channels=(8, 16, 16), hidden=16),
         'resnet18': dict(width=8), 'patchtst': dict(patch_len=64, stride=32, d_model=16, depth=1)}
OPTS = {'ig': dict(n_steps=64), 'gradcam': {}, 'occlusion': dict(window=128), 'shap': dict(nsamples=8)}


class Linear(nn.Module):
    "logits = [0, w.x + c]: IG is exactly (x - b) * w."
    def __init__(self, w):
        super().__init__(); self.register_buffer('w', torch.as_tensor(w, dtype=torch.float32))
    def forward(self, x): s = x[:, 0] @ self.w + 0.5; return torch.stack([torch.zeros_like(s), s], 1)


def _tones(freqs, amps, n=L, fs=FS, noise=0.0, seed=0):
    t = np.arange(n) / fs
    x = sum(a * np.sin(2 * np.pi * f * t + 0.7 * i) for i, (f, a) in enumerate(zip(freqs, amps)))
    return (x + noise * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def test_ig_linear_exact_for_any_baseline():
    w = np.random.default_rng(1).standard_normal(256)
    m = Linear(w)
    x = np.random.default_rng(2).standard_normal(256).astype(np.float32)
    for baseline in ('zero', 'noise', 0.3, np.full(256, -0.2, np.float32)):
        a, info = explain_info(m, x, 'ig', target=1, baseline=baseline, n_steps=4)
        b = xai._baseline(baseline, torch.tensor(x)[None, None], 0)[0, 0].numpy()
        np.testing.assert_allclose(a, (x - b) * w, rtol=1e-4, atol=1e-5)
        assert info['completeness_gap'][0] < 1e-3


def test_ig_quadratic_known_answer_and_completeness():
    tone = ToneDetector(100, FS, L)
    x = torch.tensor(_tones([100, 300], [1.0, 2.0], noise=0.1))
    a, info = explain_info(tone, x, 'ig', target=1, baseline='zero', n_steps=4)
    np.testing.assert_allclose(a.numpy(), ((tone.w @ x)[:, None] * tone.w * x).sum(0).numpy(), rtol=1e-3, atol=1e-6)
    assert info['completeness_gap'][0] < 1e-4 * abs(info['f_x'][0] - info['f_baseline'][0])


@pytest.mark.parametrize('name', sorted(__import__('lstm_pfd.models', fromlist=['MODELS']).MODELS))
def test_every_method_on_every_registry_model(name):
    from lstm_pfd.models import create_model
    m = create_model(name, n_classes=5, seed=0, **SMALL.get(name, {}))
    rng = np.random.default_rng(0)
    xb = (rng.standard_normal((2, 1, L)) + _tones([90], [1.0])).astype(np.float32)
    bg = rng.standard_normal((6, 1, L)).astype(np.float32)
    for method in METHODS:
        kw = dict(OPTS[method], **({'background': bg} if method == 'shap' else {}))
        a, info = explain_info(m, xb, method, **kw)                          # batch, numpy in -> numpy out
        assert isinstance(a, np.ndarray) and a.shape == xb.shape and np.isfinite(a).all(), (name, method)
        assert np.abs(a).sum() > 0, (name, method)
        a1 = explain(m, torch.tensor(xb[0, 0]), method, target=3, **kw)      # one window [L], tensor in -> tensor out
        assert torch.is_tensor(a1) and a1.shape == (L,)
        if method == 'ig':
            with torch.no_grad(): spread = float(m.eval()(torch.tensor(xb)).std())
            assert (info["completeness_gap"] <= 0.2 * np.maximum(np.abs(info['f_x'] - info['f_baseline']), spread)).all(), info
    sa = frequency_attribution(m, xb, FS, n_steps=32)
    assert sa.values.shape == (2, L // 2 + 1) and (sa.gap <= 0.05 * np.abs(sa.values.sum(1)).clip(0.1)).all()
    assert not m.training


def test_tone_model_time_and_frequency_attributions_concentrate_on_the_tone():
    tone = ToneDetector(100, FS, L)
    x = _tones([100, 250, 400], [1.0, 1.0, 1.0], noise=0.2)
    sa = frequency_attribution(tone, x, FS, target=1, n_steps=16)
    k = int(np.argmin(np.abs(sa.freqs - 100)))
    assert abs(sa.values[0, k]) > 0.99 * np.abs(sa.values[0]).sum()
    assert sa.gap[0] < 1e-3
    ba = band_alignment(sa, bands=[[95, 105]], control=[[195, 205]])
    assert ba['expected'] > 0.99 and ba['alignment'] > 0.99
    # band occlusion agrees
    bo = band_occlusion(tone, x, FS, target=1, band_hz=10)
    # every bin of a band carries the band's value, so the maximum is tied over a band: compare values, not argmax positions
    assert bo.values[0][k] == pytest.approx(bo.values[0].max(), rel=1e-6)
    # time: tone only in the second half -> the attribution lives there, for every method
    xh = _tones([250], [1.0], noise=0.05); xh[L // 2:] += _tones([100], [2.0])[L // 2:]
    for method, kw in [('ig', dict(baseline='zero')), ('occlusion', dict(window=256, stride=256))]:
        a = explain(tone, xh, method, target=1, **kw)          # signed: the 250-Hz products cancel over the first half
        assert abs(a[:L // 2].sum()) < 0.05 * abs(a.sum()) and a[L // 2:].sum() > 0, method


def test_band_alignment_with_catalogue_bands_at_the_record_speed():
    # a model that detects 2X (misalignment's strongest order) at a 57-Hz shaft speed
    speed = 57.0
    det = ToneDetector(2 * speed, FS, L)
    x = _tones([speed, 2 * speed, 3 * speed], [1.0, 1.0, 0.5], noise=0.1)
    sa = frequency_attribution(det, x, FS, target=1)
    ba = band_alignment(sa, 'misalignment', speed, fs=FS)
    assert ba['alignment'] > 0.95 and ba['expected'] > 0.95
    off = band_alignment(sa, 'oil_whirl', speed, fs=FS)             # wrong class: the tone is outside its bands
    assert off['expected'] < 0.05
    assert np.isnan(band_alignment(sa, 'healthy', speed, fs=FS)['alignment'])


def test_errors_list_what_is_valid():
    tone = ToneDetector(100, FS, L)
    x = _tones([100], [1.0])
    with pytest.raises(ValueError, match='ig, gradcam, occlusion, shap'): explain(tone, x, 'saliency')
    with pytest.raises(ValueError, match=r'0\.\.1'): explain(tone, x, 'ig', target=5)
    with pytest.raises(ValueError, match=r'0\.\.1'): explain(tone, x, 'ig', target=-1)
    with pytest.raises(ValueError, match='one target or one per window'): explain(tone, x, 'ig', target=[0, 1])
    with pytest.raises(ValueError, match=r'\[B, 1, L\]'): explain(tone, np.zeros((3, L), np.float32))
    with pytest.raises(ValueError, match=r'\[B, 1, L\]'): explain(tone, np.zeros((2, 3, L), np.float32))
    bad = x.copy(); bad[10] = np.nan
    with pytest.raises(ValueError, match='NaN'): explain(tone, bad)
    with pytest.raises(TypeError, match='n_steps'): explain(tone, x, 'ig', steps=8)
    with pytest.raises(ValueError, match='background'): explain(tone, x, 'shap')
    with pytest.raises(ValueError, match='Conv1d'): explain(tone, x, 'gradcam')
    with pytest.raises(ValueError, match='baseline'): explain(tone, x, 'ig', baseline='blur')


@pytest.fixture(scope='module')
def trained():
    from lstm_pfd.models import create_model
    from lstm_pfd.train import ToneDataset, fit
    ds = ToneDataset(n_classes=3, records_per_class=12, windows_per_record=4, window_len=1024, fs=2048.0, f0=100.0, seed=0)
    m = create_model('compact', n_classes=3, seed=0, channels=(8, 8, 16, 16, 16))
    fit(m, ds, epochs=8, lr=3e-3, batch_size=32, patience=None, progress=False, seed=0)
    m.eval()
    test = ToneDataset(n_classes=3, records_per_class=4, windows_per_record=1, window_len=1024, fs=2048.0, f0=100.0, seed=1)
    with torch.no_grad(): acc = (m(test.x).argmax(1).numpy() == test.labels).mean()
    assert acc > 0.9, acc
    return m, ds, test


def test_deletion_beats_random_on_a_trained_model(trained):
    m, ds, test = trained
    wins = [(i, test.x[i]) for i in range(len(test)) if test.labels[i] > 0][:4]
    for method, kw in [('ig', dict(n_steps=32)), ('occlusion', dict(window=64)), ('shap', dict(background=ds.x, nsamples=32))]:
        dele, dele_r, ins, ins_r = [], [], [], []
        for i, x in wins:
            a = explain(m, x, method, target=int(test.labels[i]), **kw)
            f = deletion_insertion(m, x, a, target=int(test.labels[i]), n_segments=16, n_random=8)
            dele.append(f.auc['deletion']); dele_r.append(f.auc['deletion_random'])
            ins.append(f.auc['insertion']); ins_r.append(f.auc['insertion_random'])
        assert np.mean(dele) < np.mean(dele_r), (method, dele, dele_r)
        assert np.mean(ins) > np.mean(ins_r), (method, ins, ins_r)


def test_trained_model_completeness_and_frequency_answer(trained):
    m, ds, test = trained
    i = int(np.flatnonzero(test.labels == 2)[0])       # class 2: a 200-Hz tone
    a, info = explain_info(m, test.x[i], 'ig', target=2, n_steps=32)
    assert info['relative_gap'][0] < 0.05, info
    sa = frequency_attribution(m, test.x[i], 2048.0, target=2, n_steps=32)
    ba = band_alignment(sa, bands=[[195, 205]], control=[[145, 155]])
    assert ba['alignment'] > 0.8, ba


def test_model_randomisation_changes_attributions(trained):
    m, ds, test = trained
    x = test.x[int(np.flatnonzero(test.labels == 1)[0])]
    for method, kw in [('ig', dict(n_steps=16)), ('gradcam', {}), ('occlusion', dict(window=64))]:
        rc = randomization_check(m, x, method, seed=3, **kw)
        assert rc['spearman'] < 0.5, (method, rc['spearman'])
    assert not m.training and isinstance(m, nn.Module)


def test_explain_record_figure_from_files(tmp_path):
    "The CLI entry point: checkpoint + dataset file in, PNG and summary out."
    from lstm_pfd.data import import_recordings, open_dataset
    from lstm_pfd.models import create_model
    from lstm_pfd.physics import class_names
    from lstm_pfd.train import CheckpointMismatch, save_checkpoint
    from lstm_pfd.config import DataConfig
    cfg = DataConfig.preset('quick')
    fs, n = cfg.signal.fs, int(cfg.signal.fs * cfg.signal.duration_s)
    recs = [_tones([60, 120], [1.0, 0.5], n=n, fs=fs, noise=0.1, seed=s) for s in range(2)]
    data = import_recordings(recs, ['imbalance', 'misalignment'], fs, tmp_path / 'ext.h5', cfg=cfg,
                             meta={'speed_hz': [60.0, 60.0]}, progress=False)
    m = create_model('compact', seed=0, channels=(8, 8, 16, 16, 16))
    wl = cfg.window_len
    ckpt = save_checkpoint(tmp_path / 'm.pt', m, class_names=list(class_names()), fs=fs, window_len=wl)
    split = 'test'
    out = tmp_path / 'fig.png'
    fig, summ = xai.explain_record_figure(ckpt, data, 1, method='occlusion', split=split, out=out, n_steps=8)
    assert out.exists() and out.stat().st_size > 10_000
    assert summ['label_name'] == 'misalignment' and summ['speed_hz'] == 60.0 and 0 <= summ['band_alignment'] <= 1
    with pytest.raises(ValueError, match='out of range'):
        xai.explain_record_figure(ckpt, data, 5, split=split)
    # the checkpoint is checked against the data: window length, sampling rate, classes, finite weights
    bad = {'window_len': dict(window_len=wl // 2), 'fs': dict(fs=2 * fs), 'class_names': dict()}
    for i, (what, kw) in enumerate(bad.items()):
        mm = m if what != 'class_names' else create_model('compact', n_classes=5, seed=0, channels=(8, 8, 16, 16, 16))
        args = dict(class_names=list(class_names(mm.n_classes)), fs=fs, window_len=wl) | kw
        save_checkpoint(tmp_path / f'bad{i}.pt', mm, **args)
        with pytest.raises(CheckpointMismatch, match=f'{what}: checkpoint has'):
            xai.explain_record_figure(tmp_path / f'bad{i}.pt', data, 1, method='occlusion', split=split)
    with torch.no_grad():
        m.head.fc.weight.fill_(float('nan'))
    save_checkpoint(tmp_path / 'nan.pt', m, class_names=list(class_names()), fs=fs, window_len=wl)
    with pytest.raises(CheckpointMismatch, match='NaN/Inf values in the weights'):
        xai.explain_record_figure(tmp_path / 'nan.pt', data, 1, method='occlusion', split=split)


def test_control_bands_use_the_mains_frequency():
    "band_alignment passes the mains frequency to the control bands: none of them sits on a mains line."
    from lstm_pfd import physics
    fs = 20480.0
    det = ToneDetector(27, fs, 20480)
    sa = frequency_attribution(det, _tones([27], [1.0], n=20480, fs=fs, noise=0.1), fs, target=1, n_steps=4)
    for mains in (50.0, 60.0):
        c = physics.control_bands('oil_whirl', 60.0, fs, mains_hz=mains)
        ba = band_alignment(sa, 'oil_whirl', 60.0, fs=fs, mains_hz=mains)
        assert np.isfinite(ba['alignment'])
        assert not physics.band_mask(np.arange(1, 4) * mains, c).any()
    assert ba == pytest.approx(band_alignment(sa, bands=physics.expected_bands('oil_whirl', 60.0, merge=False), control=c), rel=1e-9)


def test_band_alignment_for_a_class_outside_the_catalogue():
    "Your own labels: no physics bands, so no alignment (NaN), and no error."
    det = ToneDetector(120, FS, L)
    sa = frequency_attribution(det, _tones([120], [1.0], noise=0.1), FS, target=1, n_steps=4)
    ba = band_alignment(sa, 'inner_race', 60.0, fs=FS)
    assert np.isnan(ba['alignment']) and ba['n_bins'] == 0


def test_band_alignment_without_a_control_band(monkeypatch):
    "When the catalogue cannot place a control band, the expected share is kept and the comparison is NaN."
    from lstm_pfd import physics
    det = ToneDetector(120, FS, L)
    sa = frequency_attribution(det, _tones([60, 120], [1.0, 1.0], noise=0.1), FS, target=1)
    def no_room(*a, **k): raise ValueError('no control band found')
    monkeypatch.setattr(physics, 'control_bands', no_room)
    ba = band_alignment(sa, 'misalignment', 60.0, fs=FS)
    assert ba['expected'] > 0.95 and np.isnan(ba['alignment']) and np.isnan(ba['control'])
