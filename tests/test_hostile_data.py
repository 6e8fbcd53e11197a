"""Hostile inputs for the config reader, the generator's size budget, dataset files and imports.

Every case must end in a clear, typed exception (or, for a corrupted file that still reads, in data equal
to the original), a bounded message, and no file left behind. The last test interrupts a parallel build
with SIGTERM / SIGINT in a subprocess and checks that no temporary file and no worker process survive.
"""
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import psutil
import pytest

from lstm_pfd.config import ConfigError, DataConfig, MAX_CONFIG_BYTES
from lstm_pfd.data import DatasetError, build_dataset, checksum, import_recordings, open_dataset, record_plan
from lstm_pfd.physics import FAULTS

SMALL = DataConfig.preset('quick', {'dataset.records_per_class_severity': 4, 'signal.duration_s': 1.0,
                                    'dataset.batch_size': 8})
MAX_MESSAGE = 1500  # characters: an error message is a line or two, whatever the input


def _bounded(e: BaseException):
    assert len(str(e)) < MAX_MESSAGE, f'{len(str(e))}-character message'


def _no_leftovers(folder: Path, allowed=()):
    left = sorted(p.name for p in folder.iterdir() if p.name not in allowed)
    assert left == [], f'left behind: {left}'


# --------------------------------------------------------------------------- config files

def _alias_bomb(levels=9, width=9) -> str:
    "A few hundred bytes of YAML whose aliases expand to width**levels items, under a real field."
    defs = ['&a0 [' + ','.join(['lol'] * width) + ']']
    defs += [f'&a{i} [' + ','.join([f'*a{i - 1}'] * width) + ']' for i in range(1, levels)]
    return '{signal: {units: [' + ', '.join(defs) + ']}}'


CONFIG_FILES = {  # name -> (bytes, words the message must hold)
    'alias_bomb.yaml': (_alias_bomb().encode(), ['signal.units']),
    'alias_bomb_splits.yaml': (_alias_bomb().replace('signal: {units:', 'dataset: {splits:').encode(), ['dataset.splits']),
    'alias_bomb_key.yaml': (_alias_bomb().replace('{signal: {units:', '{sgnal: {units:').encode(), ['sgnal']),
    'huge_float.yaml': (b'signal: {fs: 1e308}', ['signal']),
    'inf_float.yaml': (b'signal: {duration_s: 1e999}', ['signal.duration_s']),
    'huge_int.yaml': (b'dataset: {records_per_class_severity: ' + b'9' * 5000 + b'}', ['huge_int.yaml']),
    'huge_records.yaml': (b'dataset: {records_per_class_severity: 1e12}', ['records_per_class_severity', 'max_records']),
    'huge_duration.yaml': (b'signal: {duration_s: 1.0e+5}', ['signal.duration_s', 'max_samples_per_record']),
    'huge_batch.yaml': (b'dataset: {batch_size: 1000000000}\nsignal: {duration_s: 600}', ['dataset.batch_size']),
    'huge_seed.yaml': (b'dataset: {seed: 1e30}', ['dataset.seed']),
    'negative_limit.yaml': (b'limits: {max_file_bytes: -1}', ['limits.max_file_bytes']),
    'empty.yaml': (b'', ['empty.yaml', 'empty']),
    'whitespace.yaml': (b'  \n\t \n   ', ['whitespace.yaml', 'empty']),
    'comments.yaml': (b'# nothing here\n# at all\n', ['comments.yaml', 'comments']),
    'binary.yaml': (bytes(range(256)) * 4, ['binary.yaml']),
    'png.yaml': (b'\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR' + bytes(64), ['png.yaml']),
    'latin1.yaml': ('signal: {units: "m/s\u00b2"}'.encode('latin-1'), ['latin1.yaml']),
    'nul.yaml': (b'signal: {fs: 20480}\x00', ['nul.yaml']),
    'list.yaml': (b'- signal\n- dataset\n', ['list.yaml', 'mapping']),
    'scalar.yaml': (b'hello', ['scalar.yaml', 'mapping']),
    'syntax.yaml': (b'signal: {fs: [1, 2', ['syntax.yaml', 'valid YAML']),
    'deep.yaml': (b'[' * 50_000 + b']' * 50_000, ['deep.yaml', 'valid YAML']),
    'python_tag.yaml': (b'signal: !!python/object/apply:os.system ["echo pwned"]', ['python_tag.yaml', 'valid YAML']),
    'oversized.yaml': (b'# ' + b'x' * (MAX_CONFIG_BYTES + 10), ['oversized.yaml', 'MAX_CONFIG_BYTES']),
    'unhashable_key.yaml': (b'? [a, b]\n: 1\n', ['unhashable_key.yaml']),
    'empty.json': (b'', ['empty.json']),
    'binary.json': (bytes(range(256)), ['binary.json']),
    'deep.json': (b'[' * 100_000 + b']' * 100_000, ['deep.json']),
    'inf.json': (b'{"signal": {"fs": 1e999}}', ['signal.fs']),
    'list.json': (b'[1, 2]', ['list.json', 'mapping']),
}


