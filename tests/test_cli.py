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



def test_python_m_runs_the_cli():
    "`python -m lstm_pfd.cli` and `python -m lstm_pfd` are the console script: help, version, exit status 2 on a bad option."
    for mod in ('lstm_pfd.cli', 'lstm_pfd'):
        r = subprocess.run([sys.executable, '-m', mod, '--help'], capture_output=True, text=True)
        assert r.returncode == 0 and r.stdout.startswith('usage: lstm-pfd') and 'evaluate' in r.stdout, (mod, r.stdout, r.stderr)
        r = subprocess.run([sys.executable, '-m', mod, '--version'], capture_output=True, text=True)
        assert r.returncode == 0 and r.stdout.strip() == run('--version').stdout.strip(), (mod, r.stdout)
        r = subprocess.run([sys.executable, '-m', mod, 'evaluate', 'm.pt', 'd.h5', '--speed-source', 'exact'], capture_output=True, text=True)
        assert r.returncode == 2 and "invalid choice: 'exact'" in r.stderr, (mod, r.stderr)


def test_speed_rule_train_records_it_and_evaluate_follows(tmp_path):
    "train --speed-source tach on a tiny quick dataset records the rule; evaluate defaults to it and warns on another; a bad rule exits 2 naming the rules."
    from lstm_pfd.speed import SPEED_SOURCES
    from lstm_pfd.train import load_checkpoint
    ds, ck = tmp_path / 'd.h5', tmp_path / 'm.pt'
    r = run('generate', '--preset', 'quick', '--set', 'dataset.records_per_class_severity=3', '--set', 'signal.duration_s=1.0',
            '--out', str(ds), '--no-progress')
    assert r.returncode == 0, r.stderr
    r = run('train', str(ds), '--epochs', '1', '--speed-source', 'tach', '--out', str(ck), '--no-progress')
    assert r.returncode == 0, r.stderr
    info = load_checkpoint(ck)[1]
    assert (info['speed_source'], info['samples_per_rev']) == ('tach', None) and "speed rule 'tach'" in r.stdout
    r = run('evaluate', str(ck), str(ds))
    assert r.returncode == 0 and 'warning' not in r.stderr, r.stderr
    r = run('evaluate', str(ck), str(ds), '--speed-source', 'none')
    assert r.returncode == 0 and "trained with speed rule 'tach'" in r.stderr and "'none'" in r.stderr, r.stderr
    for cmd in (['train', str(ds)], ['evaluate', str(ck), str(ds)], ['cv', str(ds)]):
        r = run(*cmd, '--speed-source', 'exact')
        assert r.returncode == 2 and '--speed-source' in r.stderr and all(s in r.stderr for s in SPEED_SOURCES), r.stderr
    r = run('train', str(ds), '--epochs', '1', '--speed-source', 'none', '--order-domain', '--out', str(tmp_path / 'x.pt'))
    assert r.returncode == 2 and 'order_domain needs a speed' in r.stderr and not (tmp_path / 'x.pt').exists(), r.stderr


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
    assert [row[0] for row in rows] == ['clean', 'snr20', 'snr10', 'snr5']
    assert all(0 <= float(row[4]) <= 1 for row in rows)
    png = tmp_path / 'why.png'
    r = run('explain', str(ck), str(ds), '--record', '1', '--method', 'ig', '--out', str(png))
    assert r.returncode == 0, r.stderr
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and 'band alignment' in r.stdout
    before = png.read_bytes()
    r = run('explain', str(ck), str(ds), '--record', '2', '--out', str(png))           # no --force: refused, figure kept
    assert r.returncode == 2 and 'exists' in r.stderr and png.read_bytes() == before
    r = run('explain', str(ck), str(ds), '--record', '2', '--out', str(png), '--force')
    assert r.returncode == 0, r.stderr
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and sorted(p.name for p in tmp_path.glob('.why.png*')) == []
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


# ---------------------------------------------------------------- the parser explains itself

def _subparsers():
    from lstm_pfd.cli import build_parser
    ap = build_parser()
    sub = next(a for a in ap._actions if a.__class__.__name__ == '_SubParsersAction')
    return ap, sub.choices


