"""The JBFD-11 benchmark: registry models x seeds on the jbfd11 protocol, as run folders, ranked by `leaderboard`.

Run (CPU):  python benchmarks/bench_jbfd11.py --data /tmp/jbfd11.h5 --models compact --seeds 0 1 2 --threads 1 \
                --root runs/jbfd11
     (GPU):  python benchmarks/bench_jbfd11.py --data /tmp/j.h5 --models cnn_lstm resnet18 --seeds 0 1 2 --device cuda \
                --executor local --workers 6 --root runs/jbfd11
     on Slurm: ... --executor slurm --slurm partition=gpu timeout_min=60 gpus_per_node=1
     table of existing runs only:  python benchmarks/bench_jbfd11.py --root nbs/tutorials/jbfd11_runs --summary

The protocol is the "Benchmark protocol" of CONTRIBUTING.md (the `jbfd11` experiment preset): record-level 70/15/15 split, 1-s
windows (5 per record), soft vote per record, test copies at 20/10/5 dB, NoiseAugment((0, 30) dB, p=0.5), early
stopping on the validation loss after 3 epochs without improvement, at most 30 epochs. Each (model, seed) is one run
folder under --root (see `lstm_pfd.experiments`): the sweep is resumable (finished runs are skipped, an interrupted
one resumes from its checkpoint) and runs on local processes, Dask or Slurm. The dataset file is built when --data
does not exist.

`--convert OLD.json` turns a results file of the former bespoke format (`lstm_pfd.bench_jbfd11/1`: per run the
headline metrics, history, timings and the predicted class of every test record per condition) into run folders
under --root, keeping the measured numbers; that is how `nbs/tutorials/jbfd11_runs/` was made.
"""
import argparse
import json
import os
from pathlib import Path

import numpy as np
import yaml

from lstm_pfd.experiments import ExperimentConfig
from lstm_pfd.config import parse_sets
from lstm_pfd.experiments import leaderboard, run_id, run_sweep, runs

CONDITIONS = ('clean', 'snr20', 'snr10', 'snr5')
OLD_FORMAT = 'lstm_pfd.bench_jbfd11/1'


def sweep_for(data: Path, models, seeds, device: str, threads: int) -> dict:
    base = ExperimentConfig.preset('jbfd11', {'data.preset': None, 'data.path': str(data), 'train.device': device,
                                              'train.threads': threads, 'tags': ['jbfd11']})
    return {'base': base.to_dict(), 'grid': {'model.name': list(models)}, 'seeds': list(seeds)}


