"Per-model contract checks: shapes on two lengths, parameter counts, kwargs round trip, ONNX dynamic batch, physics loss."
import io
import math
import warnings

import numpy as np
import pytest
import torch

from lstm_pfd import physics
from lstm_pfd.config import DataConfig
from lstm_pfd.models import (MODEL_LIMITS, MODELS, BandEnergyLoss, check_model_config, check_windows, count_parameters,
                             create_model, model_config, model_from_config)

ALL = sorted(MODELS)


pytestmark = pytest.mark.usefixtures('one_torch_thread')


def test_registry_names():
    assert set(ALL) >= {'compact', 'cnn1d', 'attention_cnn', 'cnn_lstm', 'resnet18', 'patchtst'}
    with pytest.raises(ValueError, match='valid names: .*compact'):
        create_model('nope')


@pytest.mark.parametrize('name', ALL)
def test_model_shapes_and_params(name):
    C = physics.n_classes()
    m = create_model(name, seed=0).eval()
    print(f'{name}: {count_parameters(m):,} parameters')
    with torch.no_grad():
        for L in (5120, 20480):
            out = m(torch.randn(2, 1, L))
            assert out.shape == (2, C) and out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize('name', ALL)
def test_model_rebuild_from_config(name):
    m = create_model(name, n_classes=4, seed=3).eval()
    cfg = model_config(m)
    m2 = model_from_config(cfg).eval()
    m2.load_state_dict(m.state_dict())
    x = torch.randn(3, 1, 4096)
    with torch.no_grad():
        torch.testing.assert_close(m(x), m2(x))


@pytest.mark.parametrize('name', ALL)
def test_model_bad_input(name):
    m = create_model(name, n_classes=3)
    with pytest.raises(ValueError, match=r'\[B, 1, L\]'):
        m(torch.randn(2, 4096))
    with pytest.raises(ValueError, match='NaN/Inf'):
        x = torch.randn(2, 1, 4096); x[0, 0, 5] = float('inf'); m(x)
    with pytest.raises(ValueError, match='too short'):
        m(torch.randn(2, 1, 8))


def test_compact_is_compact():
    n = count_parameters(create_model('compact'))
    assert 10_000 <= n <= 99_000, n


@pytest.mark.parametrize('name', ALL)
def test_onnx_dynamic_batch(name):
    ort = pytest.importorskip('onnxruntime')
    m = create_model(name, seed=0).eval()
    L = 2048
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(m, torch.randn(2, 1, L), buf, dynamo=False, input_names=['x'], output_names=['logits'],
                          dynamic_axes={'x': {0: 'batch'}, 'logits': {0: 'batch'}})
    sess = ort.InferenceSession(buf.getvalue(), providers=['CPUExecutionProvider'])
    for B in (1, 32):
        x = torch.randn(B, 1, L)
        with torch.no_grad():
            ref = m(x).numpy()
        np.testing.assert_allclose(sess.run(None, {'x': x.numpy()})[0], ref, rtol=1e-3, atol=1e-4)


def _tone_windows(freqs, fs, L, seed, amp=0.5, noise=0.1):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(L) / fs
    f = torch.tensor(freqs, dtype=torch.float32)
    x = amp * torch.sin(2 * math.pi * f[:, None] * t) * (f[:, None] > 0) + noise * torch.randn(len(freqs), L, generator=g)
    return x[:, None].float()


def test_physics_loss_with_catalogue():
    "With the real catalogue: each banded class's prior prefers it over healthy on a tone in its band."
    fs, L = 20480.0, 20480
    loss = BandEnergyLoss(fs, weight=0.1, speed_hz=60.0)
    bands = loss.bands()
    assert len(bands) == physics.n_classes() and loss.fault_names == list(physics.class_names())
    assert bands[0].shape[0] == 0 and physics.class_names()[0] == 'healthy'
    # a window holding energy at the centre of every band of class c: the prior must rank c above healthy
    for c, b in enumerate(bands):
        if len(b) == 0:
            continue
        centres = b.mean(1)
        centres = centres[centres < fs / 2]
        t = torch.arange(L) / fs
        x = sum(torch.sin(2 * math.pi * float(fc) * t) for fc in centres)
        x = (x + 0.05 * torch.randn(L, generator=torch.Generator().manual_seed(c)))[None, None].float()
        prior = loss.prior_logits(x)[0]
        assert prior[c] > prior[0], (physics.class_names()[c], prior.tolist())


