"Dataset builds across executors, and the CLI's generate/import commands."
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import pytest

from lstm_pfd.config import ConfigError, DataConfig
from lstm_pfd.data import build_dataset, open_dataset, OnTheFlyDataset, DatasetError, import_recordings, record_plan

SMALL = DataConfig.preset('quick', {'dataset.records_per_class_severity': 3, 'signal.duration_s': 1.0,
                                    'dataset.batch_size': 7})
SCRIPT = Path(sys.executable).parent / 'lstm-pfd'


def _groups(path):
    with h5py.File(path) as f:
        out = {}
        for g in f:
            out[g] = {k: f[g][k][()] for k in ('signals', 'labels', 'seed', 'checksum', 'record_index')}
            out[g]['meta'] = {k: v[()] for k, v in f[g]['meta'].items()}
        return out, dict(f.attrs)


def _assert_same(a, b):
    (ga, aa), (gb, ab) = _groups(a), _groups(b)
    assert ga.keys() == gb.keys()
    for g in ga:
        for k in ('signals', 'labels', 'seed', 'checksum', 'record_index'):
            np.testing.assert_array_equal(ga[g][k], gb[g][k], err_msg=f'{g}/{k}')
        assert ga[g]['meta'].keys() == gb[g]['meta'].keys()
        for k in ga[g]['meta']:
            np.testing.assert_array_equal(ga[g]['meta'][k], gb[g]['meta'][k], err_msg=f'{g}/meta/{k}')
    assert aa['config_hash'] == ab['config_hash']


@pytest.fixture(scope='module')
def serial(tmp_path_factory):
    return build_dataset(SMALL, tmp_path_factory.mktemp('serial') / 'serial.h5', progress=False)


def test_process_pool_build_is_bit_identical(serial, tmp_path):
    with ProcessPoolExecutor(2) as ex:
        p = build_dataset(SMALL, tmp_path / 'pool.h5', executor=ex, progress=False)
    _assert_same(serial, p)
    with open_dataset(p, verify=True): pass       # labels, plan, column digests and checksums of a pool build


def test_dask_build_is_bit_identical(serial, tmp_path):
    distributed = pytest.importorskip('distributed')
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        p = build_dataset(SMALL, tmp_path / 'dask.h5', executor=client.get_executor(), progress=False)
    _assert_same(serial, p)


def test_on_the_fly_matches_every_split(serial):
    with open_dataset(serial) as ds:
        for split in ('train', 'val', 'test'):
            np.testing.assert_array_equal(OnTheFlyDataset(SMALL, split).windows(), ds.windows(split).windows())


def test_failed_build_leaves_nothing(tmp_path, monkeypatch):
    import lstm_pfd.store as store
    calls = {'n': 0}
    real = store._generate_task

    def flaky(*a):
        calls['n'] += 1
        if calls['n'] == 3: raise RuntimeError('worker died')
        return real(*a)
    monkeypatch.setattr(store, '_generate_task', flaky)
    with pytest.raises(RuntimeError, match='worker died'):
        build_dataset(SMALL, tmp_path / 'x.h5', progress=False)
    assert list(tmp_path.iterdir()) == []


def test_existing_file_kept_unless_overwrite(serial, tmp_path):
    target = tmp_path / 'keep.h5'
    target.write_bytes(b'precious')
    with pytest.raises(FileExistsError):
        build_dataset(SMALL, target, progress=False, overwrite=False)
    assert target.read_bytes() == b'precious'


def test_existing_target_refused_by_default(serial, tmp_path):
    target = tmp_path / 'notes.h5'
    target.write_bytes(b'unrelated notes')
    with pytest.raises(FileExistsError, match='overwrite=True'):
        build_dataset(SMALL, target, progress=False)                 # the default never replaces a file
    assert target.read_bytes() == b'unrelated notes'
    build_dataset(SMALL, target, progress=False, overwrite=True)
    _assert_same(serial, target)
    assert sorted(q.name for q in tmp_path.iterdir()) == ['notes.h5']


