"Training, checkpoints, resume, evaluation metrics, significance tests and the classical baseline."
import math
import sys

import numpy as np
import pytest
import torch

from lstm_pfd.models import BandEnergyLoss, create_model
from lstm_pfd.train import (Callback, CheckpointMismatch, ClassicalBaseline, Evaluation, NoiseAugment, ToneDataset,
                            check_checkpoint, evaluate, evaluate_snr, fit, load_checkpoint, mcnemar, predict,
                            save_checkpoint, snr_table, summarize_runs)


pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.fixture(scope='module')
def data():
    return ToneDataset(records_per_class=16, seed=0), ToneDataset(seed=1, record_offset=1000)


def _same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_quick_training_reaches_high_accuracy(data):
    train, val = data
    res = fit(create_model('compact', n_classes=4, seed=0), train, val, epochs=10, lr=3e-3, batch_size=32, patience=3,
              seed=0, progress=False)
    ev = evaluate(res.model, val)
    print(res, ev, f"{res.history[-1]['windows_per_s']:.0f} windows/s")
    assert ev.record_acc >= 0.95 and ev.window_acc >= 0.9
    assert res.best_epoch == int(np.argmin([h['val_loss'] for h in res.history]))


def test_fit_is_reproducible_and_leaves_global_rng(data):
    train, val = data
    state = torch.random.get_rng_state()
    kw = dict(epochs=2, lr=3e-3, batch_size=32, seed=7, progress=False, augment=NoiseAugment((0, 20)))
    a = fit(create_model('compact', n_classes=4, seed=0), train, val, **kw)
    b = fit(create_model('compact', n_classes=4, seed=0), train, val, **kw)
    assert _same_weights(a.model, b.model)
    assert torch.equal(state, torch.random.get_rng_state())
    c = fit(create_model('compact', n_classes=4, seed=0), train, val, **{**kw, 'seed': 8})
    assert not _same_weights(a.model, c.model)


class _StopAfter(Callback):
    def __init__(self, n): self.n, self.calls = n, []
    def on_fit_start(self, s): self.calls.append('fit_start')
    def on_batch_end(self, s): self.calls.append('batch')
    def on_epoch_end(self, s):
        self.calls.append('epoch')
        if s.epoch + 1 >= self.n: s.stop = True


@pytest.mark.parametrize('name', ['compact', 'cnn_lstm'])
def test_resume_gives_identical_results(data, tmp_path, name):
    train, val = data
    kw = dict(epochs=4, lr=2e-3, batch_size=32, patience=None, seed=11, progress=False, augment=NoiseAugment((0, 20), p=0.5))
    full = fit(create_model(name, n_classes=4, seed=0), train, val, **kw)
    cb = _StopAfter(2)
    part = fit(create_model(name, n_classes=4, seed=0), train, val, callbacks=[cb], checkpoint_path=tmp_path / 'c.pt', **kw)
    assert len(part.history) == 2 and part.stopped_early
    assert cb.calls[0] == 'fit_start' and cb.calls.count('epoch') == 2 and 'batch' in cb.calls
    res = fit(create_model(name, n_classes=4, seed=0), train, val, resume_from=tmp_path / 'c.pt', **kw)
    assert len(res.history) == 4
    assert _same_weights(full.model, res.model)
    for h1, h2 in zip(full.history, res.history):
        assert h1['train_loss'] == h2['train_loss'] and h1['val_loss'] == h2['val_loss']


def test_early_stopping_keeps_best(data):
    "Validation labels rotated by one class: the better the model learns, the worse val_loss gets, so it must stop."
    train, _ = data
    val = ToneDataset(seed=1, record_offset=1000)
    val.labels = (val.labels + 1) % 4
    # recalibrate=False: the returned model is then exactly the one validated at the best epoch
    res = fit(create_model('compact', n_classes=4, seed=0), train, val, epochs=30, lr=3e-3, batch_size=32, patience=2,
              seed=0, progress=False, recalibrate=False)
    assert res.stopped_early and len(res.history) == res.best_epoch + 3 < 30
    assert res.warnings   # a model no better than the majority class on validation is reported
    assert res.best_score == min(h['val_loss'] for h in res.history)
    ev = evaluate(res.model, val)                      # the best weights, not the last, are loaded
    assert ev.loss == pytest.approx(res.history[res.best_epoch]['val_loss'], rel=1e-5)


