"Your own rig: any label set end to end, grouped splits, real file formats, record seeds, SNR copies, exact resampling."
import logging
from fractions import Fraction

import h5py
import numpy as np
import pytest
import scipy.io
from scipy.io import wavfile

from lstm_pfd.config import DataConfig
from lstm_pfd.data import (DatasetError, add_snr_noise, import_recordings, leave_one_group_out, open_dataset,
                           read_recording)
from lstm_pfd.utils import resample_ratio

FS_IN, TARGET = 8192.0, 6144.0
CFG = DataConfig.preset('quick')


def _tone(f0, seconds=2.0, fs=FS_IN, seed=0, noise=0.3):
    "A tone at `f0` Hz with its second harmonic and white noise: one class per `f0`."
    t = np.arange(int(seconds * fs)) / fs
    rng = np.random.default_rng(seed)
    return (np.sin(2 * np.pi * f0 * t) + 0.3 * np.sin(4 * np.pi * f0 * t) + noise * rng.standard_normal(len(t))).astype(np.float32)


def _import(tmp_path, recs, labels, name='own.h5', **kw):
    kw = {'cfg': CFG, 'target_fs': TARGET, 'record_s': 1.0, 'progress': False, **kw}
    return import_recordings(recs, labels, kw.pop('fs', FS_IN), tmp_path / name, **kw)


# --------------------------------------------------------------------------- class sets

def test_class_names_from_the_data(tmp_path):
    recs = [_tone(100 + 50 * i, seed=i) for i in range(4)]
    p = _import(tmp_path, recs, ['outer_race', 'inner_race', 'outer_race', 'healthy'])
    with open_dataset(p, verify=True) as ds:
        assert ds.fault_names == ['outer_race', 'inner_race', 'healthy']          # first-seen order
        assert ds['test'].labels.tolist() == [0, 0, 1, 1, 0, 0, 2, 2]
    p = _import(tmp_path, recs, [0, 1, 1, 0], name='ints.h5')
    with open_dataset(p, verify=True) as ds: assert ds.fault_names == ['class_0', 'class_1']
    p = _import(tmp_path, recs, [1, 'rub', 0, 1], name='given.h5', class_names=['whip', 'rub', 'healthy'])
    with open_dataset(p, verify=True) as ds:
        assert ds.fault_names == ['whip', 'rub', 'healthy'] and ds['test'].labels[::2].tolist() == [1, 1, 0, 1]
    p = _import(tmp_path, recs, ['imbalance', 'healthy', 'wear', 'healthy'], name='reg.h5')
    with open_dataset(p, verify=True) as ds: assert ds.fault_names[:3] == ['healthy', 'misalignment', 'imbalance']


def test_verify_still_refuses_bad_label_sets(tmp_path):
    p = _import(tmp_path, [_tone(100), _tone(200)], ['a', 'b'])
    for bad in (['a', 'a'], ['a', ' ']):
        with h5py.File(p, 'r+') as f: f.attrs['fault_names'] = bad
        with pytest.raises(DatasetError, match='distinct non-empty'): open_dataset(p, verify=True)


# --------------------------------------------------------------------------- grouped splits

@pytest.mark.parametrize('seed', range(5))
def test_grouped_split_never_puts_a_group_on_two_sides(tmp_path, seed):
    rng = np.random.default_rng(seed)
    n = 18
    groups = rng.choice(['0kN', '1kN', '2kN', '3kN', '4kN', '5kN'], n)
    labels = rng.choice(['inner', 'outer', 'healthy'], n)
    recs = [_tone(100 + 40 * i, seconds=1.0, seed=i) for i in range(n)]
    for kw in (dict(split=(0.5, 0.25, 0.25)), dict(test_groups=[groups[0]], val_groups=[g for g in groups if g != groups[0]][:1])):
        p = _import(tmp_path, recs, labels, name=f'g{len(kw)}.h5', groups=groups, split_by='group', seed=seed, overwrite=True, **kw)
        with open_dataset(p, verify=True) as ds:
            sides = {s: set(ds[s].meta['group'].astype(str)) for s in ('train', 'val', 'test') if len(ds[s])}
            seen = [g for s in sides.values() for g in s]
            assert len(seen) == len(set(seen)), sides                           # no group on two sides
            assert set(seen) == set(groups)
            if 'test_groups' in kw: assert sides['test'] == {groups[0]}