def print_summary(root: Path):
    df = runs(root, status='done')
    if df.empty: print(f"no finished runs under {root}"); return
    lb = leaderboard(df, by=['model', 'condition'])
    t = lb.table.copy()
    for c in ('mean', 'std', 'ci_low', 'ci_high'): t[c] = 100 * t[c]
    print("JBFD-11, record-level test accuracy (%), soft vote; mean, std and 95 % t-interval over seeds")
    print(t.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    for c in CONDITIONS:
        m = leaderboard(df, by=['model'], conditions=[c]).mcnemar
        for _, r in m.iterrows():
            print(f"McNemar {c:>6} seed {r['seed']}: {r['a']} vs {r['b']}: n10={r['n10']} n01={r['n01']} p={r['pvalue']:.3g}")


def _write(path: Path, obj, indent=1):
    path.write_text(json.dumps(obj, indent=indent) + '\n')


def convert(old: Path, root: Path) -> list[Path]:
    "Write one run folder per run of an old results file; returns the folders."
    res = json.loads(old.read_text())
    if res.get('format') != OLD_FORMAT: raise ValueError(f"{old}: format {res.get('format')!r}, expected {OLD_FORMAT!r}")
    proto, rec, names = res['protocol'], res['records'], res['protocol']['class_names']
    out = []
    for key, r in sorted(res['runs'].items()):
        f = r['fit']
        cfg = ExperimentConfig.preset(proto['preset'], {
            'model.name': r['model'], 'train.seed': r['seed'], 'train.epochs': f['epochs_max'], 'train.patience': f['patience'],
            'train.lr': f['lr'], 'train.batch_size': f['batch_size'], 'train.device': r['device'], 'train.threads': r['threads'],
            'eval.conditions': list(proto['conditions']), 'tags': ['jbfd11', 'published']})
        d = root / run_id(cfg); d.mkdir(parents=True, exist_ok=True)
        (d / 'config.yaml').write_text(cfg.to_yaml())
        conds = {}
        for c in proto['conditions']:
            pred = np.array([int(ch, 36) for ch in r['record_pred'][c]])
            y = np.asarray(rec['labels'])
            cm = np.bincount(y * len(names) + pred, minlength=len(names) ** 2).reshape(len(names), len(names))
            conds[c] = {'summary': {**r['metrics'][c], 'n_records': len(pred)}, 'record_pred': pred.tolist(),
                        'record': {'per_class_recall': (np.diag(cm) / cm.sum(1)).tolist(), 'confusion': cm.tolist()}}
        _write(d / 'metrics.json', {'conditions': conds, 'class_names': names, 'records': rec}, indent=None)
        _write(d / 'history.json', r['history'])
        _write(d / 'xai.json', [])
        _write(d / 'run.json', {
            'run_id': d.name, 'name': cfg.name, 'tags': list(cfg.tags), 'config_hash': cfg.hash(), 'config': cfg.to_dict(),
            'status': 'done', 'started': None, 'finished': r['date'],
            'environment': {'torch': r['torch'], 'host': r['host'], 'device': r['device'], 'device_name': r['device_name'],
                            'threads': r['threads']},
            'dataset': {'path': None, 'config_hash': proto['config_hash'], 'test_checksum': r.get('test_checksum', proto['test_checksum']),
                        'track': 'iid', 'records': proto['splits']},
            'timings': {k: r[k] for k in ('train_seconds', 'wall_seconds', 'time_to_best_s', 'train_windows_per_s', 'infer_windows_per_s')},
            'metrics': {f"{c}.{k}": v for c in proto['conditions'] for k, v in r['metrics'][c].items()},
            'epochs': r['epochs'], 'best_epoch': r['best_epoch'], 'stopped_early': r['stopped_early'], 'params': r['params'],
            'notes': {'converted_from': OLD_FORMAT, 'max_train_s': f.get('max_train_s'), 'time_budget_hit': r.get('time_budget_hit')}})
        out.append(d)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--root', default='runs/jbfd11', help='run folders (default runs/jbfd11)')
    p.add_argument('--data', help='dataset .h5 (built from --preset when missing)')
    p.add_argument('--preset', default='jbfd11')
    p.add_argument('--models', nargs='+', default=['compact'])
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--executor', default='local', choices=['local', 'dask', 'slurm'])
    p.add_argument('--workers', type=int, default=1)
    p.add_argument('--address', help='Dask scheduler address (default: a local cluster)')
    p.add_argument('--slurm', nargs='*', default=[], help='submitit parameters key=value (e.g. partition=gpu timeout_min=60)')
    p.add_argument('--summary', action='store_true', help='only print the leaderboard of --root')
    p.add_argument('--convert', help='convert an old bench_jbfd11 results JSON into run folders under --root')
    a = p.parse_args(argv)
    root = Path(a.root)
    if a.convert:
        for d in convert(Path(a.convert), root): print(f"wrote {d}")
    elif not a.summary:
        if not a.data: p.error('--data is required to run the benchmark')
        data = Path(a.data)
        if not data.exists():
            from concurrent.futures import ProcessPoolExecutor
            from lstm_pfd.data import build_dataset
            with ProcessPoolExecutor(max(1, os.cpu_count() // 2)) as ex: build_dataset(a.preset, data, executor=ex)
        res = run_sweep(sweep_for(data, a.models, a.seeds, a.device, a.threads), root, executor=a.executor,
                        workers=a.workers, address=a.address, slurm=parse_sets(a.slurm, '--slurm') or None)
        print(res.to_string(index=False))
    print_summary(root)


if __name__ == '__main__':
    main()
