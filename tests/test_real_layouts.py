"Real recording layouts through the command line: folders in the layouts of the CWRU (array names that differ per file, 12 and 48 kHz mixed), MFPT (a struct whose fields change order, two rates and lengths) and Paderborn (a struct array of channels; artificial vs real damage) bearing data, each imported in one command, and no bandwidth shortcut left in a mixed-rate import."
import csv
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from scipy.signal import resample_poly

SCRIPT = Path(sys.executable).parent / 'lstm-pfd'  # the installed console script
ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}
BASE = 96_000      # the "analogue" signal's rate: every file is acquired from it through an anti-aliasing filter, like a DAQ
SECONDS = 4.0
# class -> (native rate, first file number, tone of the drive-end signal, Hz); tones below 3 kHz, like the bearing signatures
LAYOUT = {'normal': (48_000, 97, 600.0), 'inner': (12_000, 105, 1620.0), 'ball': (12_000, 118, 2380.0), 'outer': (12_000, 130, 2950.0)}
LOADS = (0, 1, 2, 3)


def run(*args):
    assert SCRIPT.exists(), f'console script not installed at {SCRIPT}'
    return subprocess.run([str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=ENV)


def one_line_error(r, *needles):
    "Exit status 2, one error line on stderr (after any warnings) naming every needle, no traceback."
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [l for l in r.stderr.strip().splitlines() if not l.startswith('WARNING ')]
    assert len(lines) == 1 and lines[0].startswith('lstm-pfd import: error: ') and 'Traceback' not in r.stderr, r.stderr
    for n in needles: assert n in lines[0], (n, lines[0])


def _acquire(tone: float, rate: int, seed: int) -> np.ndarray:
    "A tone in white noise at BASE, acquired at `rate` (anti-aliased decimation, as a DAQ does)."
    rng = np.random.default_rng(seed)
    t = np.arange(int(SECONDS * BASE)) / BASE
    x = np.sin(2 * np.pi * tone * t) + 0.5 * rng.standard_normal(len(t))
    return resample_poly(x, 1, BASE // rate)


def _cwru_folder(root: Path) -> Path:
    "One .mat file per class and load, named and laid out like the CWRU files (X<nnn>_DE_time, _FE_time, RPM); the labels CSV."
    rows = []
    for c, (rate, first, tone) in LAYOUT.items():
        for load in LOADS:
            num = first + load
            de = _acquire(tone, rate, seed=num)
            fe = _acquire(4 * tone / 3, rate, seed=1000 + num)          # the fan-end sensor: another tone, must not be read
            scipy.io.savemat(root / f'{num}.mat', {f'X{num:03d}_DE_time': de[:, None], f'X{num:03d}_FE_time': fe[:, None],
                                                   f'X{num:03d}RPM': np.array([[1797 - 20 * load]])})
            rows.append({'file': f'{num}.mat', 'label': c, 'fs': rate, 'load': load, 'speed_hz': round((1797 - 20 * load) / 60, 3)})
    with open(root / 'labels.csv', 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0])); w.writeheader(); w.writerows(rows)
    return root / 'labels.csv'


@pytest.fixture(scope='module')
def cwru(tmp_path_factory) -> Path:
    return _cwru_folder(tmp_path_factory.mktemp('cwru'))


def _import(labels: Path, out: Path, *extra):
    return run('import', labels, '--key', '*_DE_time', '--group-column', 'load', '--split-by', 'group', '--test-groups', '2,3',
               '--val-groups', '1', '--record-s', '1', *extra, '--out', out, '--no-progress')


def test_cwru_layout_imports_in_one_command(cwru, tmp_path):
    from lstm_pfd.config import IMPORT_PRESET, DataConfig
    from lstm_pfd.data import open_dataset
    r = _import(cwru, tmp_path / 'cwru.h5')
    assert r.returncode == 0, r.stderr
    assert '2 native sampling rates (12000 Hz: 12, 48000 Hz: 4)' in r.stderr        # warned without -v
    common = min(12_000.0, DataConfig.preset(IMPORT_PRESET).signal.fs)
    with open_dataset(tmp_path / 'cwru.h5') as ds:
        assert ds.fs == common and list(ds.fault_names) == list(LAYOUT)
        tr, te = ds['train'], ds['test']
        assert len(tr) == len(LAYOUT) * 1 * int(SECONDS) and len(te) == len(LAYOUT) * 2 * int(SECONDS)
        assert sorted(set(te.meta['original_fs'].tolist())) == [12_000.0, 48_000.0]
        assert sorted(set(tr.meta['speed_hz'].round(3).tolist())) == [round(1797 / 60, 3)]
        X, y = te.signals[:], te.labels[:]
    peak = np.argmax(np.abs(np.fft.rfft(X, axis=1)), axis=1) * ds.fs / X.shape[1]     # the drive-end tone, not the fan end's
    assert np.allclose(peak, np.array([LAYOUT[c][2] for c in LAYOUT])[y], atol=2.0)


