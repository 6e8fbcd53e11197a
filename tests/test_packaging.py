"""The wheel ships the whole library: build it, install it with --no-deps into a clean venv, import
every submodule from there.

A wheel without subpackages or modules is a known failure of nbdev projects, so the expected module
list is discovered from the repo's lstm_pfd/ folder (modules added later are covered) and the wheel
must hold every one of them. The clean venv sees the dependencies (torch, numpy, ...) through a .pth
file pointing at the site-packages of the environment running pytest, but not the repo: the check
is that `lstm_pfd.__file__` lies inside the clean venv.
"""
from __future__ import annotations

import configparser
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CFG = configparser.ConfigParser(delimiters=['='])
CFG.read(ROOT / 'settings.ini', encoding='utf-8')
LIB = CFG['DEFAULT']['lib_name']
# optional modules: importable only when their extra is installed in the running environment
OPTIONAL_IMPORTS = {f'{LIB}.serve': 'fastapi'}


def repo_modules(root: Path = ROOT) -> list[str]:
    "Every module of the package under `root`, e.g. ['lstm_pfd', 'lstm_pfd.config', ...]."
    pkg = root / LIB
    mods = []
    for p in sorted(pkg.rglob('*.py')):
        rel = p.relative_to(root).with_suffix('')
        if '__pycache__' in rel.parts: continue
        parts = rel.parts[:-1] if rel.name == '__init__' else rel.parts
        mods.append('.'.join(parts))
    return sorted(set(mods))


def wheel_modules(names: list[str]) -> list[str]:
    mods = []
    for n in names:
        if not n.endswith('.py'): continue
        parts = Path(n).with_suffix('').parts
        if parts[-1] == '__init__': parts = parts[:-1]
        mods.append('.'.join(parts))
    return sorted(set(mods))


@pytest.fixture(scope='module')
def built(tmp_path_factory) -> tuple[Path, list[str]]:
    "The wheel, and the modules of the source snapshot it was built from (others may be exporting meanwhile)."
    out = tmp_path_factory.mktemp('wheel')
    # copy the sources (no .venv, .git, build outputs) so that building leaves the working tree untouched
    src = out / 'src'
    ignore = shutil.ignore_patterns('.git', '.venv*', 'build', 'dist', '*.egg-info', '__pycache__', '_proc',
                                    '_docs', 'docs', 'nbs', '.pytest_cache', '*.h5', '*.onnx', '*.pt', 'runs',
                                    'lstm_pfd_demo', '_artifacts')
    shutil.copytree(ROOT, src, ignore=ignore)  # tests/ stays in: the wheel must leave it out
    # offline when this environment can build wheels itself (setuptools>=70.1, or an older one with the
    # `wheel` package); otherwise pip's isolated build environment (fetches setuptools)
    probe = 'import setuptools\ntry: import setuptools.command.bdist_wheel\nexcept ImportError: import wheel'
    has_st = subprocess.run([sys.executable, '-c', probe], capture_output=True).returncode == 0
    r = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '-q', *(['--no-build-isolation'] * has_st),
                        '-w', str(out / 'dist'), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, f'pip wheel failed:\n{r.stdout}\n{r.stderr}'
    wheels = list((out / 'dist').glob(f'{LIB}-*.whl'))
    assert len(wheels) == 1, wheels
    return wheels[0], repo_modules(src)


@pytest.fixture(scope='module')
def wheel(built) -> Path: return built[0]


@pytest.fixture(scope='module')
def expected(built) -> list[str]: return built[1]


def test_wheel_holds_every_module_and_no_tests(wheel, expected):
    names = zipfile.ZipFile(wheel).namelist()
    shipped = wheel_modules(names)
    assert f'{LIB}.config' in expected  # the discovery itself works
    missing = sorted(set(expected) - set(shipped))
    assert not missing, f'the wheel misses modules: {missing}'
    tops = {n.split('/')[0] for n in names if not n.split('/')[0].endswith(('.dist-info', '.data'))}
    assert tops == {LIB}, f'the wheel should hold only the {LIB} package, not {sorted(tops - {LIB})}'
    assert not [n for n in names if n.startswith('tests/') or '/tests/' in n], 'tests shipped in the wheel'


def test_wheel_declares_console_script(wheel):
    z = zipfile.ZipFile(wheel)
    ep = next(n for n in z.namelist() if n.endswith('.dist-info/entry_points.txt'))
    eps = configparser.ConfigParser()
    eps.read_string(z.read(ep).decode())
    assert eps.has_section('console_scripts'), z.read(ep).decode()
    assert eps['console_scripts'].get('lstm-pfd', '').replace(' ', '') == f'{LIB}.cli:main'