@pytest.mark.parametrize('name', list(CONFIG_FILES))
def test_hostile_config_file(name, tmp_path):
    content, words = CONFIG_FILES[name]
    p = tmp_path / name
    p.write_bytes(content)
    read = DataConfig.from_json if name.endswith('.json') else DataConfig.from_yaml
    with pytest.raises(ConfigError) as e:
        read(p)
    _bounded(e.value)
    for w in words: assert w in str(e.value), (w, str(e.value))
    assert 'pwned' not in str(e.value) or 'valid YAML' in str(e.value)


def test_yaml_numbers_without_a_dot_are_numbers():
    cfg = DataConfig.from_yaml('signal: {fs: 2.048e4}\ndataset: {seed: 1e3, records_per_class_severity: 4E1}')
    assert (cfg.signal.fs, cfg.dataset.seed, cfg.dataset.records_per_class_severity) == (20480.0, 1000, 40)
    assert isinstance(cfg.signal.fs, float) and isinstance(cfg.dataset.seed, int)


def test_config_text_that_looks_like_a_path_is_text():
    for text in ['x' * 100_000, 'a\x00b', '   ']:
        with pytest.raises(ConfigError):
            DataConfig.from_yaml(text)


# --------------------------------------------------------------------------- the generator's budget

BUDGET = [  # overrides of the quick preset -> the field blamed and words of the message
    ({'signal.duration_s': 1.0e+5}, 'signal.duration_s', ['1,024,000,000', 'max_samples_per_record']),
    ({'signal.fs': 1e9, 'signal.duration_s': 1.0}, 'signal.duration_s', ['max_samples_per_record']),
    ({'dataset.records_per_class_severity': 10 ** 9}, 'dataset.records_per_class_severity', ['max_records']),
    ({'dataset.records_per_class_severity': 10 ** 40}, 'dataset.records_per_class_severity', ['max_records']),
    ({'signal.duration_s': 600.0}, 'dataset.batch_size', ['max_batch_bytes']),
    ({'limits.max_file_bytes': 10 ** 6}, 'dataset.records_per_class_severity', ['max_file_bytes']),
    ({'limits.max_records': 50}, 'dataset.records_per_class_severity', ['max_records']),
    ({'limits.max_batch_bytes': 1000}, 'dataset.batch_size', ['max_batch_bytes']),
]


@pytest.mark.parametrize('over,field,words', BUDGET)
def test_budget_refuses_before_writing(over, field, words, tmp_path):
    with pytest.raises(ConfigError) as e:
        cfg = DataConfig.preset('quick', over)
        build_dataset(cfg, tmp_path / 'big.h5', progress=False)
    assert e.value.field == field
    for w in words: assert w in str(e.value), (w, str(e.value))
    _bounded(e.value)
    _no_leftovers(tmp_path)


def test_budget_exact_check_counts_classes():
    # 4 severities x (60 + 3 SNR copies x 9 test records) per class: 348 rows per class
    cfg = DataConfig.preset('quick', {'dataset.records_per_class_severity': 60, 'limits.max_records': 348 * len(FAULTS) - 1})
    with pytest.raises(ConfigError, match='max_records'):
        record_plan(cfg)
    assert len(record_plan(cfg.override({'limits.max_records': 348 * len(FAULTS)}))['label']) == 240 * len(FAULTS)