def test_cwru_layout_refusals_name_the_file_flags_and_columns(cwru, tmp_path):
    root = cwru.parent
    one_line_error(run('import', cwru, '--key', '*_BA_time', '--group-column', 'load', '--out', tmp_path / 'a.h5', '--no-progress'),
                   '97.mat', '--key', 'X097_DE_time', 'X097_FE_time')
    r = run('import', cwru, '--group-column', 'load', '--out', tmp_path / 'a.h5', '--no-progress')   # several arrays, no --key
    one_line_error(r, '97.mat', 'pass --key')
    assert 'key=' not in r.stderr                                                    # CLI flags, not Python arguments
    one_line_error(run('import', cwru, '--key', '*_DE_time', '--out', tmp_path / 'a.h5', '--no-progress'), "['load']", '--meta-columns')
    import shutil
    shutil.copy(root / '105.mat', tmp_path / '105.mat')
    scipy.io.savemat(tmp_path / '99.mat', {'X098_DE_time': np.zeros((4000, 1)), 'X099_DE_time': np.zeros((4000, 1))})  # two recordings' arrays in one file
    (tmp_path / 'two.csv').write_text('file,label,fs\n99.mat,normal,48000\n105.mat,inner,12000\n')
    one_line_error(run('import', tmp_path / 'two.csv', '--key', '*_DE_time', '--out', tmp_path / 'a.h5', '--no-progress'),
                   '99.mat', "['X098_DE_time', 'X099_DE_time']", '--key')
    (tmp_path / 'keyed.csv').write_text('file,label,fs,key\n99.mat,normal,48000,X099_DE_time\n105.mat,inner,12000,\n')
    r = run('import', tmp_path / 'keyed.csv', '--key', '*_DE_time', '--record-s', '0.05', '--out', tmp_path / 'k.h5', '--no-progress')
    assert r.returncode == 0, r.stderr                                              # a 'key' cell overrides --key for its row


def _band_energy(X: np.ndarray, fs: float) -> np.ndarray:
    "Log energy of each record above 0.4 fs: what tells a record's bandwidth."
    f = np.fft.rfftfreq(X.shape[1], 1 / fs)
    return np.log(np.sum(np.abs(np.fft.rfft(X, axis=1))[:, f > 0.4 * fs] ** 2, axis=1))


def _threshold_accuracy(f_tr, y_tr, f_te, y_te) -> float:
    "Balanced accuracy on the test records of the best threshold (either direction) on one feature, chosen on the training records."
    v = np.unique(f_tr)
    cuts = (v[1:] + v[:-1]) / 2                                            # midway between neighbouring training values
    best = max(((c, s) for c in cuts for s in (1, -1)),
               key=lambda cs: np.mean([np.mean((cs[1] * (f_tr[y_tr == k] - cs[0]) > 0) == k) for k in (0, 1)]))
    pred = best[1] * (f_te - best[0]) > 0
    return float(np.mean([np.mean(pred[y_te == k] == k) for k in (0, 1)]))


def _bandwidth_classifier(path: Path) -> float:
    "How well bandwidth alone tells the 48-kHz class (normal) from the 12-kHz ones, trained on loads 0-1, tested on loads 2-3."
    from lstm_pfd.data import open_dataset
    with open_dataset(path) as ds:
        parts = [(_band_energy(ds[s].signals[:], ds.fs), (ds[s].meta['original_fs'] == 48_000).astype(int)) for s in ('train', 'val', 'test')]
    f_tr, y_tr = np.concatenate([parts[0][0], parts[1][0]]), np.concatenate([parts[0][1], parts[1][1]])
    return _threshold_accuracy(f_tr, y_tr, *parts[2])


