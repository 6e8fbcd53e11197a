"""Fine-tuning with few labels on real recordings: full, head, linear probe, from scratch and the classical baseline.

Protocol. A `compact` model is pretrained on generated journal-bearing records (preset `quick`: 10,240 Hz, 0.5-s
windows; `--pretrain-records` records per class and severity, noise augmentation) and adapted to the CWRU 12-kHz
drive-end recordings, 4 classes (normal, inner race, ball, outer race at 6 o'clock; 0.007-0.021 inch), imported
with `lstm_pfd.datasets.cwru_recordings` and `import_recordings` into 0.5-s records at 10,240 Hz (one window each).
Fine-tuning pool: the fault recordings at loads 0 and 1 hp and the first half of the normal recording; test: the
fault recordings at loads 2 and 3 hp and the second half of the normal recording (a copy of CWRU with one normal
recording, 0 hp, has no normal file at other loads). For K records per class drawn from the pool (seeded), each
method is trained and scored on the test records:

- `full`: `finetune(..., strategy='full')` (feature extractor at 0.1 x the head's learning rate);
- `head`: `finetune(..., strategy='head')` (frozen feature extractor and BatchNorm statistics);
- `linear_probe`: `finetune(..., strategy='linear_probe')` (logistic regression on frozen embeddings);
- `scratch`: a new `compact` model trained on the same K records with the same budget as `full`;
- `classical`: `train.ClassicalBaseline` (features + random forest) on the same records.

Reported: record accuracy (and balanced accuracy, the mean per-class recall, since the test split holds few
normal records), mean over `--seeds` draws with a 95 % t interval over the draws, and the paired differences
between methods on the same draws (mean and 95 % t interval).

Run (one thread, about 5 minutes on a 2-core x86 CPU with --seeds 10):
    OMP_NUM_THREADS=1 python benchmarks/bench_finetune.py --cwru /path/to/cwru --seeds 10 --out nbs/_data/finetune.json
`--cwru` is a local folder of the CWRU files named <number>.mat (97.mat, 105.mat ...); nothing is downloaded and the
files never enter this repository. The JSON is read by the tutorial nbs/tutorials/02_your_own_recordings.ipynb.

`--target quick_fleet` asks the same question of a generated domain close to the source (the same 11 classes; three
machines at 25-60 Hz with their own transfer paths, mountings and backgrounds; train/test splits of the file):
    OMP_NUM_THREADS=1 python benchmarks/bench_finetune.py --target quick_fleet --seeds 5 --out nbs/_data/finetune_fleet.json
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
import scipy.stats
import torch

from lstm_pfd import __version__
from lstm_pfd.config import DataConfig
from lstm_pfd.data import OnTheFlyDataset, build_dataset, import_recordings, open_dataset, subset_records
from lstm_pfd.datasets import cwru_recordings
from lstm_pfd.finetune import BODY_LR_FACTOR, finetune
from lstm_pfd.models import create_model
from lstm_pfd.train import ClassicalBaseline, NoiseAugment, evaluate, fit

METHODS = ('full', 'head', 'linear_probe', 'scratch', 'classical')


def pretrain(cfg, epochs, seed=0):
    "The source model: compact on generated records of `cfg` (train/val on the fly)."
    tr, va = (OnTheFlyDataset(cfg, s) for s in ('train', 'val'))
    res = fit(create_model('compact', seed=seed), tr, va, epochs=epochs, lr=3e-3, patience=None, seed=seed,
              augment=NoiseAugment((0.0, 30.0), p=0.5), progress=False)
    return res.model.eval(), evaluate(res.model, va).record_acc


def cwru_split(folder, cfg, work):
    "`(pool, test)` window datasets of the CWRU 4-class import (see the module docstring)."
    kw = cwru_recordings(folder, classes=4)
    path = import_recordings(kw['recordings'], kw['labels'], kw['fs'], Path(work) / 'cwru.h5', cfg=cfg, record_s=0.5,
                             key=kw['key'], groups=kw['groups'], meta=kw['meta'], progress=False, overwrite=True)
    with open_dataset(path) as ds: wd = ds.windows('test')
    groups = np.asarray(wd.meta['group']).astype(str)
    normal = np.asarray(wd.class_names)[wd.record_labels] == 'normal'
    rank = np.zeros(len(groups))
    rank[normal] = np.arange(normal.sum()) / max(1, normal.sum())       # records of the one normal recording, in time order
    pool = np.where(normal, rank < 0.5, np.isin(groups, ['0hp', '1hp']))
    test = np.where(normal, rank >= 0.5, np.isin(groups, ['2hp', '3hp']))
    return subset_records(wd, pool), subset_records(wd, test)


def fleet_split(n_per_class_severity, work):
    "`(pool, test)`: the train and test splits of a generated `quick_fleet` file (3 machines, 25-60 Hz, own transfer paths and mountings)."
    cfg = DataConfig.preset('quick_fleet', {'dataset.records_per_class_severity': n_per_class_severity})
    path = build_dataset(cfg, Path(work) / 'fleet.h5', progress=False)
    with open_dataset(path) as ds: return ds.windows('train'), ds.windows('test')


def draw(pool, k, seed):
    "K records per class of `pool`, drawn with `seed`."
    rng = np.random.default_rng(seed)
    rows = [rng.choice(np.flatnonzero(pool.record_labels == c), k, replace=False) for c in np.unique(pool.record_labels)]
    return subset_records(pool, np.sort(np.concatenate(rows)))


def scores(ev):
    return {'record_acc': ev.record_acc, 'balanced_acc': float(np.nanmean(ev.per_class_recall('record')))}


def run_one(method, source, tr, te, seed, epochs, lr):
    if method == 'classical': return scores(ClassicalBaseline(seed=seed).fit(tr).evaluate(te))
    if method == 'scratch':
        m = fit(create_model('compact', n_classes=len(tr.class_names), seed=seed), tr, epochs=epochs, lr=lr, batch_size=32,
                patience=None, seed=seed, progress=False).model
    else: m = finetune(source, tr, strategy=method, lr=lr, epochs=epochs, seed=seed, progress=False).model
    return scores(evaluate(m, te))


def ci95(v):
    v = np.asarray(v, float)
    if len(v) < 2: return [float(v.mean())] * 2
    h = scipy.stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return [float(v.mean() - h), float(v.mean() + h)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--target', default='cwru', choices=['cwru', 'quick_fleet'],
                    help="recordings to adapt to: CWRU (real, --cwru) or generated quick_fleet machines (same classes, other speeds and transfer paths)")
    ap.add_argument('--cwru', help='local folder of the CWRU files (<number>.mat); needed with --target cwru')
    ap.add_argument('--fleet-records', type=int, default=12, help='quick_fleet: records per class and severity (over 3 machines)')
    ap.add_argument('--k', default='1,5', help='records per class to fine-tune on (comma-separated)')
    ap.add_argument('--seeds', type=int, default=5, help='draws of the K records (and seeds of the training)')
    ap.add_argument('--epochs', type=int, default=100, help='epochs of full, head and scratch (one step each at these sizes)')
    ap.add_argument('--lr', type=float, default=3e-3, help='learning rate of full (head), head and scratch')
    ap.add_argument('--pretrain-records', type=int, default=8, help='generated records per class and severity for pretraining')
    ap.add_argument('--pretrain-epochs', type=int, default=8)
    ap.add_argument('--hardware', default='2-core x86 CPU', help='how the CPU is named in the JSON')
    ap.add_argument('--out', default=None, help='write the results as JSON (nbs/_data/finetune.json)')
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    cfg = DataConfig.preset('quick', {'dataset.records_per_class_severity': a.pretrain_records})
    source, source_acc = pretrain(cfg, a.pretrain_epochs)
    print(f"pretrained compact on generated 'quick' records: validation record accuracy {source_acc:.3f}")
    with tempfile.TemporaryDirectory(prefix='bench_finetune_') as work:
        if a.target == 'cwru':
            if not a.cwru: ap.error('--target cwru needs --cwru (a local folder of the CWRU files)')
            pool, te = cwru_split(a.cwru, cfg, work)
        else: pool, te = fleet_split(a.fleet_records, work)
    counts = lambda d: {n: int((d.record_labels == i).sum()) for i, n in enumerate(d.class_names)}
    print(f"{a.target} pool {counts(pool)}; test {counts(te)}")
    ks, res = [int(k) for k in a.k.split(',')], {}
    for k in ks:
        for seed in range(a.seeds):
            tr = draw(pool, k, seed)
            for m in METHODS:
                r = run_one(m, source, tr, te, seed, a.epochs, a.lr)
                res.setdefault(str(k), {}).setdefault(m, []).append(r)
                print(f"K={k} seed={seed} {m:13s} record acc {r['record_acc']:.3f} balanced {r['balanced_acc']:.3f}", flush=True)
    table = {k: {m: {f: {'mean': float(np.mean([r[f] for r in rs])), 'ci95': ci95([r[f] for r in rs]),
                         'runs': [r[f] for r in rs]} for f in ('record_acc', 'balanced_acc')}
                 for m, rs in by_m.items()} for k, by_m in res.items()}
    print(f"\n{'K':>3} {'method':13s} {'record acc (95 % CI)':>26s} {'balanced acc (95 % CI)':>28s}")
    for k, by_m in table.items():
        for m, v in by_m.items():
            ra, ba = v['record_acc'], v['balanced_acc']
            print(f"{k:>3} {m:13s} {ra['mean']:8.3f} [{ra['ci95'][0]:.3f}, {ra['ci95'][1]:.3f}] {ba['mean']:10.3f} [{ba['ci95'][0]:.3f}, {ba['ci95'][1]:.3f}]")
    pairs = [('full', 'head'), ('full', 'linear_probe'), ('full', 'scratch'), ('classical', 'full'), ('classical', 'scratch')]
    paired = {k: {f'{a} - {b}': {'mean': float(np.mean(d)), 'ci95': ci95(d)} for a, b in pairs
                  for d in [np.subtract(by_m[a]['record_acc']['runs'], by_m[b]['record_acc']['runs'])]} for k, by_m in table.items()}
    print('\npaired differences of record accuracy (same draws), mean [95 % t interval]:')
    for k, v in paired.items():
        print(f"K={k}: " + '; '.join(f"{n} {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]" for n, d in v.items()))
    secs = time.perf_counter() - t0
    print(f"{secs:.0f} s")
    if a.out:
        args = ' '.join(argv if argv is not None else sys.argv[1:])
        target = (dict(target='CWRU 12 kHz drive end, 4 classes, 0.5-s records at 10,240 Hz (one window each)',
                       pool='faults at 0 and 1 hp, first half of the normal recording',
                       test='faults at 2 and 3 hp, second half of the normal recording') if a.target == 'cwru' else
                  dict(target=f"generated quick_fleet records (3 machines, 25-60 Hz, own transfer paths and mountings; "
                              f"{a.fleet_records} records per class and severity), the 11 classes of the source (the head is kept)",
                       pool='the train split of the file', test='the test split of the file'))
        doc = dict(command='OMP_NUM_THREADS=1 python benchmarks/bench_finetune.py ' + (args.replace(a.cwru, '<cwru folder>') if a.cwru else args),
                   hardware=f'{a.hardware}, 1 thread', seconds=round(secs), lstm_pfd=__version__, torch=torch.__version__,
                   python=platform.python_version(),
                   protocol=dict(source="compact pretrained on generated 'quick' records (10,240 Hz, 0.5-s windows)",
                                 source_val_record_acc=source_acc, pretrain_records_per_class_severity=a.pretrain_records,
                                 pretrain_epochs=a.pretrain_epochs,
                                 **target, pool_records=counts(pool), test_records=counts(te), epochs=a.epochs, lr=a.lr,
                                 body_lr_factor=BODY_LR_FACTOR, seeds=a.seeds,
                                 ci='95 % t interval of the mean over the seeds (draws of the K records)'),
                   results=table, paired_differences=paired)
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(doc, indent=1, allow_nan=False) + '\n')
        print(f'wrote {a.out}')


if __name__ == '__main__':
    main()