def test_checkpoint_roundtrip_and_mismatch(data, tmp_path):
    train, val = data
    res = fit(create_model('cnn1d', n_classes=4, seed=0), train, epochs=1, batch_size=32, progress=False,
              checkpoint_path=tmp_path / 'm.pt', config_hash='h1')
    ck = torch.load(tmp_path / 'm.pt', weights_only=True)            # plain types only
    assert ck['model_name'] == 'cnn1d' and ck['window_len'] == 1024 and ck['fs'] == 2048.0
    assert ck['class_names'] == train.class_names and ck['config_hash'] == 'h1'
    m, info = load_checkpoint(tmp_path / 'm.pt', config_hash='h1', window_len=1024, fs=2048.0, n_classes=4)
    assert _same_weights(m, res.model) and not m.training
    x = val.x[:8]
    torch.testing.assert_close(m(x), res.model.eval()(x))
    with pytest.raises(CheckpointMismatch, match="config_hash: checkpoint has 'h1', expected 'h2'"):
        load_checkpoint(tmp_path / 'm.pt', config_hash='h2')
    with pytest.raises(CheckpointMismatch, match='window_len: checkpoint has 1024, expected 20480'):
        load_checkpoint(tmp_path / 'm.pt', window_len=20480)
    with pytest.raises(CheckpointMismatch, match='class_names'):
        check_checkpoint(info, class_names=['a', 'b', 'c', 'd'])
    with pytest.raises(TypeError, match='unknown expectation'):
        check_checkpoint(info, windowlen=3)
    torch.save({'x': 1}, tmp_path / 'other.pt')
    with pytest.raises(CheckpointMismatch, match='not an lstm_pfd checkpoint'):
        load_checkpoint(tmp_path / 'other.pt')
    # resuming into another architecture is refused
    with pytest.raises(CheckpointMismatch, match='resume_from'):
        fit(create_model('compact', n_classes=4), train, epochs=2, resume_from=tmp_path / 'm.pt', progress=False,
            config_hash='h1')


def test_bad_input(data):
    train, val = data
    m = create_model('compact', n_classes=4, seed=0)
    with pytest.raises(ValueError, match='n_classes=4'):
        fit(m, ToneDataset(n_classes=5, records_per_class=2), epochs=1, progress=False)
    with pytest.raises(ValueError, match='n_classes=4'):
        evaluate(m, ToneDataset(n_classes=5, records_per_class=2))

    class TwoD(ToneDataset):
        def __getitem__(self, i):
            x, y, r = super().__getitem__(i)
            return x[0], y, r
    with pytest.raises(ValueError, match=r'\[1, L\]'):
        fit(m, TwoD(records_per_class=2), epochs=1, progress=False)

    class Inf(ToneDataset):
        def __getitem__(self, i):
            x, y, r = super().__getitem__(i)
            return (x * float('inf') if i == 9 else x), y, r
    with pytest.raises(ValueError, match='NaN/Inf'):
        fit(m, Inf(records_per_class=4), epochs=1, batch_size=4, progress=False)

    class NoLabelsAttr(torch.utils.data.Dataset):    # label range checked per batch when no `labels` attribute
        def __len__(self): return 8
        def __getitem__(self, i): return torch.zeros(1, 256) + i, 7, i
    with pytest.raises(ValueError, match=r'outside 0\.\.3'):
        fit(m, NoLabelsAttr(), epochs=1, progress=False)
    with pytest.raises(ValueError, match='class_names has 2 classes'):
        fit(m, train, epochs=1, class_names=['a', 'b'], progress=False)


