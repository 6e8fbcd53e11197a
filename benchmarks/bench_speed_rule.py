"""The feature baselines under the speed rule: what the exact (oracle) speed is worth against a tachometer and an estimate.

Run (one thread; about 8-10 minutes on a 2-core x86 CPU, including the build of the data):
    OMP_NUM_THREADS=1 python benchmarks/bench_speed_rule.py --out nbs/_data/speed_rule.json

Data: `jbfd11_fleet` (5-s records at 20,480 Hz) on 16 machines, one record per class x severity x machine (704
records), no stored SNR copies, built into --data unless it exists; the `new_machines` track (test machines never
in training). For each speed rule of `lstm_pfd.speed.SPEED_SOURCES` the train and test windows are built with
`DatasetFile.windows(track='new_machines', speed_source=rule)`, so every method sees the same speed per record; the
`classical` and `order_spectrum` baselines (random forests of --trees trees) are fitted on the train split with
--seeds forest seeds and scored on the test split (clean). Reported per (baseline, rule): record accuracy, mean over
seeds, with a 95 % bootstrap interval over test records (`train.summarize_runs`); per rule: the error of the speed
it gives against the generator's mean speed of each record. `order_spectrum` needs a speed and has no 'none' row.
It prints figures and writes --out; it asserts nothing.
"""
import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from lstm_pfd.config import DataConfig
from lstm_pfd.data import build_dataset, open_dataset
from lstm_pfd.speed import SPEED_SOURCES, TACH_ERROR
from lstm_pfd.train import BASELINES, summarize_runs
from lstm_pfd.utils import atomic_write, strict_json

PRESET, OVERRIDES = 'jbfd11_fleet', {'fleet.n_machines': 16, 'dataset.records_per_class_severity': 16, 'dataset.snr_db': []}
TRACK = 'new_machines'


def speed_error(w) -> dict:
    "Relative error of the rule's speed against the generator's mean speed of each record (None for 'none')."
    known, true = w.meta['known_speed_hz'], w.meta['speed_hz']
    if np.isnan(known).all(): return None
    e = np.abs(known / true - 1)
    steady = w.meta['transient'] != 1 if 'transient' in w.meta else np.ones(len(e), bool)   # 1: a speed ramp
    return {'median': float(np.median(e)), 'p95': float(np.quantile(e, 0.95)), 'max': float(e.max()),
            'steady_p95': float(np.quantile(e[steady], 0.95)), 'n_ramps': int((~steady).sum()), 'n_records': len(e)}


def run(ds, rules, models, seeds, trees) -> dict:
    out = {'rows': [], 'speed_error': {}}
    for rule in rules:
        t0 = time.perf_counter()
        tr, te = (ds.windows(s, track=TRACK, speed_source=rule) for s in ('train', 'test'))
        out['speed_error'][rule] = speed_error(te)
        for name in models:
            if name == 'order_spectrum' and rule == 'none': continue      # it needs a speed
            t1 = time.perf_counter()
            ftr, fte = BASELINES[name]().features(tr), BASELINES[name]().features(te)
            evs = [BASELINES[name](seed=s, n_estimators=trees).fit(tr, features=ftr).evaluate(te, features=fte) for s in seeds]
            s = summarize_runs(evs)
            row = {'model': name, 'speed_source': rule, 'record_acc': s['mean'], 'ci_low': s['ci_low'], 'ci_high': s['ci_high'],
                   'per_seed': s['values'], 'macro_f1': float(np.mean([e.macro_f1() for e in evs])),
                   'n_test_records': s['n_records'], 'seconds': time.perf_counter() - t1}
            out['rows'].append(row)
            print(f"{name:15s} {rule:10s} record acc {row['record_acc']:.4f} [{row['ci_low']:.4f}, {row['ci_high']:.4f}] "
                  f"({row['seconds']:.0f} s)", flush=True)
        print(f"  rule {rule}: {time.perf_counter() - t0:.0f} s; speed error {out['speed_error'][rule]}", flush=True)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--data', default='/tmp/lstm_pfd_speed_rule/fleet16.h5', help='dataset file (built if missing)')
    ap.add_argument('--rules', nargs='+', default=list(SPEED_SOURCES), choices=SPEED_SOURCES)
    ap.add_argument('--models', nargs='+', default=['classical', 'order_spectrum'], choices=list(BASELINES))
    ap.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument('--trees', type=int, default=100, help='trees of each random forest')
    ap.add_argument('--out', default=None, help='JSON file to write (e.g. nbs/_data/speed_rule.json)')
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cfg, path, t0 = DataConfig.preset(PRESET, OVERRIDES), Path(a.data), time.perf_counter()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True); build_dataset(cfg, path, progress=False)
    with open_dataset(path) as ds:
        if ds.config_hash != cfg.hash(): sys.exit(f"{path}: built from another config; remove it or pass another --data")
        n = {s: len(ds.table(s, track=TRACK)) for s in ('train', 'val', 'test')}
        res = run(ds, a.rules, a.models, a.seeds, a.trees)
    rec = {'hardware': f"{os.cpu_count()}-core {platform.machine()} CPU, 1 thread", 'python': platform.python_version(),
           'command': 'OMP_NUM_THREADS=1 python benchmarks/bench_speed_rule.py ' + ' '.join(sys.argv[1:] if argv is None else argv),
           'preset': PRESET, 'overrides': OVERRIDES, 'track': TRACK, 'records': n, 'seeds': a.seeds, 'trees': a.trees,
           'tach_error': TACH_ERROR, 'seconds': time.perf_counter() - t0, **res}
    print(f"total {rec['seconds']:.0f} s")
    if a.out:
        with atomic_write(Path(a.out), overwrite=True) as tmp: Path(tmp).write_text(strict_json(rec, indent=1) + '\n')


if __name__ == '__main__':
    main()