def test_physics_loss_ablation_and_errors():
    bands = {'healthy': np.zeros((0, 2)), 'a': np.array([[95., 105.]]), 'b': np.array([[290., 310.], [590., 610.]])}
    fn = lambda fault, speed: bands[fault]
    x = _tone_windows([0, 100, 300, 600, 100, 0], 2048.0, 2048, seed=1)
    y = torch.tensor([0, 1, 2, 2, 1, 0])
    on = BandEnergyLoss(2048.0, weight=1.0, fault_names=list(bands), band_fn=fn)
    off = BandEnergyLoss(2048.0, weight=0.0, fault_names=list(bands), band_fn=fn)
    assert on.prior_logits(x).argmax(1).tolist() == y.tolist()
    logits = torch.zeros(6, 3, requires_grad=True)
    l_on, l_off = on(logits, y, x), off(logits, y, x)
    assert l_off.item() == pytest.approx(math.log(3), abs=1e-6)
    assert l_on.item() == pytest.approx(math.log(3) + on.last_terms['physics'], abs=1e-5)
    assert off.last_terms['physics'] == pytest.approx(on.last_terms['physics'])
    l_on.backward()
    assert logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='needs the windows'):
        on(logits, y)


def test_default_head_size_read_at_call_time(monkeypatch):
    "The default n_classes is the catalogue's count when the model is built, not when the module was imported."
    monkeypatch.setattr(physics, 'n_classes', lambda: 12)
    for name in ALL:
        m = create_model(name, seed=0)
        assert m.n_classes == 12 and model_config(m)['kwargs']['n_classes'] == 12
    assert create_model('compact', n_classes=3).n_classes == 3


def test_model_config_from_a_file_is_bounded():
    "Oversized kwargs are refused by name and limit before any weight is allocated."
    with pytest.raises(ValueError, match=r"channels: got \(6000, 16\); allowed integers 1\.\.1024"):
        model_from_config({'name': 'compact', 'kwargs': {'n_classes': 11, 'channels': (6000, 16)}})
    with pytest.raises(ValueError, match="entries; allowed 1..16"):
        check_model_config({'name': 'cnn1d', 'kwargs': {'channels': (8,) * 1000, 'kernels': (3,) * 1000, 'pools': (1,) * 1000}})
    for bad in ({'n_classes': 'eleven'}, {'n_classes': 1.5}, {'first_kernel': True}, {'first_kernel': -3}):
        with pytest.raises(ValueError, match='model kwarg'):
            check_model_config({'name': 'compact', 'kwargs': bad})
    with pytest.raises(ValueError, match="parameters; allowed <= "):
        check_model_config({'name': 'patchtst', 'kwargs': {'d_model': 1024, 'depth': 32}})
    with pytest.raises(ValueError, match='expected'):
        check_model_config(['compact'])
    for name in ALL:        # every default model is within the limits
        m = create_model(name, seed=0)
        assert check_model_config(model_config(m)) and count_parameters(m) <= MODEL_LIMITS['parameters']


def test_band_energy_loss_reads_the_config_speed_range():
    "The speed range comes from the DataConfig: a wider range widens the order bands, absolute bands stay."
    narrow, wide = DataConfig(), DataConfig()
    wide.operating.speed_hz_range = (40.0, 80.0)
    b_default = BandEnergyLoss(20480.0).bands()
    b_narrow = BandEnergyLoss(20480.0, cfg=narrow).bands()
    b_wide = BandEnergyLoss(20480.0, cfg=wide).bands()
    k = physics.class_names().index('imbalance')
    lo, hi = narrow.operating.speed_hz_range
    assert b_narrow[k][0, 0] == pytest.approx(physics.expected_bands('imbalance', lo)[0, 0])
    assert b_narrow[k][0, 1] == pytest.approx(physics.expected_bands('imbalance', hi)[0, 1])
    assert b_wide[k][0, 0] < b_narrow[k][0, 0] and b_wide[k][0, 1] > b_narrow[k][0, 1]
    assert all(np.array_equal(a, b) for a, b in zip(b_default, b_narrow))
    c = physics.class_names().index('cavitation')
    assert np.array_equal(b_wide[c], b_narrow[c])


