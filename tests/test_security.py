"""Security and reliability of the run catalogue, YAML reading, resuming, interruption, sweeps and file modes.

- run filters (`--where`, saved searches) are data: a hostile filter is refused with an error naming the token and
  never runs code (a marker file that each probe tries to create must not appear);
- YAML alias expansion is bounded wherever YAML is read (configs, experiments, sweeps, `--set`, saved searches);
- a checkpoint resumes only the run that wrote it;
- SIGTERM ends `run` and `sweep` cleanly: runs marked 'interrupted', no process left; a SIGKILL's temporary file is
  removed by the next write to the same target;
- the catalogue skips a bad run record with a warning naming it;
- bad sweep options are refused before anything starts;
- files are written with the user's umask, not mkstemp's 0600.
"""
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import lstm_pfd

from lstm_pfd.cli import main
from lstm_pfd.config import ConfigError, DataConfig, parse_sets, parse_yaml
from lstm_pfd.experiment_config import ExperimentConfig
from lstm_pfd.experiments import (SweepConfig, load_experiment, load_sweep, prepare_data, run_experiment,
                                  run_id, run_sweep, runs, save_search, searches)
from lstm_pfd.utils import atomic_write

pytestmark = pytest.mark.usefixtures('one_torch_thread')
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(Path(lstm_pfd.__file__).resolve().parents[1])}


def _record(run_id, model, seed, acc, status='done', tags=('bench',)):
    "A hand-written run record (the catalogue reads only run.json)."
    return {'run_id': run_id, 'status': status, 'tags': list(tags), 'config_hash': 'h' + run_id,
            'config': {'model': {'name': model, 'kwargs': {}}, 'train': {'seed': seed, 'lr': 0.001}, 'data': {'preset': 'quick'}},
            'metrics': {'clean.record_acc': acc, 'snr-5.record_acc': None if acc is None else acc / 2}}


@pytest.fixture
def catalogue(tmp_path):
    root = tmp_path / 'runs'
    for rec in [_record('a', 'compact', 0, 0.9), _record('b', 'cnn1d', 1, 0.5), _record('c', 'compact', 2, None, 'failed', ())]:
        (root / rec['run_id']).mkdir(parents=True)
        (root / rec['run_id'] / 'run.json').write_text(json.dumps(rec))
    return root


# --------------------------------------------------------------------------- 1. filters are data

GOOD = [  # filters written for the old pandas query keep their meaning
    ("model.name == 'compact' and clean.record_acc >= 0", ['a']),
    ("clean.record_acc > 0.6", ['a']),
    ("train.seed > 0", ['b', 'c']),
    ("train.lr < 0.005 and clean.record_acc > 0.4", ['a', 'b']),
    ("model.name in ['cnn1d', 'x']", ['b']),
    ("model.name not in ('cnn1d',)", ['a', 'c']),
    ("not (status == 'done')", ['c']),
    ("status == 'done' or train.seed == 2", ['a', 'b', 'c']),
    ("0 < train.seed <= 1", ['b']),
    ("`snr-5.record_acc` > 0.3", ['a']),
    ("clean.record_acc == None", ['c']),
    ("'bench' in tags", ['a', 'b']),
    ("train.seed == 1.0", ['b']),
    ("model.name == \"compact\"", ['a', 'c']),
]


@pytest.mark.parametrize('where, ids', GOOD)
def test_filters_keep_their_meaning(catalogue, where, ids):
    assert sorted(runs(catalogue, where=where)['run_id']) == ids