def test_output_folders_are_never_created(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        build_dataset(SMALL, tmp_path / 'a' / 'b' / 'x.h5', progress=False)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        import_recordings([np.zeros(20000)], ['healthy'], 10240, tmp_path / 'a' / 'x.h5', cfg=SMALL, record_s=1.0, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_import_overwrite(tmp_path):
    x = np.sin(np.arange(25000) / 10.0)
    p = import_recordings([x], ['healthy'], 10240, tmp_path / 'imp.h5', cfg=SMALL, record_s=1.0, progress=False)
    with pytest.raises(FileExistsError, match='overwrite=True'):
        import_recordings([x, x], ['healthy'] * 2, 10240, p, cfg=SMALL, record_s=1.0, progress=False)
    with open_dataset(p) as ds: assert len(ds['test']) == 2
    import_recordings([x, x], ['healthy'] * 2, 10240, p, cfg=SMALL, record_s=1.0, progress=False, overwrite=True)
    with open_dataset(p, verify=True) as ds: assert len(ds['test']) == 4


def test_every_split_has_a_column_digest(serial, tmp_path):
    with h5py.File(serial) as f:
        assert all(len(f[g].attrs['columns_sha256']) == 64 for g in f)
    old = tmp_path / 'old.h5'                          # files written before the digest existed still verify
    old.write_bytes(Path(serial).read_bytes())
    with h5py.File(old, 'r+') as f:
        for g in f: del f[g].attrs['columns_sha256']
    with open_dataset(old, verify=True) as ds: assert len(ds['train']) > 0


def test_record_plan_checks_the_budget():
    # one class fits (validate() checks that lower bound), all classes do not (record_plan counts them)
    with pytest.raises(ConfigError, match='limits.max_records'):
        record_plan(SMALL.override({'limits.max_records': 100}))
    with pytest.raises(ConfigError, match='limits.max_file_bytes'):
        record_plan(SMALL.override({'limits.max_file_bytes': 5 * 10 ** 6}))
    assert SMALL.override({'limits.max_records': 100}).hash() == SMALL.hash()


def test_incomplete_file_is_rejected(serial, tmp_path):
    p = tmp_path / 'incomplete.h5'
    p.write_bytes(Path(serial).read_bytes())
    with h5py.File(p, 'r+') as f: f.attrs['complete'] = False
    with pytest.raises(DatasetError, match='incomplete'):
        open_dataset(p)


def test_cli_generate_and_import(tmp_path):
    out = tmp_path / 'cli.h5'
    r = subprocess.run([str(SCRIPT), 'generate', '--preset', 'quick', '--set', 'dataset.records_per_class_severity=3',
                        '--set', 'signal.duration_s=1.0', '--out', str(out), '--workers', '2', '--no-progress'],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with open_dataset(out, verify=True) as ds:
        assert sum(len(ds[s]) for s in ('train', 'val', 'test')) == 11 * 4 * 3   # 3 per slot: the least that fills every split
    rng = np.random.default_rng(0)
    for i in range(3): np.save(tmp_path / f'rec{i}.npy', rng.standard_normal(30000).astype(np.float32))
    (tmp_path / 'labels.csv').write_text('file,label\nrec0.npy,healthy\nrec1.npy,imbalance\nrec2.npy,oil_whirl\n')
    r = subprocess.run([str(SCRIPT), 'import', str(tmp_path / 'labels.csv'), '--fs', '12000', '--record-s', '1.0',
                        '--preset', 'quick', '--out', str(tmp_path / 'ext.h5'), '--no-progress'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with open_dataset(tmp_path / 'ext.h5', verify=True) as ds:
        assert list(ds['test'].labels) == [0, 0, 2, 2, 7, 7]
    r = subprocess.run([str(SCRIPT), 'generate', '--preset', 'quick', '--out', str(tmp_path / 'nodir' / 'x.h5')],
                       capture_output=True, text=True)
    assert r.returncode == 2 and 'does not exist' in r.stderr and 'Traceback' not in r.stderr


def test_import_is_reproducible_with_groups_seeds_and_snr_copies(tmp_path):
    "Two imports with the same arguments write the same records, seeds, noisy copies and group columns."
    rng = np.random.default_rng(0)
    recs = [rng.standard_normal(25000).astype(np.float32) for _ in range(6)]
    kw = dict(cfg=SMALL, record_s=1.0, progress=False, groups=['d1', 'd1', 'd2', 'd2', 'd3', 'd3'], split_by='group',
              test_groups=['d3'], val_groups=['d2'], snr_db=(10,), seed=5)
    a = import_recordings(recs, ['rub', 'whip'] * 3, 10240, tmp_path / 'a.h5', **kw)
    b = import_recordings(recs, ['rub', 'whip'] * 3, 10240, tmp_path / 'b.h5', **kw)
    _assert_same(a, b)
    with open_dataset(a, verify=True) as ds:
        assert ds.fault_names == ['rub', 'whip'] and ds.file.attrs['import_seed'] == 5
        assert set(ds['test'].meta['group'].astype(str)) == {'d3'} and set(ds['val'].meta['group'].astype(str)) == {'d2'}
        assert (ds['test_snr10'].seed == ds['test'].seed).all() and (ds['test'].seed >= 0).all()


def _three_channels(real):
    "Test-only multi-channel generator: the accelerometer record plus two derived channels in other units."
    def gen(cfg, labels, severities, seeds, machines=None, **kw):
        X, meta = real(cfg, labels, severities, seeds, machines=machines, **kw)
        Xc = np.stack([X, 50.0 * X[:, ::-1], 1e-3 * np.roll(X, 7, axis=1)], 1)
        return np.ascontiguousarray(Xc, dtype=np.float32), dict(meta, channels=['accel', 'x', 'y'], units=['m/s^2', 'um', 'um'])
    return gen


def test_multi_channel_file_round_trip(serial, tmp_path, monkeypatch):
    "A generator giving [n, C, N] records builds a [n, C, N] file: names, units, per-record checksums, channel selection, SNR copies."
    from lstm_pfd import data, store, windows
    monkeypatch.setattr(store, 'generate_batch', _three_channels(store.generate_batch))       # the build's records
    monkeypatch.setattr(windows, 'generate_batch', _three_channels(windows.generate_batch))   # on-the-fly records
    p = build_dataset(SMALL, tmp_path / 'mc.h5', progress=False)
    N, L = SMALL.signal.n_samples, SMALL.window_len
    with open_dataset(p, verify=True) as ds, open_dataset(serial) as one:
        assert (ds.channels, ds.units, one.channels) == (['accel', 'x', 'y'], ['m/s^2', 'um', 'um'], None)
        t, t1 = ds['train'], one['train']
        assert t.signals.shape == (len(t1), 3, N) and t1.signals.shape == (len(t1), N)
        np.testing.assert_array_equal(t.load()[:, 0], t1.load())            # channel 0 is the single-channel record
        np.testing.assert_array_equal(t.load([4, 1])[:, 1], 50 * t1.load([4, 1])[:, ::-1])
        assert t.checksums[2].decode() == data.checksum(t.signals[2]) != t1.checksums[2].decode()   # one digest over all channels
        wd, w1 = ds.windows('train'), one.windows('train')
        assert wd.windows().shape == (len(w1), 3, L) and w1.windows().shape == (len(w1), 1, L)
        np.testing.assert_array_equal(wd.windows()[:, :1], w1.windows())
        assert tuple(wd[5][0].shape) == (3, L) and tuple(w1[5][0].shape) == (1, L)
        sel = ds.windows('train', channels=('y', 'x'))
        assert sel.channels == ['y', 'x']
        np.testing.assert_array_equal(sel.windows(), wd.windows()[:, [2, 1]])
        with pytest.raises(KeyError, match=r"the file holds: \['accel', 'x', 'y'\]"):
            ds.windows('train', channels=['z'])
        with pytest.raises(KeyError, match='one unnamed channel'):
            one.windows('train', channels=['x'])
        for snr in SMALL.dataset.snr_db:         # noisy copies: every channel at snr relative to its own RMS
            clean, noisy = ds['test'].load(), ds.table('test', snr_db=snr).load()
            got = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2, -1) / np.mean((noisy - clean.astype(np.float64)) ** 2, -1))
            assert got.shape == (len(clean), 3) and np.abs(got - snr).max() < 0.5, (snr, got.min(), got.max())
            np.testing.assert_array_equal(noisy[:, 0], one.table('test', snr_db=snr).load())
        otf = data.OnTheFlyDataset(SMALL, 'val')                           # on-the-fly: the same [C, L] windows
        assert otf.channels == ['accel', 'x', 'y'] and otf.units == ['m/s^2', 'um', 'um']
        np.testing.assert_array_equal(otf.windows(), ds.windows('val').windows())


def test_multi_channel_file_shape_is_checked(tmp_path, monkeypatch):
    "A file whose channels attribute disagrees with its signals is refused, naming the expected shape."
    import shutil
    from lstm_pfd import store
    cfg = DataConfig.preset('quick', {'dataset.records_per_class_severity': 1, 'signal.duration_s': 0.5, 'dataset.snr_db': []})
    monkeypatch.setattr(store, 'generate_batch', _three_channels(store.generate_batch))
    p = build_dataset(cfg, tmp_path / 'mc.h5', progress=False)
    q = tmp_path / 'edited.h5'; shutil.copy(p, q)
    with h5py.File(q, 'r+') as f: f.attrs['channels'], f.attrs['units'] = ['x', 'y'], ['um', 'um']
    with open_dataset(q) as ds, pytest.raises(DatasetError, match=r'expected \[records, 2 channels, '):
        ds['train']
    with h5py.File(q, 'r+') as f: f.attrs['channels'] = ['x', 'x', 'y']
    with pytest.raises(DatasetError, match='distinct'):
        open_dataset(q)


@pytest.mark.parametrize('channels', [None, 3])
def test_windows_of_rows_read_only_those_rows(channels):
    "windows(rows) allocates in proportion to the rows asked for, not to the split (tracemalloc counts numpy's buffers)."
    import tracemalloc
    from lstm_pfd.data import WindowDataset
    n, N, L = 200, 8192, 1024                                       # 200 records, 8 windows each: 6.5 MB (x3 with channels)
    shape = (n, N) if channels is None else (n, channels, N)
    sig = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    wd = WindowDataset(sig, np.zeros(n), np.arange(n), window_len=L, normalize='zscore')
    rows = [5, 1599, 0, 800]
    one_window = L * 4 * (channels or 1)
    tracemalloc.start()
    try:
        got = wd.windows(rows)
        peak = tracemalloc.get_traced_memory()[1]
    finally: tracemalloc.stop()
    assert peak < 40 * one_window + (64 << 10), f'windows(4 rows) allocated {peak} bytes; the split holds {sig.nbytes}'
    expect = np.stack([sig[r // 8, ..., (r % 8) * L:(r % 8 + 1) * L] for r in rows])
    expect = (expect - expect.mean(-1, keepdims=True)) / expect.std(-1, keepdims=True)
    np.testing.assert_allclose(got[:, 0] if channels is None else got, expect, rtol=1e-4, atol=1e-4)