def test_metrics_match_sklearn():
    skm = pytest.importorskip('sklearn.metrics')
    rng = np.random.default_rng(0)
    R, W, C = 60, 3, 5
    rec_labels = rng.integers(0, C, R)
    labels, rids = np.repeat(rec_labels, W), np.repeat(rng.permutation(1000)[:R], W)
    probs = rng.dirichlet(np.ones(C), R * W).astype(np.float32)
    probs[np.arange(R * W), labels] += rng.uniform(0, 0.6, R * W).astype(np.float32)   # better than chance
    ev = Evaluation(probs, labels, rids)
    wp = probs.argmax(1)
    assert ev.window_acc == pytest.approx(skm.accuracy_score(labels, wp))
    np.testing.assert_array_equal(ev.confusion_matrix('window'), skm.confusion_matrix(labels, wp, labels=range(C)))
    assert ev.macro_f1('window') == pytest.approx(skm.f1_score(labels, wp, average='macro'))
    np.testing.assert_allclose(ev.per_class_recall('window'), skm.recall_score(labels, wp, average=None, labels=range(C)))
    # record level by an independent loop: mean of window probabilities per record
    rp, rl = [], []
    for r in np.unique(rids):
        sel = rids == r
        rp.append(probs[sel].mean(0).argmax()); rl.append(labels[sel][0])
    assert ev.record_acc == pytest.approx(np.mean(np.array(rp) == np.array(rl)))
    assert ev.macro_f1() == pytest.approx(skm.f1_score(rl, rp, average='macro'))


def test_mcnemar_exact():
    n = 30
    lab = np.zeros(n, int)
    pa = np.tile([[0.8, 0.2]], (n, 1)); pb = pa.copy()
    pb[:7] = [0.2, 0.8]; pa[7:8] = [0.2, 0.8]
    r = mcnemar(Evaluation(pa, lab, np.arange(n)), Evaluation(pb, lab, np.arange(n)))
    assert (r['n10'], r['n01']) == (7, 1)
    assert r['pvalue'] == pytest.approx(2 * sum(math.comb(8, k) for k in range(2)) / 2 ** 8)


def test_summarize_runs_bootstrap():
    rng = np.random.default_rng(1)
    R = 200
    lab = rng.integers(0, 3, R)
    evs = []
    for acc in (0.9, 0.8, 0.85):
        pred = np.where(rng.uniform(size=R) < acc, lab, (lab + 1) % 3)
        evs.append(Evaluation(np.eye(3, dtype=np.float32)[pred], lab, np.arange(R)))
    s = summarize_runs(evs, n_boot=1000, seed=0)
    vals = [float((e.record_pred == lab).mean()) for e in evs]
    assert s['mean'] == pytest.approx(np.mean(vals)) and s['std'] == pytest.approx(np.std(vals, ddof=1))
    assert s['ci_low'] < s['mean'] < s['ci_high']
    # a 95 % interval over 200 records for p ~ 0.85 is about +-0.05 wide (binomial sd 0.025, averaged over 3 runs)
    assert 0.02 < s['ci_high'] - s['ci_low'] < 0.15
    assert summarize_runs(evs, seed=0) == summarize_runs(evs, seed=0)


def test_snr_and_augment(data):
    train, val = data
    res = fit(create_model('compact', n_classes=4, seed=0), train, val, epochs=3, lr=3e-3, batch_size=32, seed=0,
              progress=False, augment=NoiseAugment((-5, 20), p=0.5))
    tab = snr_table(evaluate_snr(res.model, {'clean': val, 'clean_again': val}))
    assert tab['clean'] == tab['clean_again']
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 1, 2048) * torch.logspace(-2, 1, 256)[:, None, None]
    n = NoiseAugment((5.0, 5.0), p=1.0)(x, g) - x
    snr = 10 * torch.log10(x.pow(2).mean((1, 2)) / n.pow(2).mean((1, 2)))
    assert abs(float(snr.mean()) - 5.0) < 0.2       # relative to each window's own RMS, whatever its level


