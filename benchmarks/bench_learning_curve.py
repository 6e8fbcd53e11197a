"""Learning curves under machine shift: record accuracy on new machines against the number of training machines.

Protocol. A fleet file is built (preset `quick_fleet` with `--machines` machines, 10,240 Hz, 2-s records, 0.5-s
windows, one record per class x severity per machine). Its `new_machines` track fixes the test and validation
machines; for each size in `--sizes` and each seed, that many of the track's training machines are drawn (the seed
picks them) and each method is trained on their records only, early-stopped on the validation machines and scored on
the test machines at record level:

- `classical`: `baselines.ClassicalBaseline` (band features at the record's speed + random forest, 100 trees);
- `spectral, order domain + AdaBN`: the best network of `bench_shift.py`, the `spectral` model on order-domain windows
  at the tachometer's speed (512 samples per turn, `segment=2048`), noise augmentation, BatchNorm statistics
  re-estimated on each test machine's windows (`shift.evaluate_adapted`, transductive); the same model without AdaBN
  is reported too.

Run (one thread, about 15 minutes on a 2-core x86 CPU):
    OMP_NUM_THREADS=1 python benchmarks/bench_learning_curve.py --out nbs/_data/learning_curve.json
The JSON is read by nbs/05b_shift.ipynb.
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lstm_pfd.baselines import ClassicalBaseline
from lstm_pfd.config import DataConfig
from lstm_pfd.data import build_dataset, open_dataset, subset_records
from lstm_pfd.evaluation import evaluate
from lstm_pfd.models import create_model
from lstm_pfd.shift import evaluate_adapted
from lstm_pfd.train import NoiseAugment, fit
from lstm_pfd.utils import atomic_write

ORDER_SEGMENT = 2048   # as bench_shift.py: 512 samples per turn, a quarter-order resolution


def _hardware() -> str:
    try: cpu = next(l.split(':', 1)[1].strip() for l in Path('/proc/cpuinfo').read_text().splitlines() if l.startswith('model name'))
    except (OSError, StopIteration): cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores"


def _records_of(wd, machines) -> np.ndarray:
    "Record rows of `wd` whose machine is in `machines`."
    return np.flatnonzero(np.isin(np.asarray(wd.meta['machine_id']), list(machines)))


def _one(size, seed, train, val, test, otrain, oval, otest, pool, epochs) -> dict:
    picked = sorted(np.random.default_rng(seed).choice(pool, size=size, replace=False).tolist())
    tr, otr = subset_records(train, _records_of(train, picked)), subset_records(otrain, _records_of(otrain, picked))
    out = {'machines': picked, 'records': int(len(tr.record_labels))}
    out['classical'] = ClassicalBaseline(n_estimators=100, seed=seed).fit(tr).evaluate(test).record_acc
    m = create_model('spectral', len(train.class_names), seed=seed, segment=ORDER_SEGMENT)
    m = fit(m, otr, oval, epochs=epochs, patience=3, lr=1e-3, batch_size=64, augment=NoiseAugment((0.0, 30.0), p=0.5),
            seed=seed, progress=False, threads=1).model
    out['spectral, order domain'] = evaluate(m, otest).record_acc
    out['spectral, order domain + AdaBN'] = evaluate_adapted(m, otest).record_acc
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--machines', type=int, default=36, help='machines of the fleet')
    ap.add_argument('--sizes', type=int, nargs='+', default=[4, 8, 16, 0], help='training machines per point (0: all of the track)')
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--epochs', type=int, default=15)
    ap.add_argument('--out', type=Path, default=None, help='JSON file to write (e.g. nbs/_data/learning_curve.json)')
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0, load = time.perf_counter(), os.getloadavg()[0]
    cfg = DataConfig.preset('quick_fleet', {'fleet.n_machines': a.machines, 'dataset.records_per_class_severity': a.machines})
    points = []
    with tempfile.TemporaryDirectory() as d:
        build_dataset(cfg, Path(d) / 'fleet.h5', progress=False)
        ds = open_dataset(Path(d) / 'fleet.h5')
        train, val, test = (ds.windows(s, track='new_machines') for s in ('train', 'val', 'test'))
        otrain, oval, otest = (ds.windows(s, track='new_machines', speed_source='tach', order_domain=True) for s in ('train', 'val', 'test'))
        pool = sorted(int(i) for i in set(np.asarray(train.meta['machine_id'])))
        n_val, n_test = (len(set(np.asarray(w.meta['machine_id']))) for w in (val, test))
        for size in a.sizes:
            size = size or len(pool)
            for seed in a.seeds:
                t = time.perf_counter()
                r = _one(size, seed, train, val, test, otrain, oval, otest, pool, a.epochs)
                points.append({'n_machines': size, 'seed': seed, **r})
                print(f"{size:3d} machines, seed {seed}: classical {r['classical']:.3f}, spectral (order) {r['spectral, order domain']:.3f}, "
                      f"+ AdaBN {r['spectral, order domain + AdaBN']:.3f} ({time.perf_counter() - t:.0f} s)", flush=True)
    res = {'command': 'OMP_NUM_THREADS=1 python benchmarks/bench_learning_curve.py ' + ' '.join(sys.argv[1:] if argv is None else argv),
           'hardware': _hardware(), 'threads': 1, 'load_average_at_start': round(load, 2), 'seconds': time.perf_counter() - t0,
           'track': 'new_machines', 'fleet': f"quick_fleet, {a.machines} machines: up to {len(pool)} train, {n_val} validation, {n_test} test",
           'methods': ['classical', 'spectral, order domain', 'spectral, order domain + AdaBN'], 'seeds': a.seeds, 'epochs': a.epochs,
           'points': points}
    if a.out:
        with atomic_write(a.out, overwrite=True) as tmp: tmp.write_text(json.dumps(res, indent=1) + '\n')
    return res


if __name__ == '__main__':
    main()
