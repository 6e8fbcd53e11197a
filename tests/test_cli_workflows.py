"The command line over multi-step workflows: experiment runs and sweeps, imports from your own rig (classes, groups, split column, SNR copies), fleet tracks."
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

SCRIPT = Path(sys.executable).parent / 'lstm-pfd'  # the installed console script
ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}


def run(*args):
    assert SCRIPT.exists(), f'console script not installed at {SCRIPT}'
    return subprocess.run([str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=ENV)


def one_line_error(r, *needles):
    "Exit status 2, one line on stderr naming every needle, no traceback."
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in r.stderr, r.stderr
    for n in needles: assert n in lines[0], (n, lines[0])


@pytest.fixture(scope='module')
def small(tmp_path_factory) -> Path:
    "A quick dataset: 3 records per class x severity slot, 1-s records."
    p = tmp_path_factory.mktemp('small') / 'small.h5'
    r = run('generate', '--set', 'dataset.records_per_class_severity=3', '--set', 'signal.duration_s=1.0', '--out', p, '--no-progress')
    assert r.returncode == 0, r.stderr
    return p


def _exp(small, **over) -> dict:
    from lstm_pfd.experiments import load_experiment
    base = {'data.path': str(small), 'data.preset': None, 'data.overrides': {}, 'eval.conditions': ['clean'], 'eval.xai_methods': []}
    return load_experiment('quick', {**base, **over}).to_dict()


def test_run_sweep_runs(small, tmp_path):
    exp = tmp_path / 'exp.yaml'; exp.write_text(yaml.safe_dump(_exp(small)))
    root = tmp_path / 'runs'
    r = run('run', exp, '--root', root, '--set', 'tags=[first]', '--no-progress')
    assert r.returncode == 0, r.stderr
    folder = Path(r.stdout.split()[0])
    assert folder.parent == root and json.loads((folder / 'run.json').read_text())['status'] == 'done'
    acc = float(next(l.split()[1] for l in r.stdout.splitlines() if l.strip().startswith('clean.record_acc')))
    assert 0 <= acc <= 1
    r2 = run('run', exp, '--root', root, '--set', 'tags=[first]', '--no-progress')   # same config and seed: the same folder, not rerun
    assert r2.returncode == 0 and Path(r2.stdout.split()[0]) == folder
    sw = tmp_path / 'sweep.yaml'
    sw.write_text(yaml.safe_dump({'base': _exp(small), 'grid': {'model.name': ['compact']}, 'seeds': [0, 1]}))
    r = run('sweep', sw, '--root', root, '--workers', 1)
    assert r.returncode == 0, r.stderr
    rows = [l.split() for l in r.stdout.splitlines()[1:]]
    assert [row[1:] for row in rows] == [['skipped', 'done'], ['ran', 'done']], r.stdout   # seed 0 is the run above (tags are not hashed)
    assert rows[0][0] == folder.name
    r = run('sweep', sw, '--root', root, '--workers', 1)
    assert [l.split()[1] for l in r.stdout.splitlines()[1:]] == ['skipped', 'skipped']
    r = run('runs', '--root', root, '--tag', 'first', '--columns', 'run_id,status,tags')
    assert r.returncode == 0 and r.stdout.count(folder.name) == 1 and len(r.stdout.strip().splitlines()) == 2, r.stdout
    r = run('runs', '--root', root, '--status', 'done')
    assert len(r.stdout.strip().splitlines()) == 3, r.stdout
    r = run('runs', '--root', root, '--where', 'train.seed == 1', '--save', 's1')
    assert r.returncode == 0 and 'saved search' in r.stdout and r.stdout.count('-s1-') == 1
    r = run('runs', '--root', root, '--search', 's1', '--columns', 'run_id')
    assert r.stdout.count('-s1-') == 1 and r.stdout.count('-s0-') == 0
    one_line_error(run('runs', '--root', root, '--search', 'nope'), 'nope')
    one_line_error(run('runs', '--root', root, '--where', 'train.seed >'), 'where')


def test_run_set_reads_numbers_as_yaml_1_2(small, tmp_path):
    "`--set train.lr=1e-3` is the float 0.001 (PyYAML alone reads 1e-3 as a string), the same parser as every --set."
    exp = tmp_path / 'exp.yaml'; exp.write_text(yaml.safe_dump(_exp(small)))
    r = run('run', exp, '--root', tmp_path / 'runs', '--set', 'train.lr=1e-3', '--set', 'train.weight_decay=1E-4', '--no-progress')
    assert r.returncode == 0, r.stderr
    cfg = json.loads((Path(r.stdout.split()[0]) / 'run.json').read_text())['config']['train']
    assert (cfg['lr'], cfg['weight_decay']) == (0.001, 0.0001) and isinstance(cfg['lr'], float)
    one_line_error(run('run', exp, '--root', tmp_path / 'runs', '--set', 'train.lr'), 'KEY=VALUE')


def test_run_and_sweep_refuse_bad_files(small, tmp_path):
    one_line_error(run('run', tmp_path / 'missing.yaml', '--root', tmp_path), 'missing.yaml', 'quick')
    bad = tmp_path / 'bad.yaml'; bad.write_text(yaml.safe_dump({**_exp(small), 'model': {'name': 'no_such_model'}}))
    one_line_error(run('run', bad, '--root', tmp_path), 'model')
    one_line_error(run('run', 'quick', '--set', 'train.epochs=-2', '--root', tmp_path), 'train.epochs')
    one_line_error(run('run', 'quick', '--set', 'noequals', '--root', tmp_path), 'noequals')
    sw = tmp_path / 'sw.yaml'
    sw.write_text(yaml.safe_dump({'base': _exp(small), 'grid': {}}))
    one_line_error(run('sweep', sw, '--root', tmp_path), 'grid')
    sw.write_text(yaml.safe_dump({'base': _exp(small), 'grid': {'train.nope': [1]}}))
    one_line_error(run('sweep', sw, '--root', tmp_path), 'grid.train.nope')
    one_line_error(run('sweep', tmp_path / 'none.yaml', '--root', tmp_path), 'none.yaml')
    assert not list(tmp_path.glob('*/run.json'))   # refused before anything ran
    r = run('sweep', sw, '--executor', 'nowhere')
    assert r.returncode == 2 and 'invalid choice' in r.stderr


def _rig(tmp_path, n=9, header='file,label,load'):
    "Nine 2-s recordings of a rig of its own: three classes, three loads (groups); rates from --fs."
    g = np.random.default_rng(0)
    lines = [header]
    for i in range(n):
        np.save(tmp_path / f'r{i}.npy', g.standard_normal(20480).astype(np.float32))
        lines.append(f"r{i}.npy,{('rub', 'whip', 'inner')[i % 3]},{i // 3 + 1}")
    (tmp_path / 'rig.csv').write_text('\n'.join(lines) + '\n')
    return tmp_path / 'rig.csv'


def test_import_own_classes_groups_and_snr(tmp_path):
    from lstm_pfd.data import open_dataset
    csv = _rig(tmp_path)
    out = tmp_path / 'rig.h5'
    r = run('import', csv, '--fs', 10240, '--group-column', 'load', '--split-by', 'group', '--test-groups', '3', '--val-groups', '2',
            '--classes', 'whip,rub,inner', '--snr-db', 10, 0, '--seed', 3, '--out', out, '--no-progress')
    assert r.returncode == 0, r.stderr
    with open_dataset(out) as ds:
        assert list(ds.fault_names) == ['whip', 'rub', 'inner']
        groups = {s: set(ds[s].meta['group'].astype(str)) for s in ('train', 'val', 'test')}
        assert groups == {'train': {'1'}, 'val': {'2'}, 'test': {'3'}}
        assert set(ds.conditions('test')) == {'clean', 'snr10', 'snr0'}
        assert sorted(set(ds['test'].labels.tolist())) == [0, 1, 2]
        assert (ds['train'].seed >= 0).all()
    r = run('train', out, '--epochs', 1, '--out', tmp_path / 'm.pt', '--no-progress')
    assert r.returncode == 0, r.stderr
    r = run('evaluate', tmp_path / 'm.pt', out, '--by-group')
    assert r.returncode == 0, r.stderr
    names = [l.split()[0] for l in r.stdout.splitlines()[1:]]
    assert names == ['clean', 'snr10', 'snr0', 'clean/group=3', 'snr10/group=3', 'snr0/group=3'], r.stdout


def test_import_split_column_digit_labels_and_severity_names(tmp_path):
    from lstm_pfd.data import open_dataset
    g = np.random.default_rng(1)
    rows = ['file,label,fs,severity,split']
    for i, (lab, sev, split) in enumerate([(0, 'incipient', 'train'), (1, '2', 'train'), (0, '1', 'val'), (1, 'incipient', 'test')]):
        np.save(tmp_path / f'x{i}.npy', g.standard_normal(20480).astype(np.float32))
        rows.append(f'x{i}.npy,{lab},10240,{sev},{split}')
    (tmp_path / 'l.csv').write_text('\n'.join(rows) + '\n')
    r = run('import', tmp_path / 'l.csv', '--out', tmp_path / 'd.h5', '--no-progress')
    assert r.returncode == 0, r.stderr
    with open_dataset(tmp_path / 'd.h5') as ds:
        assert list(ds.fault_names) == ['class_0', 'class_1']   # integer labels: classes by index
        assert [len(ds[s]) for s in ('train', 'val', 'test')] == [2, 1, 1]
        assert ds['train'].severity.tolist() == [0, 2]


def test_import_refusals_are_one_line(tmp_path):
    csv = _rig(tmp_path)
    one_line_error(run('import', csv, '--fs', 10240, '--group-column', 'day', '--out', tmp_path / 'a.h5'), 'day', 'load')
    one_line_error(run('import', csv, '--out', tmp_path / 'a.h5', '--no-progress'), "['load']", '--meta-columns')   # never dropped silently
    g = ('--group-column', 'load')
    one_line_error(run('import', csv, *g, '--out', tmp_path / 'a.h5', '--no-progress'), 'pass --fs')   # .npy gives no rate
    one_line_error(run('import', csv, *g, '--fs', 10240, '--classes', 'rub,whip', '--out', tmp_path / 'a.h5', '--no-progress'), 'inner')
    one_line_error(run('import', csv, *g, '--fs', 10240, '--split', 'half', '--out', tmp_path / 'a.h5'), '--split')
    assert not (tmp_path / 'a.h5').exists()


def test_predict_reads_the_rate_from_the_file(small, tmp_path):
    from scipy.io import wavfile
    from lstm_pfd.data import open_dataset
    r = run('train', small, '--epochs', 1, '--out', tmp_path / 'm.pt', '--no-progress')
    assert r.returncode == 0, r.stderr
    r = run('export', tmp_path / 'm.pt', '--out', tmp_path / 'm.onnx')
    assert r.returncode == 0, r.stderr
    with open_dataset(small) as ds: x, _ = ds['test'].record(0); fs = int(ds.fs)
    wavfile.write(tmp_path / 'r.wav', fs, x.astype(np.float32))
    r = run('predict', tmp_path / 'm.onnx', tmp_path / 'r.wav', '--json')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)['n_windows'] >= 1
    np.savetxt(tmp_path / 'r.csv', np.stack([np.zeros_like(x), x], 1), delimiter=',', header='t,acc', comments='')
    r = run('predict', tmp_path / 'm.onnx', tmp_path / 'r.csv', '--column', 'acc', '--fs', fs, '--json')
    assert r.returncode == 0, r.stderr
    np.save(tmp_path / 'r.npy', x)
    one_line_error(run('predict', tmp_path / 'm.onnx', tmp_path / 'r.npy'), '--fs')