def test_mixed_rate_import_leaves_no_bandwidth_shortcut(cwru, tmp_path):
    r = _import(cwru, tmp_path / 'common.h5')
    assert r.returncode == 0, r.stderr
    assert _bandwidth_classifier(tmp_path / 'common.h5') <= 0.75       # chance is 0.5
    up = _import(cwru, tmp_path / 'up.h5', '--target-fs', '20480')      # asked to upsample: the shortcut is there, and warned
    assert up.returncode == 0, up.stderr
    assert 'bandwidth shortcut' in up.stderr
    assert _bandwidth_classifier(tmp_path / 'up.h5') >= 0.95


def test_dropped_seconds_and_untrained_classes_are_warned_without_verbose(cwru, tmp_path):
    rows = cwru.read_text().splitlines()
    keep = [r for r in rows[1:] if not (r.split(',')[1] == 'outer' and r.split(',')[3] in ('0', '1'))]   # outer: loads 2-3 only
    (cwru.parent / 'no_outer_train.csv').write_text('\n'.join([rows[0], *keep]) + '\n')
    r = run('import', cwru.parent / 'no_outer_train.csv', '--key', '*_DE_time', '--group-column', 'load', '--split-by', 'group',
            '--test-groups', '2,3', '--record-s', '1.5', '--out', tmp_path / 'd.h5', '--no-progress')
    assert r.returncode == 0, r.stderr
    n = len(keep)                                          # every 4-s file gives two 1.5-s records and loses 1 s
    assert f'{n} of {n} recordings are not a whole number of 1.5-s records: {n:g} s of signal dropped in all' in r.stderr
    assert "classes ['outer'] have no recording in the train split" in r.stderr


def test_cwru_layout_cross_validates_by_load_from_the_command_line(cwru, tmp_path):
    import json
    h5 = tmp_path / 'cv.h5'
    r = run('import', cwru, '--key', '*_DE_time', '--group-column', 'load', '--split-by', 'group', '--test-groups', '3',
            '--record-s', '1', '--out', h5, '--no-progress')                       # no validation group
    assert r.returncode == 0, r.stderr
    r = run('train', h5, '--epochs', 1, '--out', tmp_path / 'm.pt', '--no-progress')
    assert r.returncode == 0, r.stderr
    held = [l for l in r.stdout.splitlines() if 'no validation records' in l]
    # 3 training loads x 4 classes x 4 records; 0.2 of each class and load's 4 records rounds to 1
    assert len(held) == 1 and 'holding out 12 of 48 training records' in held[0], r.stdout
    r = run('cv', h5, '--model', 'compact', '--baseline', '--epochs', 1, '--out', tmp_path / 'cv.json', '--no-progress')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    folds = [l.split() for l in lines if l.split() and l.split()[0].isdigit()]
    assert [f[1] for f in folds] == ['0', '1', '2', '3'] and all(f[2] == str(len(LAYOUT) * int(SECONDS)) for f in folds), r.stdout
    assert any(l.split()[:2] == ['mean', str(len(LOADS) * len(LAYOUT) * int(SECONDS))] for l in lines), r.stdout
    assert sum('95 % CI' in l and 'Wilson' in l for l in lines) == 2, r.stdout          # one per method
    out = json.loads((tmp_path / 'cv.json').read_text())
    assert [f['held_out'] for f in out['folds']] == [['0'], ['1'], ['2'], ['3']]
    for m in ('compact', 'baseline'):
        accs = [f[m] for f in out['folds']]
        assert all(0 <= a <= 1 for a in accs) and out['summary'][m]['mean'] == pytest.approx(sum(accs) / 4)
        lo, hi = out['summary'][m]['ci95']
        assert lo <= out['summary'][m]['pooled'] <= hi
    assert out['summary']['baseline']['mean'] > 0.9        # tones far apart: the features separate every load
    r = run('cv', h5, '--folds', 2, '--epochs', 1, '--no-progress')
    assert r.returncode == 0 and [l.split()[1] for l in r.stdout.splitlines() if l.split() and l.split()[0].isdigit()] == ['0,2', '1,3'], r.stdout


