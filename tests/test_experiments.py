"Experiments: run folders resume and are not repeated; sweeps give the same metrics on every executor; bad files are refused."
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from lstm_pfd.config import ConfigError
from lstm_pfd.data import open_dataset
from lstm_pfd.experiments import ExperimentConfig
from lstm_pfd.experiments import (SweepConfig, dataset_path, leaderboard, load_experiment, log_to_mlflow, prepare_data,
                                  run_experiment, run_id, run_status, run_sweep, runs, xai_results)

pytestmark = pytest.mark.usefixtures('one_torch_thread')
os.environ.setdefault('OMP_NUM_THREADS', '1')


def _quick(**over):
    return load_experiment('quick', {'eval.conditions': ['clean'], **over})


@pytest.fixture(scope='module')
def data_file(tmp_path_factory):
    "One quick dataset shared by the tests (runs point at it with data.path)."
    root = tmp_path_factory.mktemp('data')
    return prepare_data(_quick(), root)


def _sweep(data_file, models=('compact', 'cnn1d'), seeds=(0, 1, 2)):
    base = _quick(**{'data.preset': None, 'data.overrides': {}, 'data.path': str(data_file)})
    return SweepConfig.from_dict({'base': base.to_dict(), 'grid': {'model.name': list(models)}, 'seeds': list(seeds)})


def _metrics(root):
    df = runs(root).sort_values('run_id')
    return df[['run_id', 'clean.record_acc', 'clean.window_acc', 'clean.loss']].reset_index(drop=True)


def test_sweep_backends_identical_and_rerun_skips(data_file, tmp_path):
    sw = _sweep(data_file)
    ids = sorted(run_id(c) for c in sw.experiments())
    assert len(ids) == 6
    res = run_sweep(sw, tmp_path / 'local', executor='local', workers=2)
    assert list(res['action']) == ['ran'] * 6 and set(res['status']) == {'done'}
    ref = _metrics(tmp_path / 'local')
    assert sorted(ref['run_id']) == ids
    for name, kw in [('dask', dict(executor='dask', workers=2)), ('slurm', dict(executor='slurm', slurm={'cluster': 'local'}, per_task=3))]:
        run_sweep(sw, tmp_path / name, **kw)
        got = _metrics(tmp_path / name)
        assert got['run_id'].tolist() == ref['run_id'].tolist()
        np.testing.assert_array_equal(got.drop(columns='run_id').to_numpy(), ref.drop(columns='run_id').to_numpy(), err_msg=name)
    # rerun: nothing to do
    assert set(run_sweep(sw, tmp_path / 'local', executor='local')['action']) == {'skipped'}


def test_killed_sweep_reruns_only_missing(data_file, tmp_path):
    sw = _sweep(data_file, models=('compact',), seeds=(0, 1, 2))
    cfgs = sw.experiments()
    root = tmp_path / 'r'
    # "killed halfway": the first run finished, the second died mid-run (status still 'running'), the third never started
    run_experiment(cfgs[0], root)
    d1 = run_experiment(cfgs[1], root)
    rj = json.loads((d1 / 'run.json').read_text()); rj['status'] = 'running'
    (d1 / 'run.json').write_text(json.dumps(rj))
    for f in ('metrics.json', 'xai.json'): (d1 / f).unlink()
    done_before = (root / run_id(cfgs[0]) / 'run.json').read_text()
    res = run_sweep(sw, root, executor='local', workers=1).set_index('run_id')
    assert res.loc[run_id(cfgs[0]), 'action'] == 'skipped'
    assert res.loc[run_id(cfgs[1]), 'action'] == 'ran' and res.loc[run_id(cfgs[2]), 'action'] == 'ran'
    assert (root / run_id(cfgs[0]) / 'run.json').read_text() == done_before
    assert all(run_status(root / run_id(c)) == 'done' for c in cfgs)


