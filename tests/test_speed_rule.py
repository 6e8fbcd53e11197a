"""The speed rule across the chain: one speed per record from the dataset, the same for every method.

The feature baselines place their bands at the rule's speed, the order-domain windows of the networks are resampled
at it, and a change of rule changes both; the estimator finds the 1X on fleet records across the machines' speeds."""
import json

import numpy as np
import pytest

from lstm_pfd import speed
from lstm_pfd.config import DataConfig
from lstm_pfd.data import build_dataset, open_dataset
from lstm_pfd.train import ClassicalBaseline, OrderSpectrumBaseline


@pytest.fixture(scope='module')
def fleet_file(tmp_path_factory):
    "A small fleet (3 machines of different nominal speeds), 2-s records, no speed transients."
    cfg = DataConfig.preset('quick_fleet', {'dataset.records_per_class_severity': 3, 'transient.probability': 0.0})
    return build_dataset(cfg, tmp_path_factory.mktemp('speed') / 'fleet.h5', progress=False)


def test_estimator_recovers_speed_across_the_fleet(fleet_file):
    with open_dataset(fleet_file) as ds:
        w = ds.windows('train', speed_source='estimated')
        true, est = w.meta['speed_hz'], w.meta['known_speed_hz']
        nominal = sorted({m.speed_hz for m in ds.machines})
    assert nominal[-1] / nominal[0] > 1.2, "the fleet should span several speeds"
    err = np.abs(est / true - 1)
    assert err.max() < 0.005, f"worst relative error {err.max():.4f} (stated tolerance 0.5 % on steady records)"
    assert np.median(err) < 0.001


def test_estimator_says_when_it_cannot():
    fs = 4096.0
    t = np.arange(int(4 * fs)) / fs
    x = np.stack([np.cos(2 * np.pi * 30.0 * t), np.cos(2 * np.pi * 45.0 * t)])      # the second lies outside 25-35 Hz
    est = speed.estimate_speed(x, fs, (25.0, 35.0))
    assert abs(est[0] - 30.0) < 0.01 and np.isnan(est[1])
    with pytest.raises(ValueError, match='speed_range'): speed.estimate_speed(x, fs, (35.0, 25.0))


def test_tach_reading_is_seeded_by_record_and_shared_by_noisy_copies(fleet_file):
    with open_dataset(fleet_file) as ds:
        clean = ds.windows('test', speed_source='tach')
        again = ds.windows('test', speed_source='tach')
        noisy = ds.windows('test', speed_source='tach', snr_db=10.0)
    np.testing.assert_array_equal(clean.meta['known_speed_hz'], again.meta['known_speed_hz'])
    np.testing.assert_array_equal(clean.meta['known_speed_hz'], noisy.meta['known_speed_hz'])
    r = clean.meta['known_speed_hz'] / clean.meta['speed_hz'] - 1
    assert 0 < np.abs(r).max() < 5 * speed.TACH_ERROR


@pytest.mark.parametrize('baseline', [ClassicalBaseline, OrderSpectrumBaseline])
def test_baseline_features_follow_the_rule(fleet_file, baseline):
    with open_dataset(fleet_file) as ds:
        plain, oracle, tach = (ds.windows('val', speed_source=s) for s in (None, 'oracle', 'tach'))
    f_plain, f_oracle, f_tach = (baseline().features(w)[0] for w in (plain, oracle, tach))
    np.testing.assert_array_equal(f_plain, f_oracle)                  # no rule: the stored speed, i.e. the oracle
    assert not np.array_equal(f_oracle, f_tach), "features must change when the rule changes from oracle to tach"


def test_order_domain_windows_use_the_rule_speed(fleet_file):
    with open_dataset(fleet_file) as ds:
        tach = ds.windows('val', speed_source='tach')
        od = ds.windows('val', speed_source='tach', order_domain=True)
        raw = ds.windows('val')
        spr = ds.samples_per_rev
    np.testing.assert_array_equal(od.meta['known_speed_hz'], tach.meta['known_speed_hz'])
    np.testing.assert_array_equal(od.signals, speed.order_resample(raw.signals, raw.fs, tach.meta['known_speed_hz'], spr))
    assert od.signals.shape == raw.signals.shape and od.samples_per_rev == spr
    with pytest.raises(ValueError, match='order domain'): ClassicalBaseline().features(od)
    with pytest.raises(ValueError, match="speed rule other than 'none'"): OrderSpectrumBaseline().features(
        open_dataset(fleet_file).windows('val', speed_source='none'))


def test_experiment_gives_the_rule_to_baselines_and_networks(fleet_file, tmp_path):
    from lstm_pfd.experiments import ExperimentConfig, run_experiment, run_id
    def cfg(model, **data):
        kw = {'n_estimators': 10} if model == 'classical' else {}
        train = {'epochs': 1, 'batch_size': 16, 'threads': 1} if model != 'classical' else {}
        return ExperimentConfig.from_dict({'name': 'rule', 'data': {'path': str(fleet_file), 'track': 'new_machines', **data},
                                           'model': {'name': model, 'kwargs': kw}, 'train': train,
                                           'eval': {'conditions': ['clean'], 'xai_methods': []}})
    assert run_id(cfg('classical')) != run_id(cfg('classical', speed_source='tach'))
    seen = []
    def cache(name, condition, windows, featurize):       # the feature_cache hook sees the rule's windows
        seen.append((condition, windows.speed_source, windows.meta['known_speed_hz'].copy())); return featurize(windows)
    d = run_experiment(cfg('classical', speed_source='tach'), tmp_path, feature_cache=cache)
    assert json.loads((d / 'run.json').read_text())['status'] == 'done'
    assert [c for c, *_ in seen] == ['clean@tach', 'clean@tach'] and all(s == 'tach' for _, s, _ in seen)
    with open_dataset(fleet_file) as ds: want = ds.windows('test', track='new_machines', speed_source='tach').meta['known_speed_hz']
    np.testing.assert_array_equal(seen[1][2], want)
    d = run_experiment(cfg('compact', speed_source='tach', order_domain=True), tmp_path)
    assert json.loads((d / 'run.json').read_text())['status'] == 'done'


def test_shaft_records_count_their_speed_from_the_keyphasor(tmp_path):
    cfg = DataConfig.preset('quick_shaft', {'dataset.records_per_class_severity': 3})
    with open_dataset(build_dataset(cfg, tmp_path / 'shaft.h5', progress=False)) as ds:
        w = ds.windows('train', speed_source='estimated')
        kp = speed.keyphasor_speed(w.signals[:, w.channels.index('keyphasor')], ds.fs)
    np.testing.assert_array_equal(w.meta['known_speed_hz'], kp)        # the keyphasor, not the spectrum, where there is one
    err = np.abs(kp / w.meta['speed_hz'] - 1)
    assert np.median(err) < 0.002 and err.max() < 0.03, f"keyphasor speed error: median {np.median(err):.4f}, max {err.max():.4f}"