def test_split_column_and_leave_one_group_out(tmp_path):
    recs = [_tone(100 + 40 * i, seconds=1.0, seed=i) for i in range(4)]
    p = _import(tmp_path, recs, ['a', 'b', 'a', 'b'], split=['train', 'train', 'val', 'test'], groups=[1, 1, 2, 3])
    with open_dataset(p) as ds:
        assert [len(ds[s]) for s in ('train', 'val', 'test')] == [2, 1, 1]
        folds = leave_one_group_out(ds['train'].meta['group'].tolist() + [2, 3])
        assert [t for _, t in folds] == [1, 2, 3] and folds[1] == ([1, 3], 2)
        assert len(ds.windows('train', groups=[1])) == 2 * ds.windows('train').windows_per_record
    with pytest.raises(ValueError, match="split names \\['tst'\\]"):
        _import(tmp_path, recs, ['a', 'b', 'a', 'b'], name='x.h5', split=['train', 'tst', 'val', 'test'])
    with pytest.raises(ValueError, match='groups: one integer or name per recording'):
        _import(tmp_path, recs, ['a', 'b', 'a', 'b'], name='x.h5', groups=[1, 2])


# --------------------------------------------------------------------------- readers

def _rig_mat(path, x, v73=False):
    "A file laid out like the public rig's: struct `bearing` with the signal `gs`, the rate `sr` and other fields."
    if not v73:
        scipy.io.savemat(path, {'bearing': {'gs': x[:, None].astype(np.float64), 'sr': 48828.0, 'load': 270.0, 'rate': 25.0},
                                'BPFI': 118.875, 'BPFO': 81.125})
        return path
    with h5py.File(path, 'w', userblock_size=512) as f:          # MATLAB v7.3: HDF5 with a 512-byte header block
        f['bearing/gs'] = x[None, :].astype(np.float64)
        f['bearing/sr'] = np.array([[48828.0]])
        f['bearing/load'] = np.array([[270.0]])
        f['BPFI'] = np.array([[118.875]])
    return path


@pytest.mark.parametrize('v73', [False, True])
def test_matlab_struct_fields_and_rate(tmp_path, v73):
    x = _tone(200, seconds=1.2, fs=48828.0)
    p = _rig_mat(tmp_path / 'rig.mat', x, v73)
    y, fs = read_recording(p, key='bearing.gs', fs_key='bearing.sr')
    assert fs == 48828.0 and y.dtype == np.float32 and np.allclose(y, x, atol=1e-6)
    for key in ('gs', 'bearing', 'bearing.missing'):
        with pytest.raises(KeyError) as e: read_recording(p, key=key)
        assert 'bearing.gs' in str(e.value) and 'bearing.sr' in str(e.value) and 'BPFI' in str(e.value)
    with pytest.raises(ValueError, match='pass key='): read_recording(p)
    with pytest.raises(KeyError, match='fs_key'): read_recording(p, key='bearing.gs', fs_key='bearing.fs')
    with pytest.raises(ValueError, match='not one rate'): read_recording(p, key='bearing.sr', fs_key='bearing.gs')
    # the import reads the rate from the file and resamples 48,828 Hz exactly (5120/12207)
    out = import_recordings([str(p), str(p)], ['inner_race', 'outer_race'], None, tmp_path / 'imp.h5', cfg=CFG,
                            record_s=0.5, key='bearing.gs', fs_key='bearing.sr', progress=False)
    with open_dataset(out, verify=True) as ds:
        t = ds['test']
        assert ds.fault_names == ['inner_race', 'outer_race'] and t.meta['original_fs'][0] == 48828.0
        assert len(t) == 4 and t.signals.shape[1] == int(0.5 * ds.fs)


