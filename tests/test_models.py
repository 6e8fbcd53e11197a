"Per-model contract checks: shapes on two lengths, parameter counts, kwargs round trip, ONNX dynamic batch, physics loss."
import io
import math
import warnings

import numpy as np
import pytest
import torch

from lstm_pfd.models import (MODELS, BandEnergyLoss, check_windows, count_parameters, create_model, model_config,
                             model_from_config)

ALL = sorted(MODELS)


pytestmark = pytest.mark.usefixtures('one_torch_thread')


def test_registry_names():
    assert set(ALL) >= {'compact', 'cnn1d', 'attention_cnn', 'cnn_lstm', 'resnet18', 'patchtst'}
    with pytest.raises(ValueError, match='valid names: .*compact'):
        create_model('nope')


@pytest.mark.parametrize('name', ALL)
def test_model_shapes_and_params(name):
    m = create_model(name, n_classes=11, seed=0).eval()
    print(f'{name}: {count_parameters(m):,} parameters')
    with torch.no_grad():
        for L in (5120, 20480):
            out = m(torch.randn(2, 1, L))
            assert out.shape == (2, 11) and out.dtype == torch.float32 and torch.isfinite(out).all()


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
    m = create_model(name, n_classes=11, seed=0).eval()
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
    physics = pytest.importorskip('lstm_pfd.physics')
    if not hasattr(physics, 'expected_bands'):
        pytest.skip('lstm_pfd.physics.expected_bands not written yet')
    fs, L = 20480.0, 20480
    loss = BandEnergyLoss(fs, weight=0.1, speed_hz=60.0)
    bands = loss.bands()
    assert len(bands) == len(physics.FAULTS) == 11
    assert bands[0].shape[0] == 0 or physics.FAULTS[0] != 'healthy'
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
        assert prior[c] > prior[0], (physics.FAULTS[c], prior.tolist())


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