def test_interrupted_run_resumes_from_checkpoint(data_file, tmp_path, monkeypatch):
    import lstm_pfd.train as train
    base = dict(**{'data.preset': None, 'data.overrides': {}, 'data.path': str(data_file), 'train.patience': None})
    full = run_experiment(_quick(**base, **{'train.epochs': 2}), tmp_path / 'full')
    # an interrupted run: stopped (Ctrl-C) in its second epoch, so its checkpoint holds epoch 1 of 2
    cfg = _quick(**base, **{'train.epochs': 2})
    part = tmp_path / 'part'
    real = train._run_epoch
    def stop_in_second_epoch(epoch, *a, **kw):
        if epoch == 1: raise KeyboardInterrupt
        return real(epoch, *a, **kw)
    monkeypatch.setattr(train, '_run_epoch', stop_in_second_epoch)
    with pytest.raises(KeyboardInterrupt): run_experiment(cfg, part)
    d = part / run_id(cfg)
    assert run_status(d) == 'interrupted' and (d / 'checkpoint.pt').exists()
    monkeypatch.setattr(train, '_run_epoch', real)
    out = run_experiment(cfg, part)
    assert out == d and json.loads((d / 'run.json').read_text())['resumed'] is True
    h_full = json.loads((full / 'history.json').read_text())
    h_res = json.loads((d / 'history.json').read_text())
    assert [h['epoch'] for h in h_res] == [0, 1]
    np.testing.assert_allclose([h['train_loss'] for h in h_res], [h['train_loss'] for h in h_full], rtol=1e-6)
    a = json.loads((full / 'run.json').read_text())['metrics']; b = json.loads((d / 'run.json').read_text())['metrics']
    assert a['clean.record_acc'] == b['clean.record_acc']


@pytest.mark.parametrize('bad, field', [
    ({'base': {'model': {'name': 'nope'}}, 'grid': {'train.lr': [0.1]}}, 'base.model.name'),
    ({'base': {'model': {'name': 'compact', 'kwargs': {'hidden_size': 8}}}, 'grid': {'train.lr': [0.1]}}, 'base.model.kwargs.hidden_size'),
    ({'grid': {'train.lrr': [0.1]}}, 'grid.train.lrr'),
    ({'grid': {}}, 'grid'),
    ({'grid': {'train.epochs': [1, -2]}}, 'grid.train.epochs'),
    ({'base': {'train': {'epochs': -1}}, 'grid': {'train.lr': [0.1]}}, 'base.train.epochs'),
    ({'grid': {'model.kwargs': [{'nope': 1}]}}, 'grid.model.kwargs.nope'),
    ({'grid': {'train.lr': [0.1]}, 'seeds': []}, 'seeds'),
])
def test_bad_sweep_refused_before_anything_runs(bad, field, tmp_path):
    p = tmp_path / 'sweep.yaml'
    import yaml
    p.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError) as e: run_sweep(p, tmp_path / 'runs')
    assert e.value.field == field
    assert not (tmp_path / 'runs').exists()


@pytest.mark.parametrize('bad, field', [
    ({'model': {'name': 'resnet'}}, 'model.name'), ({'model': {'kwargs': {'n_classes': 3}}}, 'model.kwargs.n_classes'),
    ({'train': {'epochs': -5}}, 'train.epochs'), ({'train': {'optimizer': 'lion'}}, 'train.optimizer'),
    ({'data': {'preset': 'nope'}}, 'data.preset'), ({'eval': {'conditions': ['snr']}}, 'eval.conditions'),
    ({'eval': {'xai_methods': ['lime']}}, 'eval.xai_methods'), ({'data': {'preset': 'quick', 'track': 'weird'}}, 'data.track'), ({'data': {'preset': 'quick', 'path': 'x.h5'}}, 'data.preset'),
])
def test_bad_experiment_refused(bad, field, tmp_path):
    p = tmp_path / 'exp.yaml'
    import yaml
    p.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError) as e: run_experiment(p, tmp_path / 'runs')
    assert e.value.field == field
    assert not (tmp_path / 'runs').exists()


def test_missing_condition_refused_before_training(data_file, tmp_path):
    cfg = _quick(**{'data.preset': None, 'data.overrides': {}, 'data.path': str(data_file), 'eval.conditions': ['clean', 'snr7']})
    with pytest.raises(ConfigError, match='eval.conditions'): run_experiment(cfg, tmp_path)
    d = tmp_path / run_id(cfg)
    assert run_status(d) == 'failed' and not (d / 'checkpoint.pt').exists()