def test_cv_refuses_a_dataset_with_one_group(cwru, tmp_path):
    rows = [l for l in cwru.read_text().splitlines()]
    one = tmp_path / 'one.csv'
    one.write_text('\n'.join([rows[0]] + [l for l in rows[1:] if l.split(',')[3] == '0']) + '\n')
    import shutil
    for l in rows[1:]: shutil.copy(cwru.parent / l.split(',')[0], tmp_path)      # the CSV's files beside it
    h5 = tmp_path / 'one.h5'
    r = run('import', one, '--key', '*_DE_time', '--group-column', 'load', '--split', 'train', '--record-s', '1', '--out', h5, '--no-progress')
    assert r.returncode == 0, r.stderr
    r = run('cv', h5, '--epochs', 1, '--no-progress')
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr
    err = [l for l in r.stderr.strip().splitlines() if not l.startswith('WARNING ')]
    assert len(err) == 1 and err[0].startswith('lstm-pfd cv: error: ') and "one group ('0')" in err[0] and '--group-column' in err[0], r.stderr
    r = run('cv', h5.with_name('missing.h5'), '--no-progress')
    assert r.returncode == 2


# --- MFPT: four numbered folders, a struct 'bearing' whose fields are in another order in the fault files, two rates and lengths
MFPT_TONE = {'normal': 700.0, 'outer_race': 1700.0, 'inner_race': 2700.0}
MFPT_LOADS = {'outer_race': (25, 50, 100, 150, 200, 250, 300), 'inner_race': (0, 50, 100, 150, 200, 250, 300)}  # lbs, parts 3 and 4
MFPT_SHRINK = 12        # a twelfth of the real lengths: 0.5 s at 97,656 Hz and 0.25 s at 48,828 Hz, whole numbers of samples


def _mfpt_folder(root: Path) -> Path:
    "The 20 MFPT files, shortened, in their folders: a tone per class in noise, acquired at each part's rate; fields in each part's order."
    parts = {'1 - Three Baseline Conditions': ('baseline', 'normal', 3, 97_656, 6.0),
             '2 - Three Outer Race Fault Conditions': ('OuterRaceFault', 'outer_race', 3, 97_656, 6.0),
             '3 - Seven More Outer Race Fault Conditions': ('OuterRaceFault_vload', 'outer_race', 7, 48_828, 3.0),
             '4 - Seven Inner Race Fault Conditions': ('InnerRaceFault_vload', 'inner_race', 7, 48_828, 3.0)}
    for part, (stem, c, n, rate, secs) in parts.items():
        (root / part).mkdir(parents=True)
        for i in range(1, n + 1):
            rng = np.random.default_rng(100 * len(stem) + i)
            m = int(rate * secs / MFPT_SHRINK)
            gs = (np.sin(2 * np.pi * MFPT_TONE[c] * np.arange(m) / rate) + 0.5 * rng.standard_normal(m))[:, None]
            load = 270 if rate > 90_000 else MFPT_LOADS[c][i - 1]
            fields = ({'sr': rate, 'gs': gs, 'load': load, 'rate': 25} if c == 'normal' else {'rate': 25, 'load': load, 'gs': gs, 'sr': rate})
            scipy.io.savemat(root / part / f'{stem}_{i}.mat', {'bearing': fields})
    (root / '5 - Analyses').mkdir()                                         # not read
    return root


def test_mfpt_layout_imports_in_one_command(tmp_path):
    from lstm_pfd.config import IMPORT_PRESET, DataConfig
    from lstm_pfd.data import open_dataset
    from lstm_pfd.datasets import mfpt_labels_csv
    root = _mfpt_folder(tmp_path / 'MFPT Fault Data Sets')
    labels = mfpt_labels_csv(root, tmp_path / 'mfpt.csv')                # the CSV beside the folder: paths with spaces, relative
    r = run('import', labels, '--meta-columns', 'load_lbs', '--split', '0.5,0.2,0.3', '--record-s', '0.05', '--out', tmp_path / 'm.h5', '--no-progress')
    assert r.returncode == 0, r.stderr
    assert '2 native sampling rates (48828 Hz: 14, 97656 Hz: 6)' in r.stderr
    with open_dataset(tmp_path / 'm.h5') as ds:
        assert ds.fs == min(48_828.0, DataConfig.preset(IMPORT_PRESET).signal.fs) and list(ds.fault_names) == list(MFPT_TONE)
        parts = [ds[s] for s in ('train', 'val', 'test')]
        X, y = np.concatenate([p.signals[:] for p in parts]), np.concatenate([p.labels[:] for p in parts])
        ofs = np.concatenate([p.meta['original_fs'] for p in parts])
        loads = np.concatenate([p.meta['load_lbs'] for p in parts])
    per_s = int(round(1 / 0.05))                                           # records per second of signal
    assert np.bincount(y).tolist() == [int(s / MFPT_SHRINK * per_s) for s in (18, 39, 21)]
    assert sorted(set(ofs[y == 2].tolist())) == [48_828.0] and sorted(set(ofs[y == 0].tolist())) == [97_656.0]
    assert sorted(set(loads[y == 0].tolist())) == [270.0] and 0.0 in loads[y == 2]
    peak = np.argmax(np.abs(np.fft.rfft(X, axis=1)), axis=1) * ds.fs / X.shape[1]
    assert np.allclose(peak, np.array(list(MFPT_TONE.values()))[y], atol=20.1)   # the signal gs, never another field


