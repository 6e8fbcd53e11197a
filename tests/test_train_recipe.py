"Training that converges or says why not: the small-data case, BatchNorm recalibration, the recipe, bf16 and exact reproducibility."
import logging

import numpy as np
import pytest
import torch

from lstm_pfd import physics
from lstm_pfd.config import DataConfig
from lstm_pfd.data import WindowDataset
from lstm_pfd.models import create_model
from lstm_pfd.signals import generate_batch
from lstm_pfd.train import RECIPE, ToneDataset, evaluate, fit, load_checkpoint, recalibrate_batchnorm

pytestmark = pytest.mark.usefixtures('one_torch_thread')

NAMES = ['healthy', 'misalignment']


def _rig(loads, seed0, offset):
    "A small two-class rig from the generator: alternate healthy / misalignment records at the given loads, 60 Hz."
    cfg = DataConfig.preset('quick')
    n = len(loads)
    X, _ = generate_batch(cfg, [NAMES[i % 2] for i in range(n)], [1] * n, [seed0 + i for i in range(n)], load=loads, speed_hz=60.0)
    return WindowDataset(X, np.arange(n) % 2, np.arange(n) + offset, window_len=5120, fs=cfg.signal.fs, class_names=NAMES)


@pytest.fixture(scope='module')
def rig():
    "24 training windows (6 records at loads 0.3-0.5), validation at 0.45, held-out test loads 0.7-0.9."
    return (_rig([0.3, 0.3, 0.4, 0.4, 0.5, 0.5], 0, 0), _rig([0.45, 0.45], 50, 50),
            _rig([0.7, 0.7, 0.8, 0.8, 0.85, 0.85, 0.9, 0.9], 100, 100))


def test_small_rig_learns_and_generalises_to_new_loads(rig):
    tr, va, te = rig
    assert len(tr) == 24 and set(physics.class_names()[:2]) == set(NAMES)
    res = fit(create_model('compact', n_classes=2, seed=0), tr, va, epochs=30, batch_size=4, patience=5, progress=False, threads=1)
    ev = evaluate(res.model, te)
    assert ev.record_acc >= 0.9, (res, res.history, ev)
    assert res.warnings == [] and res.final['majority_acc'] == 0.5 and res.final['val_acc'] > 0.5


@pytest.mark.parametrize('recalibrate', [False, True])
def test_small_rig_in_few_steps_learns_or_warns(rig, recalibrate, caplog):
    "The reported failure: 100 % training accuracy in train mode, chance in eval mode, BatchNorm statistics from 6-18 steps."
    tr, va, te = rig
    with caplog.at_level(logging.WARNING, logger='lstm_pfd.train'):
        res = fit(create_model('compact', n_classes=2, seed=0), tr, va, epochs=6, batch_size=8, lr=3e-3, patience=None,
                  progress=False, threads=1, recalibrate=recalibrate)
    ev = evaluate(res.model, te)
    assert res.history[-1]['train_acc'] == 1.0
    assert ev.record_acc >= 0.9 or (res.warnings and any(r.levelno == logging.WARNING for r in caplog.records))
    if recalibrate: assert ev.record_acc >= 0.9 and res.warnings == [], (ev, res.warnings)
    else: assert ev.record_acc == 0.5 and any('majority class' in w for w in res.warnings)   # the failure, reproduced and reported