def test_raised_limit_allows_and_keeps_the_hash():
    base = DataConfig.preset('quick')
    big = base.override({'signal.duration_s': 3000.0, 'limits.max_samples_per_record': 10 ** 8,
                         'limits.max_batch_bytes': 10 ** 12, 'limits.max_file_bytes': 10 ** 13})
    assert big.signal.n_samples == 30_720_000
    assert base.override({'limits.max_records': 10 ** 5}).hash() == base.hash()


# --------------------------------------------------------------------------- dataset files

@pytest.fixture(scope='module')
def built(tmp_path_factory):
    return build_dataset(SMALL, tmp_path_factory.mktemp('hostile') / 'ok.h5', progress=False)


def _copy(built, tmp_path, name='edited.h5'):
    q = tmp_path / name
    shutil.copy(built, q)
    return q


def _read_all(path):
    "Everything a user reads, through the public API (verify first)."
    with open_dataset(path, verify=True) as ds:
        out = {}
        for s in ds.splits:
            t = ds[s]
            out[s] = (t.load(), t.labels, t.severity, t.seed, t.record_index, {k: v for k, v in t.meta.items()})
        return out


def _same(a, b):
    assert a.keys() == b.keys()
    for s in a:
        for x, y in zip(a[s][:5], b[s][:5]): np.testing.assert_array_equal(x, y)
        assert a[s][5].keys() == b[s][5].keys()
        for k in a[s][5]: np.testing.assert_array_equal(a[s][5][k], b[s][5][k])


def _set(path_in_file, fn):
    def edit(f):
        v = f[path_in_file][()]
        v = fn(v)
        del f[path_in_file]
        f[path_in_file] = v
    return edit


def _with_digest(edit, group='train'):
    "Apply `edit`, then recompute the column digest: a careful editor; the record plan must still catch it."
    from lstm_pfd.data import _columns_digest

    def both(f):
        edit(f)
        f[group].attrs['columns_sha256'] = _columns_digest(f[group])
    return both


def _bump(v, i=0, by=1):
    v = v.copy(); v[i] = v[i] + by; return v