def test_csv_tsv_wav(tmp_path):
    x = _tone(300, seconds=0.1)
    (tmp_path / 'r.csv').write_text('t,acc,mic\n' + '\n'.join(f'{i},{v:.7g},0' for i, v in enumerate(x)))
    np.savetxt(tmp_path / 'r.tsv', np.stack([x * 0, x], 1), delimiter='\t')
    assert np.allclose(read_recording(tmp_path / 'r.csv', column='acc')[0], x, atol=1e-6)
    assert np.allclose(read_recording(tmp_path / 'r.csv', column=1)[0], x, atol=1e-6)
    assert np.allclose(read_recording(tmp_path / 'r.tsv', column=1)[0], x, atol=1e-6)
    with pytest.raises(ValueError, match=r"3 columns \['t', 'acc', 'mic'\]"): read_recording(tmp_path / 'r.csv')
    with pytest.raises(ValueError, match='no column'): read_recording(tmp_path / 'r.tsv', column=5)
    wavfile.write(tmp_path / 'r.wav', 44100, np.stack([x, -x], 1))                       # float32 stereo
    y, fs = read_recording(tmp_path / 'r.wav', column=1)
    assert fs == 44100.0 and np.allclose(y, -x)
    with pytest.raises(ValueError, match='pass column='): read_recording(tmp_path / 'r.wav')
    wavfile.write(tmp_path / 'i.wav', 8000, (x * 2 ** 14).astype(np.int16))
    assert np.allclose(read_recording(tmp_path / 'i.wav')[0], x / 2, atol=1e-4)          # int16 PCM: full scale 1
    with pytest.raises(ValueError, match='fs_key'): read_recording(tmp_path / 'r.wav', fs_key='sr')
    (tmp_path / 'bad.mat').write_bytes(b'not a mat file at all')
    with pytest.raises(ValueError, match='not a readable MATLAB file'): read_recording(tmp_path / 'bad.mat')


def test_no_rate_and_short_recording_errors(tmp_path):
    np.save(tmp_path / 'r.npy', _tone(100))
    with pytest.raises(ValueError, match='no sampling rate.*fs='):
        import_recordings([str(tmp_path / 'r.npy')] * 2, ['a', 'b'], None, tmp_path / 'x.h5', cfg=CFG, progress=False)
    with pytest.raises(ValueError) as e: _import(tmp_path, [_tone(100, seconds=0.5)] * 2, ['a', 'b'], name='x.h5')
    assert 'record_s' in str(e.value) and '--record-s' in str(e.value)


# --------------------------------------------------------------------------- seeds, SNR copies, resampling

def test_record_seeds_and_snr_copies(tmp_path):
    recs = [_tone(100 + 60 * i, seed=i) for i in range(6)]
    p = _import(tmp_path, recs, ['a', 'b', 'c'] * 2, split=(0.5, 0, 0.5), snr_db=(20, 5), seed=3)
    q = _import(tmp_path, recs, ['a', 'b', 'c'] * 2, name='q.h5', split=(0.5, 0, 0.5), snr_db=(20, 5), seed=4)
    with open_dataset(p, verify=True) as ds, open_dataset(q) as dq:
        assert ds.splits == ['train', 'val', 'test', 'test_snr20', 'test_snr5']
        seeds = np.concatenate([ds[s].seed for s in ('train', 'test')])
        assert (seeds >= 0).all() and len(set(seeds.tolist())) == len(seeds)
        assert not np.array_equal(ds['test'].seed, dq['test'].seed)                     # derived from the import seed
        t = ds['test']
        for snr in (20, 5):
            g = ds.file[f'test_snr{snr}']
            assert g.attrs['derived_from'] == 'test' and g.attrs['snr_db'] == snr and 'seed' in g.attrs['recipe']
            noisy = ds[f'test_snr{snr}'].signals[:]
            np.testing.assert_array_equal(noisy, add_snr_noise(t.signals[:], snr, t.seed))
            ratio = np.mean(t.signals[:] ** 2) / np.mean((noisy - t.signals[:]) ** 2)
            assert abs(10 * np.log10(ratio) - snr) < 0.5
    with pytest.raises(Exception, match='snr_db'): _import(tmp_path, recs, ['a', 'b', 'c'] * 2, name='x.h5', snr_db=(5, 5))
    with pytest.raises(ValueError, match='seed'): _import(tmp_path, recs, ['a', 'b', 'c'] * 2, name='x.h5', seed=-1)