def test_xai_summary_and_leaderboard_mcnemar(data_file, tmp_path):
    base = {'data.preset': None, 'data.overrides': {}, 'data.path': str(data_file), 'eval.xai_methods': ['gradcam'], 'eval.xai_records': 1}
    for m in ('compact', 'cnn1d'):
        for s in (0, 1):
            run_experiment(_quick(**base, **{'model.name': m, 'train.seed': s}), tmp_path)
    x = xai_results(tmp_path)
    n_cls = len(json.loads(next(tmp_path.glob('*/metrics.json')).read_text())['class_names'])
    assert len(x) == 4 * n_cls and set(x['method']) == {'gradcam'}
    assert x['auc_deletion'].notna().all()
    lb = leaderboard(runs(tmp_path), by=['model'])
    assert lb.table['n'].tolist() == [2, 2]
    assert len(lb.mcnemar) == 2 and (lb.mcnemar['pvalue'].between(0, 1)).all()
    top = lb.table['model.name'].iloc[0]
    assert lb.mcnemar['a'].iloc[0] == top


def test_mlflow_reads_run_back(data_file, tmp_path, monkeypatch):
    mlflow = pytest.importorskip('mlflow')
    d = run_experiment(_quick(**{'data.preset': None, 'data.overrides': {}, 'data.path': str(data_file), 'train.epochs': 2,
                                 'train.patience': None, 'tags': ['mlf']}), tmp_path / 'runs')
    try:
        import sqlalchemy, alembic  # noqa: F401,E401  (the full mlflow: a SQLite store)
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    except ImportError:    # mlflow-skinny: the local file store (opt-in since mlflow 3)
        monkeypatch.setenv('MLFLOW_ALLOW_FILE_STORE', 'true')
        uri = (tmp_path / 'mlruns').as_uri()
    rid = log_to_mlflow(d, uri)
    from mlflow.tracking import MlflowClient
    c = MlflowClient(tracking_uri=uri)
    r = c.get_run(rid)
    rj = json.loads((d / 'run.json').read_text())
    assert r.data.params['model.name'] == 'compact' and r.data.params['train.epochs'] == '2'
    assert r.data.tags['lstm_pfd.run_id'] == d.name and r.data.tags['tag.mlf'] == '1'
    assert r.data.metrics['clean.record_acc'] == pytest.approx(rj['metrics']['clean.record_acc'])
    hist = c.get_metric_history(rid, 'train_loss')
    assert [m.step for m in sorted(hist, key=lambda m: m.step)] == [0, 1]
    arts = {a.path for a in c.list_artifacts(rid)}
    assert {'run.json', 'metrics.json', 'config.yaml'} <= arts


def test_datasets_catalogue_lists_imported_file_with_provenance(tmp_path):
    from lstm_pfd.data import import_recordings
    from lstm_pfd.experiments import datasets
    rng = np.random.default_rng(0)
    recs = [rng.standard_normal(20480).astype(np.float32) for _ in range(2)]
    (tmp_path / 'imported').mkdir()
    import_recordings(recs, ['healthy', 'imbalance'], 10240.0, tmp_path / 'imported' / 'plant.h5',
                      record_ids=['pump_a', 'pump_b'], record_s=1.0, target_fs=10240.0, progress=False)
    df = datasets(tmp_path)
    assert len(df) == 1
    row = df.iloc[0]
    assert row['source'] == 'external' and row['source_ids'] == ['pump_a', 'pump_b']
    assert row['n_runs'] == 0 and row['records']['test'] >= 2


def test_figures_are_made_without_pyplot(tmp_path):
    """The leaderboard plot and the run figures saved by a run are drawn without importing pyplot (no global figure
    state) and show as PNG images in a notebook."""
    import subprocess, sys, textwrap
    code = textwrap.dedent("""
        import sys
        import pandas as pd
        from lstm_pfd.experiments import leaderboard
        df = pd.DataFrame({'status': 'done', 'model.name': ['a'] * 2 + ['b'] * 2, 'train.seed': [0, 1] * 2,
                           'clean.record_acc': [0.6, 0.8, 0.5, 0.5]})
        fig = leaderboard(df, by=['model'], mcnemar=False).plot()
        assert fig._repr_png_()[:8] == b'\\x89PNG\\r\\n\\x1a\\n'
        assert len(fig.axes[0].patches) == 2, fig.axes[0].patches
        assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'
        """)
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=tmp_path,
                       env={k: v for k, v in os.environ.items() if k != 'MPLBACKEND'})
    assert r.returncode == 0, r.stderr[-2000:]