def test_mfpt_reader_refusals_name_the_path(tmp_path):
    from lstm_pfd.datasets import mfpt_recordings
    with pytest.raises(FileNotFoundError, match='no folder at'): mfpt_recordings(tmp_path / 'missing')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='holds none of the MFPT'): mfpt_recordings(tmp_path / 'empty')
    bad = tmp_path / 'bad'
    (bad / 'a').mkdir(parents=True); (bad / 'b').mkdir()
    scipy.io.savemat(bad / 'a' / 'baseline_1.mat', {'x': np.zeros(4)})
    with pytest.raises(ValueError, match="holds no 'bearing'") as e: mfpt_recordings(bad)
    assert str(bad / 'a' / 'baseline_1.mat') in str(e.value)
    scipy.io.savemat(bad / 'b' / 'baseline_1.mat', {'x': np.zeros(4)})
    with pytest.raises(ValueError, match='twice') as e: mfpt_recordings(bad)     # two copies: which one is meant?
    assert str(bad / 'a' / 'baseline_1.mat') in str(e.value) and str(bad / 'b' / 'baseline_1.mat') in str(e.value)


# --- Paderborn: a folder per bearing code, a struct named like the file whose struct array Y holds seven channels at three rates
PB_TONE = {'normal': 600.0, 'outer_race': 1600.0, 'inner_race': 2600.0, 'combined': 3600.0}
PB_Y = (('force', 4000), ('phase_current_1', 64000), ('phase_current_2', 64000), ('speed', 4000),
        ('temp_2_bearing_module', 1), ('torque', 4000), ('vibration_1', 64000))
PB_CLASS = {'K001': 'normal', 'K002': 'normal', 'K003': 'normal', 'KA01': 'outer_race', 'KA05': 'outer_race', 'KI01': 'inner_race',
            'KI05': 'inner_race', 'KA04': 'outer_race', 'KA15': 'outer_race', 'KI04': 'inner_race', 'KI14': 'inner_race', 'KB23': 'combined'}
PB_REAL = ['KA04', 'KA15', 'KI04', 'KI14', 'KB23']


def _paderborn_folder(root: Path, settings=('N15_M07_F10', 'N09_M07_F10', 'N15_M01_F10'), reps=2, seconds=0.2) -> Path:
    for code, c in PB_CLASS.items():
        (root / code).mkdir(parents=True)
        for s in settings:
            for k in range(1, reps + 1):
                name = f'{s}_{code}_{k}'
                rng = np.random.default_rng(zlib.crc32(name.encode()))
                Y = np.zeros((1, 7), dtype=[('Name', 'O'), ('Type', 'O'), ('Data', 'O'), ('Unit', 'O'), ('Raster', 'O')])
                for j, (ch, fs) in enumerate(PB_Y):
                    t = np.arange(max(int(seconds * fs), 1)) / fs
                    f0 = PB_TONE[c] if ch == 'vibration_1' else 100.0 * (j + 1) + 4000.0 * (ch.startswith('phase'))   # currents: other tones
                    Y[0, j] = (ch, '', (np.sin(2 * np.pi * f0 * t) + 0.5 * rng.standard_normal(len(t)))[None], '', '')
                scipy.io.savemat(root / code / f'{name}.mat', {name: {'Info': 'x', 'X': np.zeros((1, 3)), 'Y': Y}})
    (root / 'KA08').mkdir()
    (root / 'KA08' / 'N15_M01_F10_KA08_2.mat').write_bytes(b'MATLAB 5.0 MAT-file' + bytes(200))   # the broken file of the published copy
    return root


@pytest.fixture(scope='module')
def paderborn(tmp_path_factory) -> Path:
    return _paderborn_folder(tmp_path_factory.mktemp('pb') / 'paderborn')


