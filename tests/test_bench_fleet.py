"""The fleet benchmark runner (benchmarks/bench_fleet.py) end to end on the small `quick_fleet` dataset."""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from lstm_pfd.data import build_dataset, open_dataset
from lstm_pfd.experiments import leaderboard, runs

ROOT = Path(__file__).resolve().parents[1]


def _load_bench():
    spec = importlib.util.spec_from_file_location('bench_fleet', ROOT / 'benchmarks' / 'bench_fleet.py')
    mod = importlib.util.module_from_spec(spec); sys.modules['bench_fleet'] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope='module')
def quick_file(tmp_path_factory):
    p = tmp_path_factory.mktemp('fleet') / 'quick_fleet.h5'
    build_dataset('quick_fleet', p, progress=False)
    return p


def test_runs_resume_and_rank(quick_file, tmp_path):
    bench = _load_bench()
    root, scratch = tmp_path / 'runs', tmp_path / 'scratch'
    train = dict(bench.TRAIN, epochs=1, patience=1)
    msgs = [bench.run_one(str(quick_file), str(root), str(scratch), t, m, s, train)
            for t in ('iid', 'new_machines') for m in ('compact', 'classical', 'order_spectrum') for s in (0, 1)]
    assert not any('FAILED' in m for m in msgs), msgs
    df = runs(root, status='done')
    assert len(df) == 12 and set(df['data.track']) == {'iid', 'new_machines'}
    assert {'clean.record_acc', 'snr5.record_acc', 'clean.window_acc', 'clean.macro_f1'} <= set(df.columns)
    # the machine split holds: no new_machines test record comes from a machine of the training side
    sel = (df['data.track'] == 'new_machines') & (df['model.name'] == 'compact')
    m = json.loads((Path(df[sel]['path'].iloc[0]) / 'metrics.json').read_text())
    with open_dataset(quick_file) as ds:
        train_machines = set(ds.table('train', track='new_machines').meta['machine_id'])
        t = ds.table('test', track='new_machines'); machine = dict(zip(t.record_index, t.meta['machine_id']))
    assert train_machines and not {machine[r] for r in m['records']['record_ids']} & train_machines
    assert list(m['conditions']) == ['clean', 'snr5']                     # shift tracks: clean and 5 dB for the networks
    for cond in ('clean', 'snr5'):
        c = m['conditions'][cond]
        assert len(c['record_pred']) == len(m['records']['labels']) == sum(map(sum, c['record']['confusion']))
    # the features of a record are computed once per condition and reused by the other seed and track
    assert len(list(scratch.glob('features/*/*/order_spectrum-clean.npz'))) == 1
    # a finished run is not repeated
    again = bench.run_one(str(quick_file), str(root), str(scratch), 'iid', 'classical', 0, train)
    assert 'skipped' in again
    lb = leaderboard(df[df['data.track'] == 'iid'], by=['model'])
    assert set(lb.table['model.name']) == {'compact', 'classical', 'order_spectrum'} and (lb.table['n'] == 2).all()
    assert len(lb.mcnemar) == 2
    _, tabs = bench.summary_tables(root)
    assert set(tabs) == {'iid', 'new_machines'}
    bench.figure('iid', tabs['iid'], df, tmp_path / 'iid.png')
    assert (tmp_path / 'iid.png').stat().st_size > 1000


