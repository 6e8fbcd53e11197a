"""Remedies for machine shift on the `new_machines` track: transfer-path augmentation, AdaBN per test machine, the spectral model, Deep CORAL, commissioning baselines.

Protocol. A small fleet file is built (preset `quick_fleet` with `--machines` machines, 10,240 Hz, 2-s records, 0.5-s
windows; `dataset.records_per_class_severity` = `--machines`, one record per class x severity per machine). On its
`new_machines` track (test and validation machines never in training) each method is trained on `train`, early-stopped
on `val` and scored on `test` at record level (soft vote over the windows of a record) and window level, for every
seed of `--seeds`:

- `compact`: the compact CNN as in the fleet benchmark (noise augmentation 0-30 dB, p = 0.5, Adam, early stopping);
- `compact + transfer paths`: the same with `shift.TransferPathAugment` (64 paths of a bank drawn from the file's
  fleet ranges with another seed, p = 0.5) before the noise;
- `... + AdaBN`: the trained model scored by `shift.evaluate_adapted` (BatchNorm statistics re-estimated on each test
  machine's own windows: all of them, transductive; `healthy records` and `1/4 of records` are the non-transductive
  variants: the machine's healthy records, or a random quarter of its records);
- `spectral`: the `spectral` model (Welch log-power spectrum + convolutions over the bins), noise augmentation;
  `spectral, order domain (tach)`: the same on order-domain windows at the tachometer's speed (512 samples per turn,
  `segment=2048`: a quarter-order resolution), i.e. an order-spectrum network, with and without AdaBN;
- `compact + CORAL`, `spectral + CORAL`: the same networks trained with `shift.DomainAdaptLoss(kind='coral',
  weight=CORAL_WEIGHT)`: Deep CORAL between the classifier-input features of each training batch and of as many
  windows of the test machines (all their windows, labels unused: transductive, like AdaBN on all windows), with and
  without AdaBN;
- `classical`: `baselines.ClassicalBaseline` (band features + random forest, 100 trees);
- `baseline` (on `new_machines`: the `new_machines_baseline` variant): each machine's first `COMMISSIONING_K` healthy
  records over the track's three sides are its commissioning baseline, and those on the test side are never scored
  (`shift.commissioning_split`); `classical` and `spectral` on the raw
  records, and `classical`, `spectral` and `compact` on records referenced to each machine's own baseline
  (`shift.reference_to_baseline`; training and validation machines to theirs), all scored on the records left;
- `validation` (`--track new_conditions` or `incipient`): `compact` and `spectral` early-stopped on the track's stored
  validation (a random quarter of the training side) and on `shift.shift_validation` (the training side's edge toward
  the test side), scored on the same test records.

`--only` runs some row groups (`GROUPS`): `compact`, `transfer` (transfer paths), `spectral`, `order`, `coral`,
`classical`, `baseline`, `validation`; the JSON then holds those rows only (write it to another file than the full result).

Run (one thread, about 8 minutes on a 2-core x86 CPU shared with other work before the CORAL rows, which train two
more networks per seed, each step with a second forward pass on the target batch; `--only coral`: about a minute
per seed):
    OMP_NUM_THREADS=1 python benchmarks/bench_shift.py --seeds 0 1 2 --out nbs/_data/shift_remedies.json
    OMP_NUM_THREADS=1 python benchmarks/bench_shift.py --only coral --seeds 0 1 2 --out nbs/_data/shift_coral.json
    OMP_NUM_THREADS=1 python benchmarks/bench_shift.py --only baseline --seeds 0 1 2 --out nbs/_data/shift_baseline.json
`--data FILE` runs on an existing fleet file (e.g. `lstm-pfd generate --preset jbfd11_fleet`) instead of the small
fleet; `--track incipient` (or `new_conditions`) runs the same rows on another track of the small fleet, e.g.
    OMP_NUM_THREADS=1 python benchmarks/bench_shift.py --only baseline --track incipient --out nbs/_data/shift_baseline_incipient.json
    OMP_NUM_THREADS=1 python benchmarks/bench_shift.py --only validation --track incipient --out nbs/_data/shift_validation_incipient.json
The JSON files are read by nbs/05b_shift.ipynb.
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
from lstm_pfd.data import build_dataset, open_dataset
from lstm_pfd.windows import concat_records, subset_records
from lstm_pfd.evaluation import evaluate
from lstm_pfd.models import create_model
from lstm_pfd.shift import (DomainAdaptLoss, TransferPathAugment, commissioning_split, compose, evaluate_adapted, reference_to_baseline,
                            shift_validation)
from lstm_pfd.train import NoiseAugment, fit
from lstm_pfd.utils import atomic_write

BANK_SEED = 1000   # fleet seed of the augmentation's bank of paths (the file's fleet seed is the preset's)
ORDER_SEGMENT = 2048  # DFT segment of the order-domain spectral model: 512 samples per turn, a quarter-order resolution
CORAL_WEIGHT = 10.0   # factor of the CORAL term (`DomainAdaptLoss(weight=...)`): Sun & Saenko's rule, cross-entropy and CORAL term
                      # of a like size at the end of training, read from the training losses only (at weight 1 the CORAL term
                      # ended about 5x (spectral) to 25x (compact) below the cross-entropy on this fleet)
COMMISSIONING_K = 2  # healthy records per machine in its commissioning baseline (`shift.commissioning_split`)
GROUPS = ('compact', 'transfer', 'spectral', 'order', 'coral', 'classical', 'baseline', 'validation')  # row groups, `--only`


def _scores(ev) -> dict:
    return {'record_acc': ev.record_acc, 'window_acc': ev.window_acc}


def _hardware() -> str:
    "CPU model and core count (Linux /proc/cpuinfo where present)."
    try: cpu = next(l.split(':', 1)[1].strip() for l in Path('/proc/cpuinfo').read_text().splitlines() if l.startswith('model name'))
    except (OSError, StopIteration): cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores"


def _train(name, train, val, seed, augment, epochs, loss=None, **kw):
    "A trained `name` model; `loss(model)` builds the training loss (None: the default cross-entropy)."
    m = create_model(name, len(train.class_names), seed=seed, **kw)
    return fit(m, train, val, epochs=epochs, patience=3, lr=1e-3, batch_size=64, augment=augment, seed=seed,
               progress=False, threads=1, loss=loss(m) if loss is not None else None).model


def _net_rows(label, name, data, seed, epochs, augment, *, variants=False, loss=None, **kw) -> dict:
    "Rows `label` and `label + AdaBN` (with `variants`: AdaBN on healthy records and on a quarter of the records) of one network."
    t = time.perf_counter()
    train, val, test = data
    m = _train(name, train, val, seed, augment, epochs, loss=loss, **kw)
    out = {label: _scores(evaluate(m, test)), label + ' + AdaBN': _scores(evaluate_adapted(m, test))}
    if variants:
        out[label + ' + AdaBN (healthy records)'] = _scores(evaluate_adapted(m, test, healthy_only=True))
        out[label + ' + AdaBN (1/4 of records)'] = _scores(evaluate_adapted(m, test, fraction=0.25, seed=seed))
    print(f"seed {seed} {label}: {out[label]['record_acc']:.3f} (AdaBN {out[label + ' + AdaBN']['record_acc']:.3f}) "
          f"{time.perf_counter() - t:.0f} s", flush=True)
    return out


def _network_rows(ds, data, seed, epochs, order, groups) -> dict:
    "The rows of the network groups in `groups` for one seed; `data` and `order`: `(train, val, test)` time and order-domain windows."
    noise = NoiseAugment((0.0, 30.0), p=0.5)
    paths = TransferPathAugment(ds.fs, ds.config, n_paths=64, seed=BANK_SEED, p=0.5)
    coral = lambda m: DomainAdaptLoss(m, data[2], kind='coral', weight=CORAL_WEIGHT, seed=seed)   # target: the test machines' windows, unlabelled
    runs = [  # (group, row, model, windows, augment, keyword arguments of _net_rows)
        ('compact', 'compact', 'compact', data, noise, {'variants': True}),
        ('transfer', 'compact + transfer paths', 'compact', data, compose(paths, noise), {'variants': True}),
        ('spectral', 'spectral', 'spectral', data, noise, {}),
        ('order', 'spectral, order domain (tach)', 'spectral', order, noise, {'segment': ORDER_SEGMENT}),
        ('coral', 'compact + CORAL', 'compact', data, noise, {'loss': coral}),
        ('coral', 'spectral + CORAL', 'spectral', data, noise, {'loss': coral})]
    out = {}
    for group, label, name, windows, aug, kw in runs:
        if group in groups: out.update(_net_rows(label, name, windows, seed, epochs, aug, **kw))
    return out


def _baseline_rows(data, seed, epochs) -> dict:
    """The `baseline` group: the forest and networks on the raw records and on records referenced to their machine's
    commissioning baseline (its first `COMMISSIONING_K` healthy records over the track's three sides); every row scored
    on the test records that are in no baseline."""
    noise, t = NoiseAugment((0.0, 30.0), p=0.5), time.perf_counter()
    train, val, test = data
    base, _ = commissioning_split(concat_records(data), COMMISSIONING_K)   # references, never scored
    scored = subset_records(test, np.flatnonzero(~np.isin(test.record_record_ids, base.record_record_ids)))
    ref = [reference_to_baseline(w, base) for w in (train, val, scored)]
    out = {'classical (scored records)': _scores(ClassicalBaseline(n_estimators=100, seed=seed).fit(train).evaluate(scored)),
           'classical, referenced': _scores(ClassicalBaseline(n_estimators=100, seed=seed).fit(ref[0]).evaluate(ref[2]))}
    print(f"seed {seed} classical (scored records): {out['classical (scored records)']['record_acc']:.3f}, referenced: "
          f"{out['classical, referenced']['record_acc']:.3f} {time.perf_counter() - t:.0f} s", flush=True)
    out.update(_net_rows('spectral (scored records)', 'spectral', (train, val, scored), seed, epochs, noise))
    out.update(_net_rows('spectral, referenced', 'spectral', ref, seed, epochs, noise))
    out.update(_net_rows('compact, referenced', 'compact', ref, seed, epochs, noise))
    return out


def _validation_rows(data, track, config, seed, epochs) -> dict:
    "The `validation` group: compact and spectral early-stopped on the track's stored validation and on `shift_validation`."
    noise, (train, val, test) = NoiseAugment((0.0, 30.0), p=0.5), data
    edge = shift_validation(train, val, track, config, seed=seed)
    out = {}
    for name in ('compact', 'spectral'):
        out.update(_net_rows(f'{name} (random validation)', name, (train, val, test), seed, epochs, noise))
        out.update(_net_rows(f'{name} (shift validation)', name, (*edge, test), seed, epochs, noise))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--machines', type=int, default=12, help='machines of the fleet')
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--epochs', type=int, default=15)
    ap.add_argument('--track', default='new_machines', choices=('new_machines', 'new_conditions', 'incipient'),
                    help='the fleet track (default: new_machines; the rows were designed for it)')
    ap.add_argument('--only', nargs='+', choices=GROUPS, default=list(GROUPS), help='row groups to run (default: all)')
    ap.add_argument('--out', type=Path, default=None, help='JSON file to write (e.g. nbs/_data/shift_remedies.json)')
    ap.add_argument('--data', type=Path, help='an existing fleet file to run on (e.g. a jbfd11_fleet build) instead of the small fleet')
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    cfg = DataConfig.preset('quick_fleet', {'fleet.n_machines': a.machines, 'dataset.records_per_class_severity': a.machines})
    with tempfile.TemporaryDirectory() as d:
        if a.data is None: build_dataset(cfg, Path(d) / 'fleet.h5', progress=False)
        ds = open_dataset(a.data or Path(d) / 'fleet.h5')
        train, val, test = (ds.windows(s, track=a.track) for s in ('train', 'val', 'test'))
        machines = {s: sorted(int(i) for i in set(w.meta['machine_id'])) for s, w in zip(('train', 'val', 'test'), (train, val, test))}
        order = [ds.windows(s, track=a.track, speed_source='tach', order_domain=True) for s in ('train', 'val', 'test')] if 'order' in a.only else None
        runs, load = {}, os.getloadavg()[0]
        for seed in a.seeds:
            rows = _network_rows(ds, (train, val, test), seed, a.epochs, order, a.only)
            if 'baseline' in a.only: rows.update(_baseline_rows((train, val, test), seed, a.epochs))
            if 'validation' in a.only:
                if a.track == 'new_machines': ap.error("--only validation needs --track new_conditions or incipient")
                rows.update(_validation_rows((train, val, test), a.track, ds.config, seed, a.epochs))
            if 'classical' in a.only:
                rows['classical'] = _scores(ClassicalBaseline(n_estimators=100, seed=seed).fit(train).evaluate(test))
                print(f"seed {seed} classical: {rows['classical']['record_acc']:.3f}", flush=True)
            for k, v in rows.items(): runs.setdefault(k, []).append(v)
        n_rec = {s: len(np.unique(w.record_ids)) for s, w in zip(('train', 'val', 'test'), (train, val, test))}
    rows = [{'method': k, 'record_acc': [r['record_acc'] for r in v], 'window_acc': [r['window_acc'] for r in v]} for k, v in runs.items()]
    res = {'command': 'OMP_NUM_THREADS=1 python benchmarks/bench_shift.py ' + ' '.join(sys.argv[1:] if argv is None else argv),
           'hardware': _hardware(), 'threads': 1, 'load_average_at_start': round(load, 2),
           'seconds': time.perf_counter() - t0, 'track': a.track, 'seeds': a.seeds, 'epochs': a.epochs,
           'groups': [g for g in GROUPS if g in a.only], 'coral_weight': CORAL_WEIGHT, 'commissioning_k': COMMISSIONING_K,
           'machines': f"machines {machines['train']} train, {machines['val']} validation, {machines['test']} test",
           'records': f"records: {n_rec['train']} train, {n_rec['val']} validation, {n_rec['test']} test " + (f"({a.data.name}, data hash {ds.config_hash})" if a.data else f"(quick_fleet, {a.machines} machines)"),
           'rows': rows}
    for r in rows: print(f"{r['method']:40s} record acc {np.mean(r['record_acc']):.3f} {np.round(r['record_acc'], 3).tolist()}")
    if a.out:
        with atomic_write(a.out, overwrite=True) as tmp: tmp.write_text(json.dumps(res, indent=1) + '\n')
    return res


if __name__ == '__main__':
    main()