FILE_EDITS = {  # name -> (edit of the open h5py.File, words of the message)
    'label_shifted': (_set('train/labels', lambda v: _bump(v, 0, 1) % len(FAULTS)), ['edited']),
    'label_shifted_digest': (_with_digest(_set('train/labels', lambda v: (_bump(v, 0, 1)) % len(FAULTS))), ['record plan']),
    'label_99': (_set('train/labels', lambda v: _bump(v, 0, 99 - v[0])), ['label 99']),
    'label_negative': (_set('val/labels', lambda v: _bump(v, 1, -50)), ['label']),
    'severity_7': (_set('test/severity', lambda v: _bump(v, 0, 7 - v[0])), ['severity 7']),
    'seed_edited_digest': (_with_digest(_set('train/seed', lambda v: _bump(v, 2, 1))), ['record plan']),
    'record_index_dup_digest': (_with_digest(_set('train/record_index', lambda v: np.r_[v[:1], v[:-1]])), ['plan']),
    'meta_edited': (_set('train/meta/speed_hz', lambda v: _bump(v, 0, 3.0)), ['edited']),
    'labels_float': (_set('train/labels', lambda v: v.astype(float)), ['integer']),
    'labels_short': (_set('train/labels', lambda v: v[:-1]), ['one entry per record']),
    'labels_long': (_set('train/labels', lambda v: np.r_[v, v[:1]]), ['one entry per record']),
    'severity_short': (_set('val/severity', lambda v: v[:-2]), ['one entry per record']),
    'checksum_short': (_set('test/checksum', lambda v: v[:-1]), ['one entry per record']),
    'meta_short': (_set('train/meta/speed_hz', lambda v: v[:-1]), ['one entry per record']),
    'labels_2d': (_set('train/labels', lambda v: v[:, None]), ['one entry per record']),
    'labels_scalar': (_set('train/labels', lambda v: v[0]), ['one entry per record']),
    'labels_missing': (lambda f: f['train'].__delitem__('labels'), ['lacks a column']),
    'signals_narrow': (_set('val/signals', lambda v: v[:, :-5]), ['expected [records']),
    'signal_flipped': (_set('val/signals', lambda v: (v.__setitem__((0, 7), v[0, 7] + 1), v)[1]), ["record 0 of split 'val'"]),
    'signal_inf_consistent': (None, ['NaN or Inf']),  # built below: a file consistent except for the value
    'fs_1hz': (lambda f: f.attrs.__setitem__('fs', 1.0), ['attribute fs = 1 Hz']),
    'fs_text': (lambda f: f.attrs.__setitem__('fs', 'fast'), ['root attributes']),
    'fs_missing': (lambda f: f.attrs.__delitem__('fs'), ['root attributes']),
    'config_hash': (lambda f: f.attrs.__setitem__('config_hash', '0' * 16), ['config hash']),
    'config_changed': (lambda f: f.attrs.__setitem__('config', DataConfig.from_yaml(f.attrs['config']).override(
        {'noise.measurement.level': 0.5}).to_yaml()), ['config hash']),
    'config_alias_bomb': (lambda f: f.attrs.__setitem__('config', _alias_bomb()), ['stored config is invalid']),
    'config_garbage': (lambda f: f.attrs.__setitem__('config', '{{{{ not yaml'), ['stored config is invalid']),
    'config_empty': (lambda f: f.attrs.__setitem__('config', ''), ['stored config is invalid']),
    'config_path': (lambda f: f.attrs.__setitem__('config', '/etc/hostname'), ['stored config is invalid', 'not a mapping']),
    'config_bytes': (lambda f: f.attrs.__setitem__('config', np.void(b'\x00\x01')), ['config']),
    'config_huge': (lambda f: f.attrs.create('config', 'a: ' + 'x' * (MAX_CONFIG_BYTES + 1)), ['MAX_CONFIG_BYTES']),
    'config_over_budget': (lambda f: f.attrs.__setitem__('config', DataConfig.from_yaml(f.attrs['config']).to_yaml().replace(
        'duration_s: 1.0', 'duration_s: 100000.0')), ['max_samples_per_record']),
    'fault_names_reversed': (lambda f: f.attrs.__setitem__('fault_names', list(FAULTS)[::-1]), ['class names']),
    'fault_names_dup': (lambda f: f.attrs.__setitem__('fault_names', list(FAULTS) + ['healthy']), ['class names']),
    'severity_names': (lambda f: f.attrs.__setitem__('severity_names', ['a', 'b', 'c', 'd']), ['severity names']),
    'incomplete': (lambda f: f.attrs.__setitem__('complete', False), ['incomplete']),
    'no_format': (lambda f: f.attrs.__delitem__('format'), ['not an lstm_pfd dataset']),
    'snr_group_relabelled': (_with_digest(_set('test_snr10/labels', lambda v: (v + 1) % len(FAULTS)), 'test_snr10'), ['record plan']),
}


def _inf_consistent(f):
    from lstm_pfd.data import _columns_digest
    x = f['train/signals'][1]
    x[3] = np.inf
    f['train/signals'][1] = x
    f['train/checksum'][1] = checksum(x).encode()
    f['train'].attrs['columns_sha256'] = _columns_digest(f['train'])


FILE_EDITS['signal_inf_consistent'] = (_inf_consistent, ['NaN or Inf'])


@pytest.mark.parametrize('name', list(FILE_EDITS))
def test_edited_dataset_file(name, built, tmp_path):
    edit, words = FILE_EDITS[name]
    q = _copy(built, tmp_path)
    with h5py.File(q, 'r+') as f: edit(f)
    with pytest.raises(DatasetError) as e:
        _read_all(q)
    _bounded(e.value)
    for w in words: assert w in str(e.value), (w, str(e.value))


def test_unedited_file_verifies(built):
    _read_all(built)


TRUNCATIONS = [0, 8, 100, 512, 2048, 4096, 10_000, 0.5, -1, -4096]


@pytest.mark.parametrize('cut', TRUNCATIONS)
def test_truncated_file(cut, built, tmp_path):
    data = built.read_bytes()
    n = int(len(data) * cut) if isinstance(cut, float) else (cut if cut >= 0 else len(data) + cut)
    q = tmp_path / 'trunc.h5'
    q.write_bytes(data[:n])
    with pytest.raises(DatasetError) as e:
        _read_all(q)
    _bounded(e.value)