def test_cached_features_match_direct(quick_file, tmp_path):
    bench = _load_bench()
    from lstm_pfd.train import OrderSpectrumBaseline
    with open_dataset(quick_file) as ds:
        w = ds.windows('val')
        raw = OrderSpectrumBaseline().features
        F1, y1, r1 = bench.cached_features(tmp_path, 'o', 'clean', bench._subset(w, np.arange(0, len(w.record_labels), 2)), raw)
        F, y, r = bench.cached_features(tmp_path, 'o', 'clean', w, raw)        # half from the cache, half computed
        F0, y0, r0 = raw(w)
    np.testing.assert_allclose(F, F0, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(y, y0); np.testing.assert_array_equal(r, r0)
    assert len(F1) == len(range(0, len(w.record_labels), 2)) * w.windows_per_record


def _load_shaft_bench():
    _load_bench()                                     # bench_shaft_fleet imports bench_fleet's feature cache
    spec = importlib.util.spec_from_file_location('bench_shaft_fleet', ROOT / 'benchmarks' / 'bench_shaft_fleet.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


def test_shaft_bench_feature_sets_channels_and_not_run_rows(tmp_path):
    "The shaft benchmark on `quick_shaft`: classical feature sets on a 4-channel file, pooled accuracy from the confusion, rows not run named."
    bench = _load_shaft_bench()
    p = tmp_path / 'quick_shaft.h5'; build_dataset('quick_shaft', p, progress=False)
    root, scratch = tmp_path / 'runs', tmp_path / 'scratch'
    bench.sweep(str(p), str(root), str(scratch), ['iid', 'new_machines'], [], [0])          # classical only
    res = bench.collect(str(p), str(root), ['iid', 'new_machines'], ['compact'], [0])
    done = [r for r in res['rows'] if r['status'] == 'done']
    assert {r['method'] for r in done} == {'classical[accel]', 'classical[orbit]', 'classical[both]'} and len(done) == 6
    with open_dataset(p) as ds: n_test = {'iid': len(ds['test']), 'new_machines': len(ds.table('test', track='new_machines'))}
    for r in done:
        cm = np.asarray(r['confusion'])
        assert r['n_records'] == n_test[r['track']] == cm.sum()
        assert r['acc'] == np.trace(cm) / cm.sum() and r['ci_low'] <= r['acc'] <= r['ci_high']
    # the networks were asked for but not run: their rows say so, with a reason, and carry no numbers
    missing = [r for r in res['rows'] if r['status'] != 'done']
    assert {r['method'] for r in missing} == {'compact[accel]', 'compact[probes]', 'compact[all]'}
    assert all(r['reason'] and 'acc' not in r for r in missing)
    # the networks see the channels named in data.channels; the classical baseline always gets the whole record
    cfg = bench.experiment(p, 'iid', 'compact', 'probes', 0)
    assert cfg.data.channels == ('x', 'y', 'keyphasor') and bench.experiment(p, 'iid', 'classical', 'orbit', 0).data.channels is None
    fs = bench.experiment(p, 'iid', 'spectral_fs', 'all', 0)          # the probe-pair front end: spectral with its full spectrum
    assert (fs.model.name, dict(fs.model.kwargs), fs.data.channels) == ('spectral', {'full_spectrum': True}, None)
    assert [m for m, *_ in bench.methods(['spectral_fs'])][3:] == ['spectral_fs[probes]', 'spectral_fs[all]']   # no accelerometer-only row
    bench.figure(res, tmp_path / 'f.png'); assert (tmp_path / 'f.png').stat().st_size > 1000


def test_speed_rule_goes_through_the_experiment_config(quick_file, tmp_path):
    "--speed-source/--order-domain reach each run's data config (order domain for the networks only) and its run id; bad values are refused."
    import subprocess
    from lstm_pfd.experiments import run_id
    from lstm_pfd.speed import SPEED_SOURCES
    bench = _load_bench()
    train = dict(bench.TRAIN, epochs=1, patience=1)
    rule = {'speed_source': 'tach', 'order_domain': True}
    with open_dataset(quick_file) as ds:
        plain, net, feat = (bench.experiment(ds, 'iid', m, 0, train, s) for m, s in (('compact', None), ('compact', rule), ('classical', rule)))
        assert run_id(bench.experiment(ds, 'iid', 'compact', 0, train, {'speed_source': None, 'order_domain': False})) == run_id(plain)
    assert (plain.data.speed_source, plain.data.order_domain) == (None, False)
    assert (net.data.speed_source, net.data.order_domain) == ('tach', True) and run_id(net) != run_id(plain)
    assert (feat.data.speed_source, feat.data.order_domain) == ('tach', False)      # features: time-domain windows, the same speeds
    msg = bench.run_one(str(quick_file), str(tmp_path / 'runs'), str(tmp_path / 'scratch'), 'iid', 'classical', 0, train, rule)
    assert 'FAILED' not in msg
    df = runs(tmp_path / 'runs', status='done')
    assert list(df['data.speed_source']) == ['tach']
    r = subprocess.run([sys.executable, str(ROOT / 'benchmarks' / 'bench_fleet.py'), '--data', str(quick_file), '--speed-source', 'exact'],
                       capture_output=True, text=True)
    assert r.returncode == 2 and all(s in r.stderr for s in SPEED_SOURCES), r.stderr
    r = subprocess.run([sys.executable, str(ROOT / 'benchmarks' / 'bench_fleet.py'), '--data', str(quick_file), '--order-domain',
                        '--root', str(tmp_path / 'r2')], capture_output=True, text=True)
    assert r.returncode == 2 and '--order-domain needs a --speed-source' in r.stderr, r.stderr