def _hostile(marker: Path) -> list[str]:
    "Filters that would run code (each tries to create `marker`) or reach outside the grammar."
    m = str(marker)
    sh = f"touch {m}"
    return [
        f"status == 'done' and @os.system('{sh}') == 0",
        f"@os.system('{sh}') == 0",
        f"status == 'done' and @pd.io.common.os.system('{sh}') == 0",
        f"@log.manager.root.handlers.__class__ == 1",
        f"__import__('os').system('{sh}') == 0",
        f"status == __import__('os').system('{sh}')",
        f"status.__class__.__mro__[1].__subclasses__() == 1",
        f"model.name.__class__ == 1",
        f"status.str.len() > 0",
        f"(lambda: __import__('os').system('{sh}'))() == 0",
        f"lambda x: x",
        f"f'{{__import__(\"os\").system(\"{sh}\")}}' == 1",
        f"status == f'done'",
        f"open('{m}', 'w').write('x') > 0",
        f"status == 'done' and open('{m}', 'w')",
        f"exec('import os; os.system(\"{sh}\")')",
        f"eval('1')",
        f"compile('1', 'x', 'eval')",
        f"globals()['os'].system('{sh}')",
        f"[c for c in ().__class__.__base__.__subclasses__()]",
        f"[x for x in status]",
        f"{{'a': 1}} == status",
        f"status == 'done'; import os; os.system('{sh}')",
        f"import os",
        f"status == 'done' if True else False",
        f"1 + 1 == 2",
        f"train.seed * 2 > 1",
        f"train.seed ** 99999999 > 1",
        f"~(status == 'done')",
        f"(status == 'done') & (train.seed > 0)",
        f"(status == 'done') | (train.seed > 0)",
        f"status = 'done'",
        f"status := 'done'",
        f"status is None",
        f"status == 'done' # comment",
        f"status == \"unterminated",
        f"status == 'done' and",
        f"and status == 'done'",
        f"(((status == 'done')",
        f"status == 'done'))",
        "(" * 200 + "status == 'done'" + ")" * 200,
        "status == 'done' and " * 200 + "True",
        f"status == 'x' or " + "x" * 5000,
        f"@__builtins__['__import__']('os').system('{sh}')",
        f"`status`.__class__ == 1",
        f"status == `__import__('os').system('{sh}')`",
        f"status == 0x10",
        f"status == 1j",
        f"status == b'done'",
        f"status == r'done'",
        f"status == u'done'",
        f"status[0] == 'd'",
        f"status.startswith('d')",
        f"def",
        f"yield 1",
        f"await status",
        f"status == \\x40",
        f"status == 'done' \\\n and 1",
        f"status == 'done' and @marker",
        f"@@@",
        f"status == 'done' and sys.modules['os'].system('{sh}') == 0",
        f"runs('.') == 1",
        f"status == None < 1",
        f"'a' in 'abc'",
    ]


def test_hostile_filters_are_refused_and_run_nothing(catalogue, tmp_path):
    marker = tmp_path / 'pwned'
    probes = _hostile(marker)
    assert len(probes) >= 40
    not_refused = []
    for w in probes:
        try: runs(catalogue, where=w)
        except ConfigError as e:
            msg = str(e)
            assert msg.startswith('where') and '\n' not in msg and len(msg) < 1000, (w, msg)
        else: not_refused.append(w)
        assert not marker.exists(), f'code ran: {w!r}'
    assert not_refused == []


@pytest.mark.parametrize('where, token', [
    ("status == 'done' and @os.system('id') == 0", '@os.system'),
    ("__import__('os').system('id') == 0", ".system"),
    ("__import__('os') == 0", "'('"),
    ("lambda: 0", 'lambda'),
    ("model.name.__class__ == 1", 'model.name.__class__'),
    ("train.seed >", 'end of the filter'),
    ("1 + 1 == 2", "'+'"),
])
def test_refusal_names_the_token(catalogue, where, token):
    with pytest.raises(ConfigError, match='where') as e: runs(catalogue, where=where)
    assert token in str(e.value)


def test_cli_where_refused_with_exit_2(catalogue, tmp_path, capsys):
    marker = tmp_path / 'pwned'
    for w in _hostile(marker)[:12]:
        assert main(['runs', '--root', str(catalogue), '--where', w]) == 2, w
        err = capsys.readouterr().err.strip()
        assert err.startswith('lstm-pfd runs: error: where') and '\n' not in err, err
    assert not marker.exists()
    assert main(['runs', '--root', str(catalogue), '--where', "clean.record_acc > 0.6", '--columns', 'run_id']) == 0
    assert capsys.readouterr().out.split() == ['run_id', 'a']