def test_every_option_has_help_and_one_default_preset():
    from lstm_pfd.cli import DEFAULT_PRESET
    from lstm_pfd.config import PRESETS
    ap, subs = _subparsers()
    assert {'config', 'generate', 'import', 'train', 'evaluate', 'explain', 'export', 'predict', 'serve', 'demo', 'run', 'sweep', 'runs'} <= set(subs)
    for name, p in [('lstm-pfd', ap), *subs.items()]:
        for a in p._actions:
            if a.dest in ('help', 'command', 'version'): continue
            assert a.help and a.help.strip(), f'{name} {a.option_strings or a.dest} has no help text'
            if a.dest == 'preset':
                assert a.default == DEFAULT_PRESET and f'default: {DEFAULT_PRESET}' in a.help, name
                assert list(a.choices) == list(PRESETS), name


def test_choices_come_from_the_registries():
    from lstm_pfd.export import PRECISIONS
    from lstm_pfd.models import MODELS
    from lstm_pfd.xai import METHODS
    _, subs = _subparsers()
    opt = lambda cmd, dest: next(a for a in subs[cmd]._actions if a.dest == dest)
    assert list(opt('train', 'model').choices) == list(MODELS)
    assert list(opt('explain', 'method').choices) == list(METHODS)
    assert list(opt('export', 'quantize').choices) == [p for p in PRECISIONS if p != 'fp32']


def test_threads_on_every_computing_command():
    _, subs = _subparsers()
    for cmd in ('train', 'evaluate', 'explain', 'export', 'predict', 'serve', 'demo'):
        assert any(a.dest == 'threads' for a in subs[cmd]._actions), cmd
    r = run('train', '--threads', '0', '--out', 'never.pt')
    assert r.returncode == 2 and '--threads' in r.stderr and 'Traceback' not in r.stderr


def test_generate_refuses_a_protocol_with_empty_splits(tmp_path):
    r = run('generate', '--set', 'dataset.records_per_class_severity=2', '--out', str(tmp_path / 'x.h5'))
    assert r.returncode == 2 and 'at least 3 records per class x severity slot' in r.stderr, r.stderr
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------- the front door: demo, then serve its model

def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_demo_then_serve_its_model(tmp_path):
    "`lstm-pfd demo --out D` then `lstm-pfd serve D/model.onnx` (default exporter): zero window, real record, bad request."
    import json, math, time
    import httpx
    import numpy as np
    from lstm_pfd.data import open_dataset
    d = tmp_path / 'demo'
    r = run('demo', '--out', str(d), '--no-progress', timeout=1100)   # a hang guard under pytest's 1200-s limit, not a speed target
    assert r.returncode == 0, r.stderr[-3000:]
    model = d / 'model.onnx'
    from lstm_pfd.predict import read_metadata
    meta = read_metadata(model)
    assert meta['exporter'] == 'dynamo', meta['exporter']
    port = _free_port()
    log = open(tmp_path / 'serve.log', 'w')
    proc = subprocess.Popen([str(SCRIPT), 'serve', str(model), '--port', str(port)], stdout=log, stderr=subprocess.STDOUT)
    base = f'http://127.0.0.1:{port}'
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / 'serve.log').read_text()[-3000:]
            try:
                if httpx.get(base + '/health', timeout=1).status_code == 200: break
            except httpx.TransportError: pass
            assert time.monotonic() < deadline, 'the server did not start'
            time.sleep(0.3)
        L, fs = meta['window_len'], meta['fs']
        z = httpx.post(base + '/predict', json={'samples': [0.0] * (2 * L), 'fs': fs}, timeout=60)
        assert z.status_code == 200, z.text
        probs = z.json()['probabilities']
        assert all(math.isfinite(v) for v in probs.values()) and abs(sum(probs.values()) - 1) < 1e-4
        with open_dataset(d / 'dataset.h5') as ds:
            x, m = ds['test'].record(0)
            true = ds.fault_names[m['label']]
        rr = httpx.post(base + '/predict', json={'samples': np.asarray(x, float).tolist(), 'fs': fs}, timeout=60)
        assert rr.status_code == 200, rr.text
        out = rr.json()
        assert out['label'] in meta['class_names'] and out['n_windows'] == len(x) // L
        print(f'\nserved demo model: record of class {true} predicted {out["label"]} (p = {out["confidence"]:.3f})')
        bad = httpx.post(base + '/predict', json={'samples': 'not a list', 'fs': fs}, timeout=60)
        assert 400 <= bad.status_code < 500 and bad.json()['detail'], bad.text
    finally:
        proc.terminate()
        try: proc.wait(timeout=15)
        except subprocess.TimeoutExpired: proc.kill(); proc.wait()
        log.close()
    assert 'Traceback' not in (tmp_path / 'serve.log').read_text()