def _foreign_files(d: Path):
    with h5py.File(d / 'empty.h5', 'w'): pass
    with h5py.File(d / 'other.h5', 'w') as f: f['x'] = np.arange(10)
    with h5py.File(d / 'format_only.h5', 'w') as f: f.attrs.update(format='lstm_pfd-dataset', complete=True)
    with h5py.File(d / 'no_groups.h5', 'w') as f:
        f.attrs.update(format='lstm_pfd-dataset', complete=True, config=SMALL.to_yaml(), config_hash=SMALL.hash(),
                       fs=SMALL.signal.fs, fault_names=list(FAULTS), severity_names=list(SMALL.severity.names), lstm_pfd_version='0')
        f['train'] = np.zeros(3)                                                     # a dataset where a group belongs
    (d / 'text.h5').write_text('this is not HDF5\n' * 100)
    (d / 'random.h5').write_bytes(np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8).tobytes())
    (d / 'npy.h5').write_bytes(b'\x93NUMPY' + bytes(200))
    return sorted(d.iterdir())


def test_foreign_files(tmp_path):
    files = _foreign_files(tmp_path)
    for q in files:
        with pytest.raises(DatasetError) as e:
            _read_all(q)
        _bounded(e.value)
    assert len(files) == 7


N_FLIPS = 60


def test_flipped_bytes(built, tmp_path):
    "Random single-byte flips: a typed error, or (a flip in unused space) data identical to the original."
    ref = _read_all(built)
    data = bytearray(built.read_bytes())
    rng = np.random.default_rng(16)
    outcomes = {'error': 0, 'identical': 0}
    for k in range(N_FLIPS):
        pos = int(rng.integers(0, 4096)) if k < N_FLIPS // 2 else int(rng.integers(0, len(data)))  # metadata, then anywhere
        bad = bytearray(data)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        q = tmp_path / f'flip{k}.h5'
        q.write_bytes(bytes(bad))
        try:
            got = _read_all(q)
        except DatasetError as e:
            _bounded(e)
            outcomes['error'] += 1
        else:
            _same(got, ref)
            outcomes['identical'] += 1
        q.unlink()
    print(f'{N_FLIPS} flips: {outcomes}')
    assert outcomes['error'] > 0


def test_open_never_reads_a_path_from_the_config_attribute(built, tmp_path):
    target = tmp_path / 'secret.yaml'
    target.write_text('signal: {fs: 40960}\n')   # a valid config: if it were read, the file would open with fs mismatch
    q = _copy(built, tmp_path)
    with h5py.File(q, 'r+') as f: f.attrs['config'] = str(target)
    with pytest.raises(DatasetError, match='stored config is invalid'):
        open_dataset(q)


# --------------------------------------------------------------------------- imports

FS_IN = 25_600
_T = np.arange(int(2.2 * FS_IN)) / FS_IN
GOOD = np.sin(2 * np.pi * 60 * _T)


def _import(tmp_path, recs, **kw):
    kw = {'cfg': SMALL, 'record_s': 1.0, 'progress': False, **kw}
    labels = kw.pop('labels', ['healthy'] * len(recs))
    return import_recordings(recs, labels, FS_IN, kw.pop('path', tmp_path / 'imp.h5'), **kw)


def _with(i, v):
    x = GOOD.copy(); x[i] = v; return x