@pytest.fixture(scope='module')
def fleet(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp('fleet') / 'f.h5'
    r = run('generate', '--preset', 'quick_fleet', '--out', p, '--no-progress')
    assert r.returncode == 0, r.stderr
    return p


def test_train_and_evaluate_on_a_track(fleet, tmp_path):
    from lstm_pfd.data import open_dataset
    with open_dataset(fleet) as ds:
        levels = [float(l) for l in ds.file.attrs['snr_db']]
        n_test = len(ds.table('test', track='new_machines'))
        n_stored = len(ds['test'])
    ck = tmp_path / 'm.pt'
    r = run('train', fleet, '--track', 'new_machines', '--epochs', 1, '--out', ck, '--no-progress')
    assert r.returncode == 0, r.stderr
    r = run('evaluate', ck, fleet, '--track', 'new_machines')
    assert r.returncode == 0, r.stderr
    rows = [l.split() for l in r.stdout.splitlines()[1:]]
    assert [row[0] for row in rows] == ['clean'] + [f'snr{l:g}' for l in levels]
    assert all(int(row[2]) == n_test for row in rows) and n_test != n_stored   # the track's test records, not the stored split's
    one_line_error(run('evaluate', ck, fleet, '--track', 'nope'), "'nope'", 'new_machines', 'iid')
    one_line_error(run('train', fleet, '--track', 'nope', '--out', tmp_path / 'x.pt'), 'new_machines')
    one_line_error(run('train', '--track', 'iid', '--out', tmp_path / 'x.pt'), 'dataset file')