def test_saved_searches_are_checked_on_save_and_on_load(catalogue, tmp_path, capsys):
    marker = tmp_path / 'pwned'
    with pytest.raises(ConfigError, match='@os.system'):
        save_search(catalogue, 'evil', where=f"status == 'done' and @os.system('touch {marker}') == 0")
    assert not (catalogue / 'searches.yaml').exists()
    save_search(catalogue, 'good', where="clean.record_acc > 0.6", tags=['bench'])
    assert list(runs(catalogue, search='good')['run_id']) == ['a']
    # a searches.yaml planted in a shared run folder
    planted = {
        'where_code': f"evil: {{where: \"status == 'done' and @os.system('touch {marker}') == 0\"}}\n",
        'import_code': f"evil: {{where: \"__import__('os').system('touch {marker}') == 0\"}}\n",
        'python_tag': f"evil: !!python/object/apply:os.system ['touch {marker}']\n",
        'unknown_key': "evil: {where: 'status == 1', engine: python}\n",
        'bad_tags': "evil: {tags: {a: 1}}\n",
        'bad_name': "'../evil': {where: 'status == 1'}\n",
        'not_a_mapping': "- evil\n",
        'alias_bomb': 'evil: {tags: ' + _laughs(flow=True) + '}\n',
    }
    for why, text in planted.items():
        (catalogue / 'searches.yaml').write_text(text)
        with pytest.raises(ConfigError) as e: runs(catalogue, search='evil')
        assert 'searches.yaml' in str(e.value), (why, str(e.value))
        assert main(['runs', '--root', str(catalogue), '--search', 'evil']) == 2, why
        err = capsys.readouterr().err.strip()
        assert 'searches.yaml' in err and '\n' not in err, (why, err)
        assert not marker.exists(), why
    (catalogue / 'searches.yaml').unlink(); (catalogue / 'searches.yaml').mkdir()
    with pytest.raises(ConfigError, match='folder'): searches(catalogue)


# --------------------------------------------------------------------------- 3. YAML alias expansion bounded everywhere

def _laughs(levels=10, width=10, flow=False) -> str:
    "The billion laughs: `width ** levels` items from about 1 KB of YAML."
    if flow:
        defs = ['&l0 [' + ','.join(['lol'] * width) + ']'] + [f'&l{i} [' + ','.join([f'*l{i - 1}'] * width) + ']' for i in range(1, levels)]
        return '[' + ', '.join(defs) + ']'
    lines = ['l0: &l0 [' + ', '.join(['lol'] * width) + ']']
    lines += [f'l{i}: &l{i} [' + ', '.join([f'*l{i - 1}'] * width) + ']' for i in range(1, levels)]
    return '\n'.join(lines) + '\n'


@pytest.mark.timeout(60)
def test_billion_laughs_refused_everywhere(tmp_path):
    bomb = _laughs()
    assert len(bomb) < 1100
    kw = tmp_path / 'kwargs.yaml'; kw.write_text('model:\n  name: compact\n  kwargs:\n' + ''.join(f'    {l}\n' for l in bomb.splitlines()))
    ov = tmp_path / 'overrides.yaml'; ov.write_text('data:\n  preset: quick\n  overrides:\n' + ''.join(f'    {l}\n' for l in bomb.splitlines()))
    sw = tmp_path / 'sweep.yaml'; sw.write_text('grid:\n' + ''.join(f'  {l}\n' for l in bomb.splitlines()))
    cfg = tmp_path / 'data.yaml'; cfg.write_text('signal:\n' + ''.join(f'  {l}\n' for l in bomb.splitlines()))
    cases = [
        ('parse_yaml', lambda: parse_yaml(bomb, 'bomb.yaml')),
        ('DataConfig.from_yaml', lambda: DataConfig.from_yaml(cfg)),
        ('ExperimentConfig model.kwargs', lambda: ExperimentConfig.from_yaml(kw)),
        ('load_experiment data.overrides', lambda: load_experiment(ov)),
        ('load_sweep', lambda: load_sweep(sw)),
        ('--set', lambda: parse_sets(['model.kwargs=' + _laughs(flow=True)])),
    ]
    for name, f in cases:
        t = time.perf_counter()
        with pytest.raises(ConfigError, match='MAX_YAML_NODES') as e: f()
        assert len(str(e.value)) < 1000 and time.perf_counter() - t < 30, name
    with pytest.raises(ConfigError, match=r'model\.kwargs'): ExperimentConfig.from_yaml(kw)   # names the place
    assert main(['run', str(kw), '--root', str(tmp_path / 'runs')]) == 2
    assert not (tmp_path / 'runs').exists()