def test_band_energy_loss_classes_outside_the_catalogue(caplog):
    "A label set of one's own: classes the catalogue does not hold get no bands, with a warning."
    loss = BandEnergyLoss(2048.0, fault_names=['inner_race', 'imbalance'], speed_hz=30.0)
    with caplog.at_level('WARNING'):
        bands = loss.bands()
    assert bands[0].shape == (0, 2) and len(bands[1]) == 1 and 'inner_race' in caplog.text


@pytest.mark.parametrize('name', ALL)
def test_four_channel_forward_and_backward(name):
    "Every model takes `[B, 4, L]` windows: logits `[B, n]`, a finite gradient for every weight and for the input."
    m = create_model(name, n_classes=5, in_channels=4, seed=0).train()
    x = (torch.randn(3, 4, 2048) * torch.tensor([1.0, 30.0, 30.0, 0.01])[None, :, None]).requires_grad_()
    out = m(x)
    assert out.shape == (3, 5) and torch.isfinite(out).all()
    torch.nn.functional.cross_entropy(out, torch.tensor([0, 3, 4])).backward()
    for pname, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), (name, pname)
    assert all(x.grad[:, c].abs().sum() > 0 for c in range(4)), 'every channel reaches the logits'
    with pytest.raises(ValueError, match=r'expected windows of shape \[B, 4, L\] \(4 channels\)'):
        m(torch.randn(3, 1, 2048))


@pytest.mark.parametrize('name', ALL)
def test_four_channel_onnx_parity(name, tmp_path):
    "A 4-channel model exported by `to_onnx` (its own parity check included) agrees with torch on random, zero and constant windows."
    pytest.importorskip('onnxruntime'); pytest.importorskip('onnx')
    import onnxruntime as ort
    from lstm_pfd.export import to_onnx
    from lstm_pfd.predict import read_metadata
    L = 1024
    m = create_model(name, in_channels=4, seed=0).eval()
    rep = to_onnx(m, tmp_path / 'm.onnx', window_len=L, fs=2048.0)
    assert set(rep['diffs']) >= {'all-zero window', 'constant window', 'random batch of 32'}
    assert rep['max_abs_diff'] < 1e-4 and read_metadata(tmp_path / 'm.onnx')['in_channels'] == 4
    sess = ort.InferenceSession(str(tmp_path / 'm.onnx'), providers=['CPUExecutionProvider'])
    assert sess.get_inputs()[0].shape[1:] == [4, L]
    rng = np.random.default_rng(1)
    levels = np.array([1.0, 30.0, 30.0, 0.01], np.float32)[None, :, None]     # channels in different units
    for x in (rng.standard_normal((7, 4, L)).astype(np.float32) * levels, np.zeros((2, 4, L), np.float32),
              np.full((2, 4, L), 0.7, np.float32) * levels):
        with torch.no_grad():
            ref = m(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(sess.run(None, {sess.get_inputs()[0].name: x})[0], ref, rtol=1e-3, atol=1e-4)
    model_from_config(model_config(m)).load_state_dict(m.state_dict())      # the recorded config rebuilds 4 channels


def test_checkpoints_rebuild_the_channel_count(tmp_path):
    "A checkpoint records in_channels; one written before in_channels existed (no such kwarg) rebuilds a one-channel model."
    from lstm_pfd.train import load_checkpoint, save_checkpoint
    m4 = create_model('cnn_lstm', n_classes=3, in_channels=4, seed=0).eval()
    save_checkpoint(tmp_path / 'four.pt', m4, class_names=list('abc'))
    back, info = load_checkpoint(tmp_path / 'four.pt')
    assert back.in_channels == 4 and info['model_kwargs']['in_channels'] == 4
    x = torch.randn(2, 4, 1024)
    with torch.no_grad():
        torch.testing.assert_close(back(x), m4(x))
    m1 = create_model('compact', n_classes=3, seed=0).eval()
    save_checkpoint(tmp_path / 'old.pt', m1, class_names=list('abc'))
    ck = torch.load(tmp_path / 'old.pt', weights_only=True)
    del ck['model_kwargs']['in_channels']                              # as written before the keyword existed
    torch.save(ck, tmp_path / 'old.pt')
    old, _ = load_checkpoint(tmp_path / 'old.pt')
    x = torch.randn(2, 1, 1024)
    with torch.no_grad():
        torch.testing.assert_close(old(x), m1(x))
    assert old.in_channels == 1
