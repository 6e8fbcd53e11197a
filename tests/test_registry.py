"""The fault registry end to end: a class registered in `physics` reaches every stage of the pipeline, and a new
atom is one catalogue entry plus one renderer."""
import numpy as np
import pytest

from lstm_pfd import physics, signals
from lstm_pfd.config import DataConfig

NEW = 'imbalance_looseness'
TINY = DataConfig.preset('quick').override({'signal.duration_s': 0.5, 'dataset.records_per_class_severity': 3,
                                            'dataset.window_s': 0.25, 'dataset.hop_s': 0.25})


@pytest.fixture
def twelve():
    "A 12th class made of two existing atoms, removed afterwards whatever happens."
    n = physics.n_classes()
    physics.register_fault(NEW, atoms=('imbalance', 'looseness'), alias='desequilibre_jeu')
    try: yield n + 1
    finally: physics.unregister_fault(NEW)
    assert physics.n_classes() == n and NEW not in physics.class_names()


def test_register_fault_validates():
    with pytest.raises(ValueError, match='unknown atom'): physics.register_fault('x_class', atoms=('imbalance', 'nope'))
    with pytest.raises(ValueError, match='exists already'): physics.register_fault('wear', atoms=('wear',))
    with pytest.raises(ValueError, match='built in'): physics.unregister_fault('oil_whirl')
    assert physics.class_names() == physics.FAULTS


def test_registered_class_in_physics_and_signals(twelve):
    names = physics.class_names()
    assert len(names) == twelve == 12 and names[-1] == NEW and physics.fault_index('desequilibre_jeu') == 11
    sig = physics.CATALOGUE[NEW]
    assert sig.label == 11 and sig.atoms == ('imbalance', 'looseness')
    exp = physics.expected_bands(NEW, 60.0)
    assert np.allclose(exp, physics.expected_bands('looseness', 60.0))     # 1X is already in the looseness ladder
    assert physics.control_bands(NEW, 60.0, 10240.0).shape == physics.expected_bands(NEW, 60.0, merge=False).shape
    cfg = TINY.override({'transient.probability': 0.0})
    x, m, parts = signals.generate(cfg, NEW, severity='severe', seed=3, components=True, speed_hz=60.0)
    assert m['label'] == 11
    P = np.abs(np.fft.rfft(parts['fault'])) ** 2
    f = np.fft.rfftfreq(len(x), 1 / cfg.signal.fs)
    e = P[physics.band_mask(f, exp)].sum()
    c = P[physics.band_mask(f, physics.control_bands(NEW, 60.0, cfg.signal.fs))].sum()
    assert e > 100 * c
    # each atom at MIX_WEIGHT of its single-class amplitude: the 1X of the new class is 0.75 (imbalance + looseness)
    X, M = signals.generate_batch(cfg, [NEW, 'imbalance'], 3, [5, 5], speed_hz=60.0)
    assert M['label'].tolist() == [11, 2]


def test_twelve_classes_through_the_pipeline(twelve, tmp_path):
    "generate -> dataset -> fit -> evaluate -> explain -> ONNX -> Predictor, 12 class names at every step."
    pytest.importorskip('onnxruntime')
    import torch
    from lstm_pfd.data import build_dataset, open_dataset
    from lstm_pfd.export import to_onnx
    from lstm_pfd.predict import Predictor
    from lstm_pfd.models import create_model
    from lstm_pfd.train import evaluate, fit
    from lstm_pfd.xai import explain
    names = list(physics.class_names())
    path = build_dataset(TINY, tmp_path / 'd.h5', progress=False)
    with open_dataset(path) as ds:
        assert ds.fault_names == names                                     # the file stores the registry's names
        train, test = ds.windows('train'), ds.windows('test')
    assert train.class_names == names and set(np.unique(train.labels)) == set(range(12))
    torch.manual_seed(0)
    model = create_model('compact')                                        # output size from the registry
    with torch.no_grad(): assert model(torch.zeros(2, 1, train.window_len)).shape == (2, 12)
    res = fit(model, train, epochs=1, progress=False, checkpoint_path=tmp_path / 'm.pt')
    ev = evaluate(model, test)
    assert list(ev.class_names) == names and ev.probs.shape[1] == 12
    x = test.windows()[:2] if hasattr(test, 'windows') else test[0][0][None]
    att = explain(model, np.asarray(x, np.float32).reshape(-1, 1, train.window_len), method='ig', n_steps=4)
    assert att.shape[-1] == train.window_len
    rep = to_onnx(model, tmp_path / 'm.onnx', window_len=train.window_len)
    pred = Predictor(tmp_path / 'm.onnx')
    assert pred.class_names == names
    p = pred.predict(test.windows()[:3].reshape(3, -1) if hasattr(test, 'windows') else x)
    assert len(p.probabilities) == 12 and p.label in names


def test_new_atom_with_its_renderer():
    "A 'rub' atom: 1.5X and 0.5X tones. Catalogue, expected bands and the generated spectrum all show it."
    physics.register_atom('rub', orders=((0.5, physics.ORDER_HW), (1.5, physics.ORDER_HW)), description='rub: 0.5X and 1.5X')
    try:
        @signals.register_atom('rub')
        def _rub(r): r.draw_tones('sev', {0.5: 0.8, 1.5: 1.0})
        physics.register_fault('rubbing', atoms=('rub',))
        try:
            assert 'rub' in physics.catalogue_bands(60.0) and physics.CATALOGUE['rubbing'].atoms == ('rub',)
            exp = physics.expected_bands('rubbing', 60.0)
            assert np.allclose(exp, [[0.5 * 60 * 0.97, 0.5 * 60 * 1.03], [1.5 * 60 * 0.97, 1.5 * 60 * 1.03]])
            cfg = DataConfig.preset('jbfd11').override({'transient.probability': 0.0})
            x, m = signals.generate(cfg, 'rubbing', severity='mild', seed=1, speed_hz=60.0)
            P = np.abs(np.fft.rfft(x)) ** 2
            f = np.fft.rfftfreq(len(x), 1 / cfg.signal.fs)
            e = P[physics.band_mask(f, exp)].sum()
            c = P[physics.band_mask(f, physics.control_bands('rubbing', 60.0, cfg.signal.fs, cfg.noise.emi.mains_hz))].sum()
            assert e > 10 * c, (e, c)
            assert physics.band_features(x[None], cfg.signal.fs, 60.0).shape == (1, len(physics.ATOMS))
            with pytest.raises(ValueError, match='used by'): physics.unregister_atom('rub')
        finally: physics.unregister_fault('rubbing')
    finally:
        signals.RENDERERS.pop('rub', None)
        physics.unregister_atom('rub')
    assert 'rub' not in physics.ATOMS


def test_atom_without_renderer_raises():
    physics.register_atom('squeal', bands_hz=((3000.0, 3500.0),))
    physics.register_fault('squealing', atoms=('squeal',))
    try:
        cfg = DataConfig.preset('quick')
        with pytest.raises(ValueError, match="no renderer for atom.*squeal"): signals.generate(cfg, 'squealing', severity=0, seed=1)
        with pytest.raises(ValueError, match='register_atom'): signals.generate_batch(cfg, ['healthy', 'squealing'], 0, [1, 2])
    finally:
        physics.unregister_fault('squealing'); physics.unregister_atom('squeal')


def test_renderer_needs_a_catalogue_entry():
    with pytest.raises(ValueError, match='physics.register_atom'): signals.register_atom('nothing_here')
    with pytest.raises(ValueError, match='has a renderer'): signals.register_atom('wear')