# --------------------------------------------------------------------------- 4. resume only your own run

@pytest.fixture(scope='module')
def data_file(tmp_path_factory):
    return prepare_data(load_experiment('quick', {'eval.conditions': ['clean']}), tmp_path_factory.mktemp('data'))


def _exp(data_file, **over):
    return load_experiment('quick', {'eval.conditions': ['clean'], 'eval.xai_methods': [], 'data.preset': None,
                                     'data.overrides': {}, 'data.path': str(data_file), **over})


def test_checkpoint_of_another_run_is_not_resumed(data_file, tmp_path):
    a, b = _exp(data_file, **{'train.lr': 0.001}), _exp(data_file, **{'train.lr': 0.005})
    da = run_experiment(a, tmp_path)
    db = tmp_path / run_id(b); db.mkdir()
    shutil.copy(da / 'checkpoint.pt', db / 'checkpoint.pt')        # another run's checkpoint in b's folder
    with pytest.raises(ValueError) as e: run_experiment(b, tmp_path)
    msg = str(e.value)
    assert 'another run' in msg and 'train.lr: 0.001 -> 0.005' in msg, msg
    hashes = [w.strip("',;()") for w in msg.split() if len(w.strip("',;()")) == 16]
    assert len(set(hashes)) >= 2, msg                               # both experiment hashes are named
    rj = json.loads((db / 'run.json').read_text())
    assert rj['status'] == 'failed' and 'resumed' not in rj


# --------------------------------------------------------------------------- 5. SIGTERM, and SIGKILL leftovers

def _alive(pids):
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE: out.append(pid)
        except psutil.NoSuchProcess: pass
    return out


def _start(args, until, timeout=120):
    "Start `python -m lstm_pfd.cli *args`; wait until `until()` holds; return (process, pids of its descendants)."
    proc = subprocess.Popen([sys.executable, '-c', 'import sys; from lstm_pfd.cli import main; sys.exit(main())', *map(str, args)],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    parent, kids, t_end = psutil.Process(proc.pid), set(), time.monotonic() + timeout
    while time.monotonic() < t_end and proc.poll() is None:
        try: kids |= {c.pid for c in parent.children(recursive=True)}
        except psutil.NoSuchProcess: break
        if until(): break
        time.sleep(0.1)
    assert proc.poll() is None, f'ended before it could be interrupted: {proc.communicate()}'
    kids |= {c.pid for c in parent.children(recursive=True)}
    return proc, kids


def _reap(pids):
    "Kill what a failed test left running (never processes this test did not start)."
    for pid in _alive(pids):
        try: psutil.Process(pid).kill()
        except psutil.NoSuchProcess: pass


def _status(d: Path):
    try: return json.loads((d / 'run.json').read_text())['status']
    except (OSError, ValueError, KeyError): return None


def _interrupt(proc, kids, timeout):
    "SIGTERM `proc`; `(stderr, descendants still alive 15 s later)`; whatever is left is killed."
    try:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=timeout)
        t_end = time.monotonic() + 15
        while _alive(kids) and time.monotonic() < t_end: time.sleep(0.2)
        return err, _alive(kids)
    finally:
        if proc.poll() is None: proc.kill()
        _reap(kids)