def test_exact_resampling_ratio(caplog):
    assert resample_ratio(48828, 20480) == Fraction(5120, 12207)
    assert resample_ratio(8000.5, 6144) == Fraction(12288, 16001)                     # decimal rates: exact
    with caplog.at_level(logging.WARNING, logger='lstm_pfd.utils'):
        r = resample_ratio(25600.5, 20480)                                          # exact: 40960/51201
    assert r.denominator <= 20000 and abs(float(r) / (20480 / 25600.5) - 1) < 1e-6 and 'rate error' in caplog.text and 'ppm' in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger='lstm_pfd.utils'): resample_ratio(48828, 20480)
    assert caplog.text == ''


# --------------------------------------------------------------------------- end to end

def _e2e(tmp_path, n_classes):
    import torch
    from lstm_pfd.export import to_onnx
    from lstm_pfd.models import create_model
    from lstm_pfd.predict import Predictor
    from lstm_pfd.train import evaluate, evaluate_snr, fit, load_checkpoint
    from lstm_pfd.xai import explain
    torch.set_num_threads(1)
    names = [f'fault_{chr(97 + i)}' for i in range(n_classes)] if n_classes < 26 else [f'k{i}' for i in range(n_classes)]
    f0 = {c: 80 + 70 * i for i, c in enumerate(names)}
    labels = [c for c in names for _ in range(6)]
    recs = [_tone(f0[c], seconds=2.0, seed=i) for i, c in enumerate(labels)]
    p = _import(tmp_path, recs, labels, split=(0.5, 1 / 6, 1 / 3), snr_db=(10,), seed=1)
    with open_dataset(p, verify=True) as ds:
        assert ds.fault_names == names
        tr, va = ds.windows('train', normalize='zscore'), ds.windows('val', normalize='zscore')
        assert ds.conditions() == {'clean': 'test', 'snr10': 'test_snr10'}
        conds = {k: ds.windows(s, normalize='zscore') for k, s in ds.conditions().items()}
    model = create_model('compact', n_classes=len(tr.class_names), seed=0, channels=(8, 8, 16, 16, 16))
    res = fit(model, tr, va, epochs=8, lr=3e-3, batch_size=16, progress=False, checkpoint_path=tmp_path / 'm.pt')
    evals = evaluate_snr(tmp_path / 'm.pt', conds)
    assert set(evals) == {'clean', 'snr10'}
    for e in evals.values():
        assert list(e.class_names) == names and e.probs.shape[1] == n_classes
    assert evals['clean'].record_acc > 1.5 / n_classes                                   # learned something from tones
    m, info = load_checkpoint(tmp_path / 'm.pt')
    assert info['class_names'] == names and info['normalize'] == 'zscore'
    x = conds['clean'].windows()[:2]
    assert explain(m, x, method='ig', n_steps=4).shape == x.shape
    rep = to_onnx(m, tmp_path / 'm.onnx', window_len=tr.window_len, class_names=info['class_names'], fs=ds.fs,
                  normalize=info['normalize'])
    assert rep['metadata']['class_names'] == names
    pred = Predictor(tmp_path / 'm.onnx')
    assert pred.class_names == names
    rec = recs[labels.index(names[-1])][:int(FS_IN)]
    r = pred.predict(rec, fs=FS_IN, resample=True)
    assert r.label in names and len(r.probabilities) == n_classes
    return evals


def test_two_classes_end_to_end(tmp_path):
    _e2e(tmp_path, 2)


def test_thirteen_classes_end_to_end(tmp_path):
    _e2e(tmp_path, 13)


def test_fifty_classes_train_and_evaluate(tmp_path):
    "The top of the range: a 50-class label set builds its head from the file and trains."
    from lstm_pfd.models import create_model
    from lstm_pfd.train import evaluate, fit
    names = [f'k{i:02d}' for i in range(50)]
    p = _import(tmp_path, [_tone(60 + 45 * i, seconds=1.0, seed=i) for i in range(50)], names, split='train')
    with open_dataset(p, verify=True) as ds: tr = ds.windows('train')
    assert tr.class_names == names
    res = fit(create_model('compact', n_classes=len(tr.class_names), seed=0, channels=(8, 8, 8, 8, 8)), tr, epochs=1, progress=False)
    assert evaluate(res.model, tr).probs.shape == (len(tr), 50)


