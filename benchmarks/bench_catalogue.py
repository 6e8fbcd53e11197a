"""Catalogue queries over many run folders: how long `runs(root)` (scan + flatten), a filtered query, a saved search
and a leaderboard take on N synthetic runs.

Run:  python benchmarks/bench_catalogue.py --n 1000 [--root /tmp/catalogue_bench] [--repeat 5]

The run folders are synthetic (a `run.json` each, written like `run_experiment` writes it, with the quick experiment's
config, varied model, learning rate, seed and tags, and random metrics); nothing is trained. Timings are wall-clock,
median of `--repeat` repetitions, on a warm file cache.
"""
import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from lstm_pfd.experiments import ExperimentConfig
from lstm_pfd.experiments import leaderboard, run_id, runs, save_search


def make_runs(root: Path, n: int, seed: int = 0):
    "Write `n` synthetic finished run folders under `root`."
    rng = np.random.default_rng(seed)
    base = ExperimentConfig.preset('quick')
    models, lrs = ['compact', 'cnn1d', 'cnn_lstm', 'resnet18'], [1e-3, 3e-3, 1e-2]
    for i in range(n):
        cfg = base.override({'model.name': models[i % 4], 'train.lr': lrs[(i // 4) % 3], 'train.seed': i // 12,
                             'tags': ['bench', f'group{i % 5}']})
        d = root / run_id(cfg); d.mkdir(parents=True, exist_ok=True)
        acc = float(np.clip(0.8 + 0.05 * (i % 4) + rng.normal(0, 0.03), 0, 1))
        rec = {'run_id': d.name, 'name': cfg.name, 'tags': list(cfg.tags), 'config_hash': cfg.hash(), 'config': cfg.to_dict(),
               'status': 'done', 'started': '2026-01-01T00:00:00+00:00', 'finished': '2026-01-01T00:01:00+00:00',
               'dataset': {'path': '/data/quick.h5', 'config_hash': 'abc', 'test_checksum': 'def', 'track': 'iid',
                           'records': {'train': 44, 'val': 44, 'test': 44}},
               'timings': {'train_seconds': 10.0, 'eval_seconds': 1.0, 'wall_seconds': 12.0},
               'metrics': {'clean.record_acc': acc, 'clean.window_acc': acc - 0.01, 'snr5.record_acc': acc - 0.1,
                           'snr5.window_acc': acc - 0.12}, 'epochs': 10, 'best_epoch': 7, 'params': 30000}
        (d / 'run.json').write_text(json.dumps(rec, indent=1))


def timed(fn, repeat):
    ts = []
    for _ in range(repeat):
        t = time.perf_counter(); out = fn(); ts.append(time.perf_counter() - t)
    return statistics.median(ts), out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--n', type=int, default=1000)
    p.add_argument('--root', default=None, help='folder for the synthetic runs (default: a temporary folder, removed after)')
    p.add_argument('--repeat', type=int, default=5)
    a = p.parse_args(argv)
    root = Path(a.root) if a.root else Path(tempfile.mkdtemp(prefix='catalogue_bench_'))
    try:
        t = time.perf_counter(); make_runs(root, a.n); print(f"wrote {a.n} run folders in {time.perf_counter() - t:.1f} s")
        save_search(root, 'good-cnn', where="model.name == 'cnn1d' and clean.record_acc > 0.8", tags=['bench'])
        rows = []
        dt, df = timed(lambda: runs(root), a.repeat); rows.append(('runs(root)', dt, len(df)))
        dt, q = timed(lambda: runs(root, tags=['group1'], where="train.lr < 0.005 and clean.record_acc > 0.85"), a.repeat)
        rows.append(('runs(root, tags=..., where=...)', dt, len(q)))
        dt, s = timed(lambda: runs(root, search='good-cnn'), a.repeat); rows.append(("runs(root, search='good-cnn')", dt, len(s)))
        dt, lb = timed(lambda: leaderboard(df, by=['model', 'train.lr', 'condition'], mcnemar=False), a.repeat)
        rows.append(('leaderboard(df, by=[model, train.lr, condition])', dt, len(lb.table)))
        for name, dt, n in rows: print(f"{name:55s} {dt * 1000:8.1f} ms  ({n} rows)")
    finally:
        if not a.root: shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    main()