def test_sigterm_ends_a_run_cleanly(data_file, tmp_path):
    cfg = _exp(data_file, **{'train.epochs': 500, 'train.patience': None})
    spec = tmp_path / 'exp.yaml'; cfg.to_yaml(spec)
    d = tmp_path / 'runs' / run_id(cfg)
    proc, kids = _start(['run', spec, '--root', tmp_path / 'runs', '--no-progress'],
                        lambda: _status(d) == 'running' and (d / 'checkpoint.pt').exists())
    err, left = _interrupt(proc, kids, 60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert 'Traceback' not in err and 'interrupted' in err, err
    assert _status(d) == 'interrupted'
    assert left == []
    assert not list(d.glob('.*.tmp'))


def test_sigterm_ends_a_sweep_and_its_workers(data_file, tmp_path):
    base = _exp(data_file, **{'train.epochs': 500, 'train.patience': None})
    sw = SweepConfig.from_dict({'base': base.to_dict(), 'grid': {'train.lr': [0.001, 0.002]}, 'seeds': [0]})
    spec = tmp_path / 'sweep.yaml'; sw.to_yaml(spec)
    dirs = [tmp_path / 'runs' / run_id(c) for c in sw.experiments()]
    proc, kids = _start(['sweep', spec, '--root', tmp_path / 'runs', '--workers', 2],
                        lambda: all(_status(d) == 'running' for d in dirs), timeout=180)
    err, left = _interrupt(proc, kids, 90)
    assert len(kids) >= 2
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert 'Traceback' not in err, err
    assert [_status(d) for d in dirs] == ['interrupted'] * 2
    assert left == [], 'processes left behind (workers or resource tracker)'


_KILLED_WRITER = """
import os, sys, time
from lstm_pfd.utils import atomic_write
with atomic_write(sys.argv[1], overwrite=True) as t:
    t.write_text('half a file'); print('writing', flush=True); time.sleep(60)
"""


def test_sigkill_leftover_removed_by_the_next_write(tmp_path):
    target = tmp_path / 'run.json'
    target.write_text('{}')
    p = subprocess.Popen([sys.executable, '-c', _KILLED_WRITER, str(target)], env=ENV, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == 'writing'
    p.kill(); p.wait()
    left = list(tmp_path.glob('.run.json.*.tmp'))
    assert len(left) == 1 and target.read_text() == '{}'
    with atomic_write(target, overwrite=True) as t: t.write_text('{"a": 1}')
    assert list(tmp_path.glob('.run.json.*.tmp')) == [] and target.read_text() == '{"a": 1}'


def test_a_live_writers_temporary_file_is_kept(tmp_path):
    target = tmp_path / 'x.txt'
    with atomic_write(target) as t1:
        t1.write_text('one')
        with atomic_write(tmp_path / 'x.txt', overwrite=True) as t2: t2.write_text('two')   # same process: alive
        assert t1.exists()
    assert target.read_text() == 'one'


# --------------------------------------------------------------------------- 7. the catalogue skips a bad run record

def test_catalogue_skips_bad_run_records(catalogue, caplog):
    bad = {'list': '[1, 2]', 'string': '"done"', 'number': '3', 'null': 'null', 'config_list': json.dumps({'config': [1]}),
           'tags_int': json.dumps({'tags': 5}), 'metrics_str': json.dumps({'metrics': 'x'}), 'status_dict': json.dumps({'status': {}}),
           'not_json': '{"status": ', 'binary': b'\xff\xfe\x00'}
    for name, text in bad.items():
        (catalogue / name).mkdir()
        (catalogue / name / 'run.json').write_bytes(text if isinstance(text, bytes) else text.encode())
    (catalogue / 'folder' / 'run.json').mkdir(parents=True)
    with caplog.at_level(logging.WARNING, logger='lstm_pfd.experiments'):
        df = runs(catalogue)
    assert sorted(df['run_id']) == ['a', 'b', 'c']
    for name in [*bad, 'folder']:
        assert any(f'{name}/run.json' in r.getMessage() for r in caplog.records), name


# --------------------------------------------------------------------------- 8. sweep options refused before anything starts

@pytest.mark.parametrize('kw, word', [({'workers': 0}, 'workers'), ({'workers': -3}, 'workers'), ({'per_task': -1}, 'per_task'),
                                      ({'per_task': 0}, 'per_task')])
def test_bad_sweep_options_refused_up_front(kw, word, tmp_path):
    sw = {'base': load_experiment('quick').to_dict(), 'grid': {'train.lr': [0.1]}, 'seeds': [0]}
    with pytest.raises(ValueError, match=word): run_sweep(sw, tmp_path / 'runs', **kw)
    assert not (tmp_path / 'runs').exists()


@pytest.mark.timeout(120)
def test_oversized_grid_refused_up_front(tmp_path, capsys):
    spec = tmp_path / 'sweep.yaml'
    spec.write_text('grid: {train.lr: [' + ', '.join(['0.1'] * 300) + '], train.epochs: [' + ', '.join(map(str, range(1, 101))) + ']}\n'
                    'seeds: [0, 1]\n')
    t = time.perf_counter()
    with pytest.raises(ConfigError, match='MAX_SWEEP_RUNS'): run_sweep(spec, tmp_path / 'runs')
    assert time.perf_counter() - t < 10
    assert main(['sweep', str(spec), '--root', str(tmp_path / 'runs')]) == 2
    assert 'MAX_SWEEP_RUNS' in capsys.readouterr().err
    for opt in (['--workers', '0'], ['--per-task', '-2']):
        small = tmp_path / 'small.yaml'; small.write_text('grid: {train.lr: [0.1]}\n')
        assert main(['sweep', str(small), '--root', str(tmp_path / 'runs'), *opt]) == 2
        assert opt[0].lstrip('-').replace('-', '_') in capsys.readouterr().err
    assert not (tmp_path / 'runs').exists()


# --------------------------------------------------------------------------- 9. files get the user's umask

def test_files_get_the_umask_mode(data_file, tmp_path):
    import torch
    from lstm_pfd.data import build_dataset
    from lstm_pfd.export import to_onnx
    from lstm_pfd.models import create_model
    from lstm_pfd.train import save_checkpoint
    old = os.umask(0o022)
    try:
        h5 = build_dataset(DataConfig.preset('quick', {'dataset.records_per_class_severity': 1, 'signal.duration_s': 1.0}),
                           tmp_path / 'd.h5', progress=False)
        model = create_model('compact', n_classes=11)
        ck = save_checkpoint(tmp_path / 'm.pt', model)
        onnx_path = tmp_path / 'm.onnx'; to_onnx(model, onnx_path, window_len=1024, exporter='torchscript')
        d = run_experiment(_exp(data_file), tmp_path / 'runs')
        files = [h5, ck, Path(onnx_path), d / 'run.json', d / 'checkpoint.pt', d / 'metrics.json']
        modes = {f.name: oct(f.stat().st_mode & 0o777) for f in files}
        assert set(modes.values()) == {oct(0o644)}, modes
        os.umask(0o077)
        with atomic_write(tmp_path / 'private.txt') as t: t.write_text('x')
        assert oct((tmp_path / 'private.txt').stat().st_mode & 0o777) == oct(0o600)
    finally:
        os.umask(old)


def test_a_swallowed_signal_exception_stays_silent_and_is_raised_again():
    "A SIGTERM that lands inside a weakref callback is swallowed by Python: no traceback is printed, and `check()` raises it."
    code = """
import gc, os, signal, sys, weakref
from lstm_pfd.data import _SignalGuard
class A: pass
g = _SignalGuard()
a = A(); d = weakref.WeakValueDictionary({1: a})
class Hit:
    def __del__(self): os.kill(os.getpid(), signal.SIGTERM)   # the signal arrives inside a finaliser
h = Hit(); del h
try: g.check()
except SystemExit as e: print('raised', e.code); sys.exit(0)
print('not raised')
"""
    r = subprocess.run([sys.executable, '-c', code], env=ENV, capture_output=True, text=True, timeout=60)
    assert 'Traceback' not in r.stderr and 'Exception ignored' not in r.stderr, r.stderr
    assert r.stdout.strip() == f'raised {128 + signal.SIGTERM}', (r.stdout, r.stderr)
