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


def test_demo_writes_config(tmp_path: Path):
    r = run('demo', '--out', str(tmp_path / 'demo'))
    assert r.returncode == 0, r.stderr
    assert DataConfig.from_yaml(tmp_path / 'demo' / 'config.yaml') == DataConfig.preset('quick')