def test_uninformative_labels_warn_loudly(rig, caplog):
    tr, va, _ = rig
    rng = np.random.default_rng(3)
    noise_tr = WindowDataset(tr.signals, rng.permutation([0, 0, 0, 1, 1, 1]), tr.record_record_ids, window_len=5120,
                             fs=tr.fs, class_names=NAMES)   # labels unrelated to the signals
    noise_va = WindowDataset(va.signals, [1, 1], va.record_record_ids, window_len=5120, fs=va.fs, class_names=NAMES)
    with caplog.at_level(logging.WARNING, logger='lstm_pfd.train'):
        res = fit(create_model('compact', n_classes=2, seed=0), noise_tr, noise_va, epochs=6, batch_size=4, patience=2,
                  progress=False, threads=1)
    # every validation window is class 1: the majority answer scores 1.0, which no model can beat
    assert res.final['majority_acc'] == 1.0
    assert any('majority class' in w for w in res.warnings), res.warnings
    assert any('majority class' in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert 'warnings=' in repr(res)


def test_restoring_epoch_0_warns(caplog):
    tr, va = ToneDataset(n_classes=2, records_per_class=2, seed=0), ToneDataset(n_classes=2, records_per_class=2, seed=1, record_offset=50)
    # lr 0 and min_delta 1: no epoch can improve on epoch 0 by that much, and early stopping goes back to it
    res = fit(create_model('compact', n_classes=2, seed=0), tr, va, epochs=4, lr=0.0, batch_size=4, patience=None,
              min_delta=1.0, progress=False)
    assert res.best_epoch == 0 and len(res.history) == 4
    assert any("restored epoch 0" in w for w in res.warnings), res.warnings


def test_recalibration_uses_the_training_data_and_is_saved(rig, tmp_path):
    tr, va, _ = rig
    res = fit(create_model('compact', n_classes=2, seed=0), tr, va, epochs=3, batch_size=4, patience=None, progress=False,
              checkpoint_path=tmp_path / 'c.pt')
    model, _ = load_checkpoint(tmp_path / 'c.pt')
    for a, b in zip(res.model.state_dict().values(), model.state_dict().values()): assert torch.equal(a, b)
    before = {k: v.clone() for k, v in res.model.state_dict().items()}
    assert recalibrate_batchnorm(res.model, tr, batch_size=4) > 0
    for k, v in res.model.state_dict().items(): assert torch.equal(v, before[k]), k   # already recalibrated: a fixed point
    plain = fit(create_model('compact', n_classes=2, seed=0), tr, va, epochs=3, batch_size=4, patience=None, progress=False,
                recalibrate=False)
    diff = [k for k, v in plain.model.state_dict().items() if 'running_mean' in k and not torch.equal(v, before[k])]
    assert diff   # without recalibration the running statistics are the training-time averages


@pytest.mark.parametrize('name', ['compact', 'cnn_lstm'])
def test_same_seed_same_weights(name):
    tr = ToneDataset(records_per_class=4, seed=0)
    runs = [fit(create_model(name, n_classes=4, seed=0), tr, epochs=1, batch_size=8, seed=3, progress=False, threads=1).model
            for _ in range(2)]
    a, b = (r.state_dict() for r in runs)
    assert list(a) == list(b)
    for k in a: assert torch.equal(a[k], b[k]), k
    assert not torch.are_deterministic_algorithms_enabled()   # restored after the run


def test_recipe_with_step_budget_and_onecycle():
    tr, va = ToneDataset(n_classes=2, records_per_class=3, seed=0), ToneDataset(n_classes=2, records_per_class=3, seed=1, record_offset=50)
    res = fit(create_model('compact', n_classes=2, seed=0), tr, va, **{**RECIPE, 'max_steps': 12}, batch_size=8, progress=False)
    assert len(res.history) == 4    # 24 windows in batches of 8: 3 steps per epoch, 12 steps
    lrs = [h['lr'] for h in res.history]
    assert lrs[0] > lrs[-1] and lrs[-1] < 0.1 * RECIPE['lr']   # the last step of one-cycle is near zero
    with pytest.raises(ValueError, match='schedule'): fit(create_model('compact', n_classes=2), tr, schedule='step', progress=False)
    with pytest.raises(ValueError, match='label_smoothing'):
        fit(create_model('compact', n_classes=2), tr, label_smoothing=0.1, loss=lambda l, y, x: l.sum(), progress=False)


def test_bf16_trains_and_precision_is_checked():
    tr, va = ToneDataset(n_classes=2, records_per_class=3, seed=0), ToneDataset(n_classes=2, records_per_class=3, seed=1, record_offset=50)
    res = fit(create_model('compact', n_classes=2, seed=0), tr, va, epochs=2, batch_size=8, precision='bf16', progress=False)
    assert all(v.dtype in (torch.float32, torch.int64) for v in res.model.state_dict().values())   # the weights stay float32
    assert np.isfinite(res.history[-1]['train_loss'])
    with pytest.raises(ValueError, match="precision: got 'fp16'"):
        fit(create_model('compact', n_classes=2), tr, precision='fp16', progress=False)


def test_cli_train_precision(tmp_path, capsys):
    from lstm_pfd.cli import main
    from lstm_pfd.data import build_dataset
    cfg = DataConfig.preset('quick', {'dataset.records_per_class_severity': 3, 'signal.duration_s': 1.0})
    path = build_dataset(cfg, tmp_path / 'small.h5', progress=False)
    assert main(['train', str(path), '--epochs', '1', '--precision', 'bf16', '--out', str(tmp_path / 'm.pt'), '--no-progress']) == 0
    model, info = load_checkpoint(tmp_path / 'm.pt')
    assert all(v.dtype in (torch.float32, torch.int64) for v in model.state_dict().values())
    with pytest.raises(SystemExit):
        main(['train', str(path), '--precision', 'fp16', '--out', str(tmp_path / 'x.pt')])
    assert 'fp16' in capsys.readouterr().err