def test_physics_loss_in_fit_is_logged(data):
    train, val = data
    names = train.class_names
    fn = lambda f, s: np.zeros((0, 2)) if names.index(f) == 0 else np.array([[100.0 * names.index(f) - 5, 100.0 * names.index(f) + 5]])
    for w in (0.0, 0.5):
        loss = BandEnergyLoss(2048.0, weight=w, fault_names=names, band_fn=fn)
        res = fit(create_model('compact', n_classes=4, seed=0), train, val, epochs=2, batch_size=32, loss=loss, progress=False)
        assert all('train_physics' in h and h['train_physics'] >= 0 for h in res.history)
        assert res.history[0]['train_physics_weight'] == w


def test_classical_baseline(data, monkeypatch):
    pytest.importorskip('sklearn')
    train, val = data
    ev = ClassicalBaseline(n_estimators=50, seed=0).fit(train).evaluate(val)
    print('classical baseline', ev)
    assert ev.record_acc >= 0.9
    monkeypatch.setitem(sys.modules, 'sklearn.ensemble', None)
    with pytest.raises(ImportError, match=r"lstm_pfd\[ml\]"):
        ClassicalBaseline().fit(train)


class _Normalised(ToneDataset):
    "ToneDataset that says its windows are z-scored (the attribute WindowDataset carries)."
    normalize = 'zscore'


def test_checkpoint_records_normalize_and_class_names(tmp_path):
    "fit stores the data's normalisation and class names; without data names, the catalogue's for the head size."
    from lstm_pfd import physics
    tr = _Normalised(records_per_class=2, seed=0)
    res = fit(create_model('compact', n_classes=4, seed=0), tr, epochs=1, progress=False, checkpoint_path=tmp_path / 'a.pt')
    _, info = load_checkpoint(res.checkpoint_path)
    assert info['normalize'] == 'zscore' and info['class_names'] == tr.class_names
    plain = ToneDataset(records_per_class=2, seed=0)
    del_names = type('NoNames', (ToneDataset,), {})(records_per_class=2, seed=0)
    del_names.class_names = None
    fit(create_model('compact', n_classes=4, seed=0), del_names, epochs=1, progress=False, checkpoint_path=tmp_path / 'b.pt')
    _, info = load_checkpoint(tmp_path / 'b.pt')
    assert info['normalize'] is None and info['class_names'] == list(physics.class_names(4))
    with pytest.raises(ValueError, match='normalised with'):
        fit(create_model('compact', n_classes=4, seed=0), tr, plain, epochs=1, progress=False)


def test_head_size_follows_the_data():
    "A two-class data set trains a two-class head; a head of the wrong size is refused with the fix."
    two = ToneDataset(n_classes=2, records_per_class=4, seed=0)
    res = fit(create_model('compact', n_classes=2, seed=0), two, epochs=1, progress=False)
    assert evaluate(res.model, two).probs.shape[1] == 2
    three_named = ToneDataset(n_classes=2, records_per_class=4, seed=0)
    three_named.class_names = ['a', 'b', 'c']
    with pytest.raises(ValueError, match=r"train_data has 3 classes \(a, b, c\) but the model's head has n_classes=2"):
        fit(create_model('compact', n_classes=2, seed=0), three_named, epochs=1, progress=False)
    with pytest.raises(ValueError, match="n_classes=3"):
        evaluate(res.model, three_named)