def test_export_from_checkpoint_keeps_the_file_classes(tmp_path):
    "The checkpoint -> ONNX path (`export_checkpoint`) carries the data's class names, not the registry's."
    from lstm_pfd.export import export_checkpoint
    from lstm_pfd.models import create_model
    from lstm_pfd.predict import Predictor
    from lstm_pfd.train import fit
    p = _import(tmp_path, [_tone(100), _tone(300)], ['rub', 'whip'], split='train')
    with open_dataset(p) as ds: tr = ds.windows('train')
    fit(create_model('compact', n_classes=2, seed=0, channels=(8, 8, 8, 8, 8)), tr, epochs=1, progress=False,
        checkpoint_path=tmp_path / 'm.pt')
    export_checkpoint(tmp_path / 'm.pt', tmp_path / 'm.onnx')
    assert Predictor(tmp_path / 'm.onnx').class_names == ['rub', 'whip']


def test_cli_import_train_evaluate_own_classes(tmp_path, capsys):
    "The CLI as it is: a labels CSV with the user's own classes, imported, trained and evaluated (clean and SNR)."
    from lstm_pfd.cli import main
    rows = []
    for i, c in enumerate(['inner_race', 'outer_race'] * 3):
        np.save(tmp_path / f'r{i}.npy', _tone(100 if c == 'inner_race' else 250, seed=i))
        rows.append(f'r{i}.npy,{c}')
    (tmp_path / 'labels.csv').write_text('file,label\n' + '\n'.join(rows) + '\n')
    d, m = str(tmp_path / 'd.h5'), str(tmp_path / 'm.pt')
    assert main(['import', str(tmp_path / 'labels.csv'), '--fs', str(FS_IN), '--target-fs', str(TARGET), '--record-s', '1',
                 '--split', '0.34,0.33,0.33', '--preset', 'quick', '--out', d, '--no-progress']) == 0
    with open_dataset(d) as ds: assert ds.fault_names == ['inner_race', 'outer_race']
    assert main(['train', d, '--epochs', '1', '--out', m, '--no-progress', '--threads', '1']) == 0
    assert main(['evaluate', m, d, '--threads', '1']) == 0
    assert 'test' in capsys.readouterr().out


def _explained(tmp_path):
    from lstm_pfd.models import create_model
    from lstm_pfd.train import fit
    from lstm_pfd import xai
    recs = [_tone(100), _tone(300), _tone(100, seed=3), _tone(300, seed=4)]
    p = _import(tmp_path, recs, ['rub', 'whip'] * 2, split=(0.5, 0, 0.5), meta={'speed_hz': [25.0] * 4})
    with open_dataset(p) as ds: tr = ds.windows('train')
    fit(create_model('compact', n_classes=2, seed=0, channels=(8,) * 5), tr, epochs=1, progress=False, checkpoint_path=tmp_path / 'm.pt')
    return xai.explain_record_figure(tmp_path / 'm.pt', p, 0, method='occlusion', n_steps=4)[1]


def test_explain_a_record_of_an_own_class(tmp_path, caplog):
    "Classes outside the catalogue are explained without physics bands, and the log says so."
    with caplog.at_level(logging.INFO, logger='lstm_pfd.xai'): s = _explained(tmp_path)
    assert s['label_name'] == 'rub' and np.isnan(s['band_alignment'])
    assert "'rub' is not in the fault catalogue" in caplog.text


def test_explain_names_the_target_from_the_file_classes(tmp_path):
    assert _explained(tmp_path)['target_name'] in ('rub', 'whip')


def test_explorers_on_an_own_class_file(tmp_path):
    "The dataset and model explorers take the class names of the file (and its unknown severity slots)."
    from lstm_pfd.explorers import DatasetExplorer, ModelExplorer
    from lstm_pfd.models import create_model
    from lstm_pfd.train import fit
    p = _import(tmp_path, [_tone(100), _tone(300), _tone(100, seed=3), _tone(300, seed=4)], ['rub', 'whip'] * 2, split=(0.5, 0, 0.5))
    with open_dataset(p) as ds: tr = ds.windows('train')
    fit(create_model('compact', n_classes=2, seed=0, channels=(8,) * 5), tr, epochs=1, progress=False, checkpoint_path=tmp_path / 'm.pt')
    d = DatasetExplorer(p)
    assert d.class_names == ['rub', 'whip'] and len(d.rows) == 4
    assert ModelExplorer(tmp_path / 'm.pt', p).class_names == ['rub', 'whip']