IMPORTS = {  # name -> (recordings, keyword arguments, exception type, words)
    'float64_1e300': ([GOOD * 1e300], {}, ValueError, ['float32 range']),
    'float64_1e39_once': ([_with(100, 1e39)], {}, ValueError, ['float32 range', 'sample 100']),
    'float64_max': ([_with(5, np.finfo(np.float64).max)], {}, ValueError, ['float32 range']),
    'nan': ([_with(7, np.nan)], {}, ValueError, ['NaN']),
    'inf': ([_with(7, -np.inf)], {}, ValueError, ['Inf']),
    'float32_max_overflows_resampling': ([np.full(len(GOOD), np.finfo(np.float32).max, np.float32) * np.sign(GOOD).astype(np.float32)],
                                         {}, ValueError, ['float32']),
    'complex128': ([GOOD + 0.5j], {}, ValueError, ['complex']),
    'complex64_zero_imag': ([GOOD.astype(np.complex64)], {}, ValueError, ['complex']),
    'object': ([np.array([object()] * len(GOOD))], {}, ValueError, ['not real numbers']),
    'strings': ([np.array(['1.0'] * len(GOOD))], {}, ValueError, ['not real numbers']),
    'two_d': ([np.stack([GOOD, GOOD])], {}, ValueError, ['1-D']),
    'too_short': ([GOOD[:100]], {}, ValueError, ['shorter than one record']),
    'meta_segment': ([GOOD], {'meta': {'segment': [3]}}, ValueError, ["'segment'", 'library']),
    'meta_source_id': ([GOOD], {'meta': {'source_id': [3]}}, ValueError, ["'source_id'"]),
    'meta_original_fs': ([GOOD], {'meta': {'original_fs': [3.0]}}, ValueError, ["'original_fs'"]),
    'meta_label': ([GOOD], {'meta': {'label': [1]}}, ValueError, ["'label'"]),
    'meta_seed': ([GOOD], {'meta': {'seed': [1]}}, ValueError, ["'seed'"]),
    'meta_slash': ([GOOD], {'meta': {'a/b': [1]}}, ValueError, ["'/'"]),
    'meta_empty_key': ([GOOD], {'meta': {'': [1]}}, ValueError, ['non-empty']),
    'meta_int_key': ([GOOD], {'meta': {7: [1]}}, ValueError, ['meta key 7']),
    'meta_short': ([GOOD, GOOD], {'meta': {'speed': [1.0]}}, ValueError, ['one number or string per recording (2)']),
    'meta_complex': ([GOOD], {'meta': {'speed': [1j]}}, ValueError, ['dtype complex']),
    'meta_nested': ([GOOD], {'meta': {'speed': [[1, 2]]}}, ValueError, ['shape (1, 2)']),
    'record_s_0': ([GOOD], {'record_s': 0}, ConfigError, ['record_s']),
    'record_s_negative': ([GOOD], {'record_s': -1.0}, ConfigError, ['record_s']),
    'record_s_nan': ([GOOD], {'record_s': float('nan')}, ConfigError, ['record_s']),
    'record_s_tiny': ([GOOD], {'record_s': 0.00001}, ConfigError, ['record_s', '16 samples']),
    'record_s_huge': ([GOOD], {'record_s': 1e6}, ConfigError, ['max_samples_per_record']),
    'record_s_true': ([GOOD], {'record_s': True}, ConfigError, ['record_s']),
    'record_s_text': ([GOOD], {'record_s': '1'}, ConfigError, ['record_s']),
    'target_fs_0': ([GOOD], {'target_fs': 0}, ConfigError, ['target_fs']),
    'target_fs_inf': ([GOOD], {'target_fs': float('inf')}, ConfigError, ['target_fs']),
    'target_fs_low': ([GOOD], {'target_fs': 1000.0}, ConfigError, ['signal.fs']),
    'split_not_1': ([GOOD] * 4, {'split': (0.5, 0.6, 0.9)}, ConfigError, ['sum to 1']),
    'split_two': ([GOOD] * 4, {'split': (0.5, 0.5)}, ConfigError, ['split']),
    'split_negative': ([GOOD] * 4, {'split': (1.2, -0.1, -0.1)}, ConfigError, ['split']),
    'split_nan': ([GOOD] * 4, {'split': (float('nan'), 0.5, 0.5)}, ConfigError, ['split']),
    'split_name': ([GOOD], {'split': 'training'}, ValueError, ['split must be one of']),
    'fs_zero': ([GOOD], {'fs_override': 0}, ValueError, ['sampling rates']),
    'labels_unknown': ([GOOD], {'labels': ['bearing_fire']}, ValueError, ['healthy']),
    'labels_count': ([GOOD, GOOD], {'labels': ['healthy']}, ValueError, ['labels']),
    'severity_9': ([GOOD], {'severity': 9}, ValueError, ['severity']),
    'missing_parent': ([GOOD], {'path': 'MISSING/sub/x.h5'}, FileNotFoundError, ['does not exist']),
    'target_is_folder': ([GOOD], {'path': '.'}, IsADirectoryError, ['folder']),
}