def test_evaluate_checks_a_checkpoint_against_the_data(data, tmp_path):
    "evaluate(path, data) refuses a checkpoint for other windows, rates or classes, and non-finite weights."
    train, val = data
    m = create_model('compact', n_classes=4, seed=0)
    save_checkpoint(tmp_path / 'm.pt', m, class_names=train.class_names, window_len=1024, fs=2048.0)
    assert evaluate(tmp_path / 'm.pt', val).probs.shape == (len(val), 4)
    with pytest.raises(CheckpointMismatch, match='window_len: checkpoint has 1024, expected 512'):
        evaluate(tmp_path / 'm.pt', ToneDataset(window_len=512, seed=1))
    with pytest.raises(CheckpointMismatch, match='fs: checkpoint has 2048.0, expected 4096.0'):
        evaluate(tmp_path / 'm.pt', ToneDataset(fs=4096.0, seed=1))
    other = ToneDataset(seed=1)
    other.class_names = ['w', 'x', 'y', 'z']
    with pytest.raises(CheckpointMismatch, match='class_names: checkpoint has'):
        evaluate(tmp_path / 'm.pt', other)
    with torch.no_grad():
        m.head.fc.bias.fill_(float('nan'))
    with pytest.raises(CheckpointMismatch, match='NaN/Inf values in the weights'):
        evaluate(m, val)
    save_checkpoint(tmp_path / 'nan.pt', m, class_names=train.class_names, window_len=1024, fs=2048.0)
    with pytest.raises(CheckpointMismatch, match="first 'head.fc.bias'"):
        evaluate(tmp_path / 'nan.pt', val)


def test_checkpoint_with_oversized_kwargs_is_refused_before_building(tmp_path):
    m = create_model('compact', n_classes=4, seed=0)
    save_checkpoint(tmp_path / 'm.pt', m)
    ck = torch.load(tmp_path / 'm.pt', weights_only=True)
    ck['model_kwargs']['channels'] = (6000, 64, 64, 64, 64)
    torch.save(ck, tmp_path / 'big.pt')
    with pytest.raises(CheckpointMismatch, match=r"channels: got \(6000, 64, 64, 64, 64\); allowed integers 1\.\.1024"):
        load_checkpoint(tmp_path / 'big.pt')
    ck['model_kwargs'] = {'n_classes': 4, 'evil': 1}
    torch.save(ck, tmp_path / 'evil.pt')
    with pytest.raises(CheckpointMismatch, match=r"unknown kwarg\(s\) \['evil'\]"):
        load_checkpoint(tmp_path / 'evil.pt')


def test_classical_features_follow_the_catalogue_and_the_record_speed():
    "Band features come from the catalogue (wear and friction bands included) at each window's own speed."
    from lstm_pfd.train import classical_features
    fs, L = 4096.0, 4096
    t = np.arange(L) / fs
    x = np.stack([np.sin(2 * np.pi * 2 * 50.0 * t), np.sin(2 * np.pi * 2 * 70.0 * t)])     # 2X at 50 and at 70 Hz
    F, names = classical_features(x, fs, speed_hz=[50.0, 70.0])
    f = dict(zip(names, F.T))
    assert {'band_300-1300Hz', 'band_600-1200Hz', 'band_1-6Hz', 'band_1400-2600Hz', 'band_0.45X'} <= set(names)
    assert (f['band_2X'] > -0.01).all() and (f['band_1X'] < -3).all()
    F2, _ = classical_features(x, fs, speed_hz=60.0)        # at 60 Hz the 2X band (116.4-123.6 Hz) misses both tones
    assert (dict(zip(names, F2.T))['band_2X'] < -3).all()
    from lstm_pfd.config import DataConfig
    wide = DataConfig()
    wide.operating.speed_hz_range = (48.0, 72.0)
    F3, _ = classical_features(x, fs, cfg=wide)             # unknown speed: the bands span the configured range
    assert (dict(zip(names, F3.T))['band_2X'] > -0.01).all()
    wear = np.sin(2 * np.pi * 400.0 * t)[None]
    fw = dict(zip(names, classical_features(wear, fs, speed_hz=60.0)[0][0]))
    assert fw['band_300-1300Hz'] > -0.01 and fw['band_600-1200Hz'] < -3


class _Evil:
    def __reduce__(self):
        return (print, ('this must never run',))