def test_paderborn_layout_trains_on_artificial_and_tests_on_real_damage(paderborn, tmp_path):
    from lstm_pfd.data import open_dataset
    from lstm_pfd.datasets import paderborn_labels_csv
    labels = paderborn_labels_csv(paderborn, tmp_path / 'pb.csv', classes=3)
    test = [c for c in PB_REAL if c != 'KB23'] + ['K001']
    r = run('import', labels, '--group-column', 'bearing', '--meta-columns', 'damage,setting', '--split-by', 'group',
            '--test-groups', ','.join(test), '--val-groups', 'K003', '--record-s', '0.05', '--out', tmp_path / 'p.h5', '--no-progress')
    assert r.returncode == 0, r.stderr
    with open_dataset(tmp_path / 'p.h5') as ds:
        assert list(ds.fault_names) == ['normal', 'outer_race', 'inner_race']            # combined damage left out (classes=3)
        tr, te = ds['train'], ds['test']
        assert sorted(set(tr.meta['damage'].astype(str))) == ['artificial', 'none'] and sorted(set(te.meta['damage'].astype(str))) == ['none', 'real']
        assert sorted(set(te.meta['group'].astype(str))) == sorted(test)
        assert sorted(set(tr.meta['setting'].astype(str))) == ['N09_M07_F10', 'N15_M01_F10', 'N15_M07_F10']
        assert set(te.meta['original_fs'].tolist()) == {64_000.0}
        assert sorted(set(tr.meta['speed_hz'].round(3).tolist())) == [15.0, 25.0]
        X, y = te.signals[:], te.labels[:]
        n_k001 = int(((te.meta['group'].astype(str)) == 'K001').sum())
    assert n_k001 == 3 * 2 * 4                    # 3 settings x 2 repetitions x 4 records of 0.05 s; nothing of the broken file
    peak = np.argmax(np.abs(np.fft.rfft(X, axis=1)), axis=1) * ds.fs / X.shape[1]
    assert np.allclose(peak, np.array([PB_TONE[c] for c in ds.fault_names])[y], atol=20.1)   # the vibration, not a current or the force


def test_paderborn_reader_channels_filters_and_refusals(paderborn, tmp_path, caplog):
    from lstm_pfd.datasets import paderborn_recordings
    with caplog.at_level('WARNING', logger='lstm_pfd.datasets'):
        a = paderborn_recordings(paderborn)
    assert 'N15_M01_F10_KA08_2.mat' in caplog.text and not any('KA08' in p for p in a['recordings'])
    assert set(a['labels']) == {'normal', 'outer_race', 'inner_race', 'combined'} and len(a['recordings']) == len(PB_CLASS) * 3 * 2
    assert all(k == f'{Path(p).stem}.Y(7).Data' for p, k in zip(a['recordings'], a['key']))
    c = paderborn_recordings(paderborn, channel='phase_current_2', bearings=['KB23'], settings='N09_M07_F10')
    assert c['key'] == ['N09_M07_F10_KB23_1.Y(3).Data', 'N09_M07_F10_KB23_2.Y(3).Data'] and c['meta']['speed_hz'] == [15.0, 15.0]
    with pytest.raises(ValueError, match="allowed: 3 or 4"): paderborn_recordings(paderborn, classes=2)
    with pytest.raises(ValueError, match=r"bearings: unknown \['KA02'\]"): paderborn_recordings(paderborn, bearings=['KA02'])
    with pytest.raises(ValueError, match="channel: unknown"): paderborn_recordings(paderborn, channel='force')
    with pytest.raises(FileNotFoundError, match='no folder at'): paderborn_recordings(tmp_path / 'missing')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match=f'{tmp_path / "empty"} holds no Paderborn files'): paderborn_recordings(tmp_path / 'empty')
    odd = tmp_path / 'odd' / 'KX99'
    odd.mkdir(parents=True); (odd / 'N15_M07_F10_KX99_1.mat').write_bytes(b'')
    with pytest.raises(ValueError, match="unknown bearing code 'KX99'") as e: paderborn_recordings(tmp_path / 'odd')
    assert str(odd / 'N15_M07_F10_KX99_1.mat') in str(e.value)
    (odd / 'N15_M07_F10_KX99_1.mat').rename(odd / 'N12_M07_F10_KA01_1.mat')
    with pytest.raises(ValueError, match="unknown operating setting 'N12_M07_F10'"): paderborn_recordings(tmp_path / 'odd')