def test_a_fleet_track_is_trained_and_tested_on_its_own_sides(tmp_path):
    exp = _quick(**{'data.preset': 'quick_fleet', 'data.track': 'new_machines', 'eval.conditions': ['clean', 'snr5']})
    d = run_experiment(exp, tmp_path)
    rj, m = (json.loads((d / f).read_text()) for f in ('run.json', 'metrics.json'))
    assert rj['status'] == 'done' and rj['dataset']['track'] == 'new_machines'
    with open_dataset(prepare_data(exp, tmp_path)) as ds:
        test, iid = ds.table('test', track='new_machines'), ds['test']
        test_machines = set(test.meta['machine_id'].tolist())
        assert test_machines < set(iid.meta['machine_id'].tolist())           # a proper subset: machines held out
        assert not test_machines & set(ds.table('train', track='new_machines').meta['machine_id'].tolist())
    assert sorted(m['records']['record_ids']) == sorted(test.record_index.tolist())


def test_a_track_the_file_lacks_is_refused(data_file, tmp_path):
    exp = _quick(**{'data.preset': None, 'data.overrides': {}, 'data.path': str(data_file), 'data.track': 'new_machines'})
    with pytest.raises(ConfigError, match='data.track'): run_experiment(exp, tmp_path)


def test_run_identity_follows_the_data_file(data_file, tmp_path):
    "Another file at the same path (same config, other records) is another run, never 'done before'."
    p = tmp_path / 'd.h5'; shutil.copy(data_file, p)
    exp = _quick(**{'data.preset': None, 'data.overrides': {}, 'data.path': str(p)})
    before = run_id(exp)
    import h5py
    with h5py.File(p, 'r+') as f: f.attrs['generator_version'] = 1   # as a file from an older generator
    assert run_id(exp) != before


def test_a_feature_baseline_runs_as_an_experiment_through_the_feature_cache_hook(data_file, tmp_path):
    calls = []
    def cache(name, condition, windows, featurize):
        calls.append((name, condition)); return featurize(windows)
    exp = _quick(**{'data.preset': None, 'data.overrides': {}, 'data.path': str(data_file), 'model.name': 'classical',
                    'model.kwargs': {'n_estimators': 20}})
    a = run_experiment(exp, tmp_path / 'a', feature_cache=cache)
    b = run_experiment(exp, tmp_path / 'b')                      # no hook: the baseline computes its own features
    assert calls == [('ClassicalBaseline', 'clean')] * 2          # training windows, then the clean test windows
    ra, rb = (json.loads((d / 'run.json').read_text()) for d in (a, b))
    assert ra['status'] == rb['status'] == 'done' and ra['params'] is None and ra['metrics'] == rb['metrics']
    with pytest.raises(ConfigError, match='model.kwargs.depth'): _quick(**{'model.name': 'classical', 'model.kwargs': {'depth': 3}})


def test_the_feature_cache_keeps_feature_sets_apart():
    "Baselines on other feature sets never share cached features (the accelerometer set keeps its old name)."
    from lstm_pfd.experiments import _features
    from lstm_pfd.train import ClassicalBaseline
    names = []
    for fs in ('accel', 'orbit', 'both'):
        _features(lambda name, condition, windows, featurize: names.append(name), ClassicalBaseline(features=fs), 'clean', None)
    assert names == ['ClassicalBaseline', 'ClassicalBaseline[orbit]', 'ClassicalBaseline[both]']


def test_order_domain_is_for_the_networks(tmp_path):
    "A feature baseline in an order-domain experiment reads time-domain windows at the rule's known speed, and runs."
    from lstm_pfd.experiments import _rule
    c = load_experiment('quick', {'data.speed_source': 'tach', 'data.order_domain': True, 'eval.conditions': ['clean']})
    assert _rule(c)['order_domain'] is True and _rule(c)['speed_source'] == 'tach'
    fc = c.override({'model.name': 'classical'})
    assert _rule(fc)['order_domain'] is False and _rule(fc)['speed_source'] == 'tach'
    run = run_experiment(fc, tmp_path)
    rj = json.loads((run / 'run.json').read_text())
    assert rj['status'] == 'done' and 0.0 <= rj['metrics']['clean.record_acc'] <= 1.0