def test_unreadable_checkpoints_are_refused_in_one_line(tmp_path, capsys, data):
    "Empty, truncated, foreign and code-carrying files: one-line CheckpointMismatch, nothing executed."
    good = save_checkpoint(tmp_path / 'good.pt', create_model('compact', n_classes=4, seed=0))
    raw = good.read_bytes()
    files = {'empty.pt': b'', 'truncated.pt': raw[:len(raw) // 2], 'text.pt': b'not a checkpoint\n'}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    torch.save({'format': 'lstm_pfd.checkpoint/1', 'x': _Evil()}, tmp_path / 'evil.pt')
    for name in [*files, 'evil.pt']:
        with pytest.raises(CheckpointMismatch, match='is not a readable lstm_pfd checkpoint') as e:
            load_checkpoint(tmp_path / name)
        assert '\n' not in str(e.value) and 'weights_only=False' not in str(e.value)
        with pytest.raises(CheckpointMismatch):
            fit(create_model('compact', n_classes=4, seed=0), data[0], epochs=1, progress=False, resume_from=tmp_path / name)
    assert 'this must never run' not in capsys.readouterr().out


def test_a_callback_that_shows_progress_replaces_the_bar(data, capsys):
    "A callback with `replaces_progress = True` (e.g. explorers.TrainingMonitor) switches fit's tqdm bar off."
    class Shows(Callback):
        replaces_progress = True
    train, val = data
    for cbs, shown in (((), True), ((Shows(),), False)):
        fit(create_model('compact', n_classes=4, seed=0), train, val, epochs=1, batch_size=64, seed=0, progress=True, callbacks=cbs)
        err = capsys.readouterr().err
        assert ('epochs' in err) == shown, err[-300:]


# ----------------------------------------------------------------------------------- fit's config and overrides
def test_fit_without_a_config_keeps_its_old_defaults():
    # regression pin: the keyword defaults of `fit` before it took a TrainConfig, copied from its old signature
    from lstm_pfd.train_config import resolve_train_config
    old = dict(epochs=30, lr=1e-3, batch_size=64, optimizer='adam', weight_decay=0.0, schedule=None, patience=5, monitor=None,
               min_delta=0.0, seed=0, device='cpu', threads=None, max_steps=None, label_smoothing=0.0, precision='fp32',
               recalibrate=True, deterministic=True, augment_snr_db=None)
    got = resolve_train_config().to_dict()
    assert {k: got[k] for k in old} == old


def test_a_config_brings_its_augmentation_and_threads(tmp_path):
    from lstm_pfd.checkpoint import _read_checkpoint
    from lstm_pfd.train import TrainConfig
    seen = []
    class Threads(Callback):
        def on_fit_start(self, state): seen.append(torch.get_num_threads())
    tr, before = ToneDataset(n_classes=2, records_per_class=2, seed=0), torch.get_num_threads()
    cfg = TrainConfig(epochs=1, batch_size=8, threads=before + 1)
    res = fit(create_model('compact', n_classes=2, seed=0), tr, None, cfg, callbacks=[Threads()], progress=False,
              checkpoint_path=tmp_path / 'c.pt')
    assert seen == [before + 1] and torch.get_num_threads() == before   # the config's threads, restored afterwards
    args = _read_checkpoint(tmp_path / 'c.pt')['train_state']['fit_args']
    assert args['augment'] == repr(NoiseAugment((0.0, 30.0), p=0.5))   # TrainConfig's default augmentation
    assert args['config'] == res.config == cfg.to_dict()
    with pytest.raises(ValueError, match='augment_snr_db=None'):
        fit(create_model('compact', n_classes=2), tr, None, cfg, augment=NoiseAugment(), progress=False)
    with pytest.raises(TypeError, match="did you mean 'threads'"):
        fit(create_model('compact', n_classes=2), tr, num_threads=1, progress=False)
    with pytest.raises(ValueError, match='schedule: got'):
        fit(create_model('compact', n_classes=2), tr, None, cfg, schedule='linear', progress=False)
