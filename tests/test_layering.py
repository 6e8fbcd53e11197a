"""The package's layering, read from the source (function-local imports included): no module imports a higher one.

The layers are those of CONTRIBUTING.md ("Architecture"). A new module must be placed in `LAYERS` explicitly."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / 'lstm_pfd'

# rank of each module: a module may import only modules of a strictly lower rank
LAYERS = {
    'utils': 0, 'plotting': 0,                 # no lstm_pfd imports
    'configbase': 0.5,                         # ConfigError, the YAML reader, BaseConfig: no lstm_pfd imports
    'config': 1,                               # the data protocol only
    'train_config': 1,                         # TrainConfig and the names that check it: configbase only, no torch
    'physics': 2, 'rotor': 3, 'fleet': 4,
    'render': 4.3, 'noise': 4.6,               # the generator's rendering engine (plan, workspace, RecordState) and noise layers
    'signals': 5, 'orbits': 6, 'shaft': 6,
    'speed': 6.5,                              # the speed rule, its estimators and order resampling: uses orbits' keyphasor
    'plan': 6.6, 'tracks': 6.7,                # the record plan, SNR copies; a fleet's tracks (numpy, h5py writing)
    'store': 6.8, 'windows': 6.85,             # dataset files; windows, torch datasets, on-the-fly data
    'recordings': 6.9,                         # users' recording files, their import and grouped splits
    'data': 7, 'datasets': 8,                  # data: the entry point re-exporting the five above; datasets: readers of public datasets
    'models': 8, 'checkpoint': 8.2, 'evaluation': 8.5,  # checkpoint files; the dataset contract and evaluation
    'baselines': 9, 'train': 10, 'xai': 11, 'finetune': 11, 'export': 12,
    'shift': 11,                               # learning under shift: transfer-path augmentation, AdaBN (on fit, fleet, evaluation)
    'experiment_config': 13,                   # checked against the registries of models, train and xai
    'predict': 1,                              # the torch-free runtime: utils only (checked below)
    'runs': 19,                                # the run catalogue (run folders, filters, saved searches): re-exported by experiments
    'service_limits': 19, 'service_schema': 19.5,  # the service's request limits (no lstm_pfd imports) and wire contract
    'experiments': 20, 'serve': 20,            # applications on top of the library
    'tune': 20.2,                              # hyperparameter tuning (Optuna): trials are experiment runs
    'explorer_base': 20.5,                     # the explorers' shared plumbing: spectra, figures, layout, the base class
    'signal_explorers': 20.7, 'model_explorers': 20.7, 'training_explorers': 20.7, 'orbit_explorer': 20.7,
    'explorers': 21, 'demo': 22,
    'commands': 22.5,                          # the command registry, shared options, data and model commands
    'cli': 23,
    '__main__': 24,                            # `python -m lstm_pfd`: runs cli.main
}
ONLY = {'predict': {'utils'}, 'train_config': {'configbase'}}  # modules whose lstm_pfd imports are restricted to a set


def _modules() -> dict[str, Path]:
    return {p.stem: p for p in PKG.glob('*.py') if p.stem not in ('__init__', '_modidx')}


def _imports(path: Path) -> set[str]:
    "The lstm_pfd modules `path` imports anywhere (module level or inside functions)."
    mods, out = set(_modules()), set()
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, ast.ImportFrom):
            base = n.module or ''
            if n.level: base = 'lstm_pfd' + ('.' + base if base else '')
            if base == 'lstm_pfd': cands = [a.name for a in n.names]
            elif base.startswith('lstm_pfd.'): cands = [base.split('.')[1]]
            else: continue
        elif isinstance(n, ast.Import):
            cands = [a.name.split('.')[1] for a in n.names if a.name.startswith('lstm_pfd.')]
        else: continue
        out |= {c for c in cands if c in mods}
    return out - {path.stem}


def test_every_module_is_placed():
    unknown = sorted(set(_modules()) - set(LAYERS))
    assert not unknown, f"modules without a layer: {unknown}; add them to LAYERS in tests/test_layering.py and CONTRIBUTING.md"


@pytest.mark.parametrize('name', sorted(_modules()))
def test_no_upward_import(name):
    if name not in LAYERS: pytest.skip('unplaced (see test_every_module_is_placed)')
    imports = _imports(_modules()[name])
    up = sorted(m for m in imports if LAYERS.get(m, 99) >= LAYERS[name])
    assert not up, f"lstm_pfd.{name} (layer {LAYERS[name]}) imports {up} (layers {[LAYERS.get(m) for m in up]}): not lower"
    if name in ONLY: assert imports <= ONLY[name], f"lstm_pfd.{name} may import only {sorted(ONLY[name])}; imports {sorted(imports)}"


def test_checker_sees_function_local_imports(tmp_path):
    p = tmp_path / 'config.py'
    p.write_text("def f():\n    from lstm_pfd.models import MODELS\n    from . import xai\n    import lstm_pfd.train\n")
    assert _imports(p) == {'models', 'xai', 'train'}


def test_predict_loads_neither_torch_nor_h5py():
    code = "import sys, lstm_pfd.predict; print(sorted(m for m in ('torch', 'h5py', 'lstm_pfd.data') if m in sys.modules))"
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == '[]', f"import lstm_pfd.predict loaded {out}"


def test_train_config_loads_no_torch():
    "TrainConfig is read and checked without torch (experiment configs, the CLI's parsing)."
    code = "import sys, lstm_pfd.train_config; print(sorted(m for m in ('torch', 'lstm_pfd.train') if m in sys.modules))"
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == '[]', f"import lstm_pfd.train_config loaded {out}"


def test_contributing_module_map_lists_every_notebook():
    "CONTRIBUTING.md's module map names every numbered notebook with its module (a split must update it)."
    text = (PKG.parent / 'CONTRIBUTING.md').read_text()
    nbs = sorted((PKG.parent / 'nbs').glob('[0-9]*_*.ipynb'))
    missing = [p.name for p in nbs if f'nbs/{p.name}' not in text]
    assert not missing, f'CONTRIBUTING.md "Module map" lacks {missing}'