def test_clean_venv_imports_every_submodule(wheel, expected, tmp_path):
    env_dir = tmp_path / 'venv'
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)  # ensurepip: offline
    py = env_dir / 'bin' / 'python'
    r = subprocess.run([str(py), '-m', 'pip', 'install', '--no-deps', '--no-index', '-q',
                        '--disable-pip-version-check', str(wheel)], capture_output=True, text=True)
    assert r.returncode == 0, f'pip install failed:\n{r.stdout}\n{r.stderr}'
    site = Path(subprocess.check_output([str(py), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                                        text=True).strip())
    # the dependencies (numpy, torch, ...) only: this environment's site-packages, appended after the clean
    # venv's own (a .pth file adds paths but does not run the .pth files there, e.g. an editable install's hook)
    deps = sorted({sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib']} - {str(ROOT)})
    (site / '_deps_from_test_env.pth').write_text('\n'.join(deps) + '\n')
    mods = expected
    script = f'''
import importlib, json, sys
import {LIB}
res = {{'file': {LIB}.__file__, 'path': sys.path, 'errors': {{}}}}
for m in {json.dumps(mods)}:
    try: importlib.import_module(m)
    except Exception as e: res['errors'][m] = repr(e)
print(json.dumps(res))
'''
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME', 'VIRTUAL_ENV')}
    env['MPLBACKEND'] = 'Agg'
    out = subprocess.run([str(py), '-I', '-c', script], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(res['file']).resolve().is_relative_to(env_dir.resolve()), \
        f'{LIB} imported from {res["file"]}, not from the clean venv'
    assert not any(p and Path(p).resolve() == ROOT for p in res['path']), 'the repo is on the clean venv sys.path'
    # optional parts whose extra is missing here too are not the wheel's fault
    errors = {m: e for m, e in res['errors'].items()
              if not (m in OPTIONAL_IMPORTS and importlib.util.find_spec(OPTIONAL_IMPORTS[m]) is None)}
    assert not errors, f'submodules failing to import from the installed wheel: {errors}'


def test_all_extra_holds_every_extra_and_jupyterlab(wheel):
    "`pip install lstm_pfd[all]` brings every optional part, JupyterLab and the kernel included (users work in JupyterLab)."
    import re
    z = zipfile.ZipFile(wheel)
    meta = z.read(next(n for n in z.namelist() if n.endswith('.dist-info/METADATA'))).decode()
    reqs: dict[str, set[str]] = {}
    for name, extra in re.findall(r'^Requires-Dist: ([A-Za-z0-9_.\-]+)[^;\n]*; extra == "([\w\-]+)"', meta, re.M):
        reqs.setdefault(extra, set()).add(name.lower())
    assert 'jupyter' in reqs, f'no `jupyter` extra in the wheel: {sorted(reqs)}'
    assert {'jupyterlab', 'ipykernel'} <= reqs['jupyter'], reqs['jupyter']
    runtime = {e for e in reqs if e not in ('all', 'dev')}
    missing = {e: sorted(reqs[e] - reqs.get('all', set())) for e in runtime if reqs[e] - reqs.get('all', set())}
    assert not missing, f'extras whose packages `all` lacks: {missing}'


STAR = {   # modules split by topic keep giving their public names to `from lstm_pfd.X import *` (notebook users' habit)
    'data': ['build_dataset', 'open_dataset', 'DatasetFile', 'WindowDataset', 'OnTheFlyDataset', 'import_recordings', 'record_plan'],
    'train': ['fit', 'evaluate', 'Evaluation', 'ClassicalBaseline', 'BASELINES', 'save_checkpoint', 'load_checkpoint'],
    'signals': ['generate', 'generate_batch', 'NOISE_LAYERS'],
    'config': ['DataConfig', 'PRESETS', 'parse_yaml', 'ConfigError'],
    'experiments': ['run_experiment', 'runs', 'parse_where', 'ExperimentConfig'],
    'serve': ['create_app', 'serve'],
    'explorers': ['SignalExplorer', 'ModelExplorer', 'RunsExplorer', 'OrbitExplorer'],
}


@pytest.mark.parametrize('module', sorted(STAR))
def test_star_import_gives_the_public_names(module):
    if module in ('serve', 'explorers'):
        pytest.importorskip('fastapi' if module == 'serve' else 'ipywidgets')
    ns = {}
    exec(f'from lstm_pfd.{module} import *', ns)
    missing = [n for n in STAR[module] if n not in ns]
    assert not missing, f'`from lstm_pfd.{module} import *` lacks {missing}'
