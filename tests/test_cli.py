"CLI smoke tests: the console script is installed and its subcommands behave."
import subprocess
import sys
from pathlib import Path

import yaml

from lstm_pfd.config import DataConfig


SCRIPT = Path(sys.executable).parent / 'lstm-pfd'  # the installed console script


def run(*args, **kw):
    assert SCRIPT.exists(), f'console script not installed at {SCRIPT}'
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, **kw)


def test_config_subcommand_prints_valid_yaml():
    r = run('config', '--preset', 'jbfd11')
    assert r.returncode == 0, r.stderr
    assert DataConfig.from_dict(yaml.safe_load(r.stdout)) == DataConfig.preset('jbfd11')


def test_bad_override_is_a_clear_error():
    r = run('config', '--set', 'signal.fs=100')
    assert r.returncode == 2
    assert 'signal.fs' in r.stderr and 'Traceback' not in r.stderr


def test_train_evaluate_export_predict_chain(tmp_path: Path):
    import numpy as np
    from lstm_pfd.data import open_dataset
    ds = tmp_path / 'd.h5'
    r = run('generate', '--preset', 'quick', '--set', 'dataset.records_per_class_severity=3', '--set', 'signal.duration_s=1.0',
            '--out', str(ds), '--no-progress')
    assert r.returncode == 0, r.stderr
    ck = tmp_path / 'm.pt'
    r = run('train', str(ds), '--epochs', '1', '--out', str(ck), '--no-progress')
    assert r.returncode == 0, r.stderr
    assert ck.exists() and 'validation' in r.stdout
    r = run('evaluate', str(ck), str(ds))
    assert r.returncode == 0, r.stderr
    rows = [l.split() for l in r.stdout.splitlines()[1:]]
    assert [row[0] for row in rows] == ['test', 'test_snr20', 'test_snr10', 'test_snr5']
    assert all(0 <= float(row[4]) <= 1 for row in rows)
    png = tmp_path / 'why.png'
    r = run('explain', str(ck), str(ds), '--record', '1', '--method', 'ig', '--out', str(png))
    assert r.returncode == 0, r.stderr
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and 'band alignment' in r.stdout
    r = run('explain', str(ck), str(ds), '--record', '999')
    assert r.returncode == 2 and 'out of range' in r.stderr and 'Traceback' not in r.stderr
    onnx = tmp_path / 'm.onnx'
    r = run('export', str(ck), '--out', str(onnx))
    assert r.returncode == 0, r.stderr
    with open_dataset(ds) as f:
        x, m = f['test'].record(0)
    np.save(tmp_path / 'r.npy', x)
    r = run('predict', str(onnx), str(tmp_path / 'r.npy'), '--fs', '10240', '--json')
    assert r.returncode == 0, r.stderr
    import json
    out = json.loads(r.stdout)
    assert abs(sum(out['probabilities'].values()) - 1) < 1e-4
    r = run('predict', str(onnx), str(tmp_path / 'r.npy'), '--fs', '20480')
    assert r.returncode == 2 and 'Traceback' not in r.stderr
    r = run('evaluate', str(ck), str(tmp_path / 'missing.h5'))
    assert r.returncode == 2 and 'missing.h5' in r.stderr