@pytest.mark.parametrize('name', list(IMPORTS))
def test_hostile_import(name, tmp_path):
    recs, kw, exc, words = IMPORTS[name]
    kw = dict(kw)
    if 'path' in kw: kw['path'] = tmp_path / kw['path']
    fs = kw.pop('fs_override', None)
    with pytest.raises(exc) as e:
        if fs is not None: import_recordings(recs, ['healthy'] * len(recs), fs, tmp_path / 'imp.h5', cfg=SMALL, progress=False)
        else: _import(tmp_path, recs, **kw)
    _bounded(e.value)
    for w in words: assert w in str(e.value), (w, str(e.value))
    _no_leftovers(tmp_path)


def test_import_existing_target_kept(tmp_path):
    target = tmp_path / 'notes.h5'
    target.write_bytes(b'precious')
    with pytest.raises(FileExistsError, match='overwrite=True'):
        _import(tmp_path, [GOOD], path=target)
    assert target.read_bytes() == b'precious'
    _import(tmp_path, [GOOD], path=target, overwrite=True)
    with open_dataset(target, verify=True) as ds: assert len(ds['test']) == 2
    _no_leftovers(tmp_path, {'notes.h5'})


def test_complex_recording_file(tmp_path):
    from lstm_pfd.data import load_recording
    np.save(tmp_path / 'c.npy', GOOD + 1j)
    with pytest.raises(ValueError, match='complex'):
        load_recording(tmp_path / 'c.npy')
    with pytest.raises(ValueError, match='complex'):
        _import(tmp_path, [str(tmp_path / 'c.npy')])
    _no_leftovers(tmp_path, {'c.npy'})


def test_valid_import_verifies(tmp_path):
    p = _import(tmp_path, [GOOD, GOOD * 2], labels=['healthy', 'imbalance'], meta={'speed_hz': [60.0, 59.0], 'site': ['a', 'b']})
    with open_dataset(p, verify=True) as ds:
        t = ds['test']
        assert len(t) == 4 and sorted(t.meta) == ['original_fs', 'segment', 'site', 'source_id', 'speed_hz']
    with h5py.File(p, 'r+') as f:                         # an edited label of an import: caught by the column digest
        lab = f['test/labels'][:]; lab[0] = 3; f['test/labels'][:] = lab
    with pytest.raises(DatasetError, match='edited'):
        open_dataset(p, verify=True)


# --------------------------------------------------------------------------- interruption

_BUILD = textwrap.dedent('''
    import sys
    from concurrent.futures import ProcessPoolExecutor
    from lstm_pfd.config import DataConfig
    from lstm_pfd.data import build_dataset
    cfg = DataConfig.preset('quick', {'dataset.records_per_class_severity': 60, 'dataset.batch_size': 4})
    workers = int(sys.argv[2])
    if workers:
        with ProcessPoolExecutor(workers) as ex: build_dataset(cfg, sys.argv[1], executor=ex, progress=False)
    else: build_dataset(cfg, sys.argv[1], progress=False)
''')


def _alive(pids):
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE: out.append(pid)
        except psutil.NoSuchProcess: pass
    return out


@pytest.mark.parametrize('workers,sig', [(2, signal.SIGTERM), (2, signal.SIGINT), (0, signal.SIGTERM)])
def test_interrupted_build_leaves_nothing(workers, sig, tmp_path):
    out = tmp_path / 'big.h5'
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    proc = subprocess.Popen([sys.executable, '-c', _BUILD, str(out), str(workers)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        parent, kids = psutil.Process(proc.pid), set()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:   # wait until the write is under way
            kids |= {c.pid for c in parent.children(recursive=True)}
            if list(tmp_path.glob('.big.h5.*.tmp')) and len(kids) >= workers: break
            time.sleep(0.05)
        assert proc.poll() is None, f'the build ended before it could be interrupted: {proc.communicate()}'
        time.sleep(0.5)                                                # some batches in flight
        kids |= {c.pid for c in parent.children(recursive=True)}
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None: proc.kill()
    assert proc.returncode != 0, err
    assert 'Traceback' not in err or 'KeyboardInterrupt' in err or 'SystemExit' in err, err
    assert len(kids) >= workers
    t_end = time.monotonic() + 10
    while _alive(kids) and time.monotonic() < t_end: time.sleep(0.2)
    assert _alive(kids) == [], f'workers still alive 10 s later: {_alive(kids)}'
    _no_leftovers(tmp_path)
