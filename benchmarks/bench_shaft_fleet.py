"""What the shaft probes add: the fleet tracks on a small `jbfd11_shaft` file, methods x channel sets x seeds.

Build the small file, run (CPU, 1 process of 1 thread; resumable: finished runs are skipped), write the JSON and figure:
    OMP_NUM_THREADS=1 python benchmarks/bench_shaft_fleet.py --build runs/shaft_fleet24.h5 --root runs/shaft_fleet \
        --seeds 0 1 2 3 4 --first-seeds 3 --stop-at 19:42 --out nbs/_data/shaft_fleet.json --figure nbs/images/shaft_fleet.png
JSON and figure of the finished runs only (no training): the same command with --summary.

A thin caller of `lstm_pfd.experiments`, like `bench_fleet.py` (whose feature cache it reuses): each
(track, method, seed) is one `ExperimentConfig` with `data.channels` picking the channels of the networks and
`model.kwargs.features` the feature set of the classical baseline, run by `run_experiment` into --root.

Methods: the classical baseline (random forest, 100 trees) on the accelerometer features, the orbit features of the
probe pair and keyphasor, or both; the `compact`, `cnn_lstm` and `spectral` networks on the accelerometer alone, the
probes (x, y, keyphasor) or all four channels, and `spectral_fs` (`spectral` with `full_spectrum=True`: the forward and
reverse power of the probe pair's orbit) on the probes or all channels. Clean test only (no SNR copies), record-level soft vote.

The file (`SMALL`) is `jbfd11_shaft` cut to what one CPU core trains in about an hour: 24 machines (not 40), 24 records
per class x severity (one per machine; not 80), 2-s records at 10,240 Hz (not 5 s at 20,480 Hz), four 0.5-s windows
each: 1,056 records. Run order (`plan`): the classical rows for every seed, then the
networks on the first `--first-seeds` seeds, then their remaining seeds, so a stopped sweep leaves the cheap rows
complete and every network with some seeds.
"""
import argparse
import datetime
import json
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np

from bench_fleet import FeatureCache, _deadline, dataset_id   # the feature cache of the fleet benchmark
from lstm_pfd.config import TRACKS

log = logging.getLogger('bench_shaft_fleet')

SMALL = {'signal.fs': 10240.0, 'signal.duration_s': 2.0, 'dataset.records_per_class_severity': 24,
         'dataset.window_s': 0.5, 'dataset.hop_s': 0.5, 'dataset.snr_db': [], 'fleet.n_machines': 24}
CHANNEL_SETS = {'accel': ['accel'], 'probes': ['x', 'y', 'keyphasor'], 'all': None}   # None: all four channels
FOREST_TREES = 100
TRAIN = {'epochs': 15, 'patience': 3, 'lr': 1e-3, 'batch_size': 64, 'optimizer': 'adam',
         'augment_snr_db': [0.0, 30.0], 'augment_p': 0.5, 'threads': 1, 'device': 'cpu'}
HARDWARE = '2-core x86-64 CPU, 1 thread'


NETWORKS = {'spectral_fs': ('spectral', {'full_spectrum': True})}   # benchmark names of registry models with arguments
PAIRED = {'spectral_fs'}                                            # networks that need the probe pair (no accelerometer-only row)


def methods(models) -> list[tuple[str, str, str]]:
    "`(method label, model, channel set)`: the classical feature sets, then each network on each channel set."
    out = [(f'classical[{fs}]', 'classical', fs) for fs in ('accel', 'orbit', 'both')]
    return out + [(f'{m}[{cs}]', m, cs) for m in models for cs in CHANNEL_SETS if not (m in PAIRED and cs == 'accel')]


def experiment(path, track, model, chset, seed):
    "The `ExperimentConfig` of one (track, method, seed)."
    from lstm_pfd.experiments import ExperimentConfig
    net = model != 'classical'
    name, kw = NETWORKS.get(model, (model, {}))
    return ExperimentConfig.from_dict({
        'name': 'shaft_fleet', 'tags': ['shaft_fleet', track],
        'data': {'path': str(Path(path).resolve()), 'track': track, 'channels': CHANNEL_SETS[chset] if net else None},
        'model': {'name': name, 'kwargs': kw if net else {'n_estimators': FOREST_TREES, 'features': chset}},
        'train': {**TRAIN, 'seed': seed} if net else {'seed': seed, 'threads': 1, 'device': 'cpu'},
        'eval': {'conditions': ['clean'], 'levels': ['record'], 'xai_methods': []}})


def build(path):
    from lstm_pfd.config import DataConfig
    from lstm_pfd.data import build_dataset
    if not Path(path).exists(): build_dataset(DataConfig.preset('jbfd11_shaft', SMALL), path, progress=False)
    return path


def plan(tracks, models, seeds, first_seeds=None) -> list[tuple]:
    """`(track, method, model, channel set, seed)` in run order: the classical rows for every seed; then each network on
    `seeds[:first_seeds]` (the first network seed-major, a further one track-major with `new_machines` first, so a
    stopped sweep leaves the headline track); then the remaining seeds of every network."""
    k = len(seeds) if first_seeds is None else first_seeds
    order = sorted(tracks, key=lambda t: t != 'new_machines')
    ms = methods(models)
    out = [(t, lab, m, cs, s) for s in seeds for lab, m, cs in ms if m == 'classical' for t in tracks]
    for part in (seeds[:k], seeds[k:]):
        for i, net in enumerate(models):
            mine = [x for x in ms if x[1] == net]
            if i == 0: out += [(t, lab, m, cs, s) for s in part for lab, m, cs in mine for t in tracks]
            else: out += [(t, lab, m, cs, s) for s in part for t in order for lab, m, cs in mine]
    return out


def sweep(path, root, scratch, tracks, models, seeds, stop_at=None, first_seeds=None):
    "Every run of `plan` not done yet, in its order; no new run starts after `stop_at` (HH:MM UTC)."
    import torch
    from lstm_pfd.data import open_dataset
    from lstm_pfd.experiments import run_experiment, run_id, run_status
    torch.set_num_threads(1)
    with open_dataset(path) as ds: cache = FeatureCache(scratch, dataset_id(ds))
    end = _deadline(stop_at)
    todo = plan(tracks, models, seeds, first_seeds)
    for t, label, m, cs, s in todo:
        cfg = experiment(path, t, m, cs, s)
        if run_status(Path(root) / run_id(cfg)) == 'done': continue
        if end and datetime.datetime.now(datetime.timezone.utc) >= end:
            print(f"stop-at {stop_at} UTC reached: no new runs", flush=True); return
        t0 = time.perf_counter()
        d = run_experiment(cfg, root, feature_cache=cache)
        (d / 'checkpoint.pt').unlink(missing_ok=True)
        acc = json.loads((d / 'run.json').read_text())['metrics']['clean.record_acc']
        print(f"{t} {label} seed {s}: record_acc {acc:.3f} in {time.perf_counter() - t0:.0f} s", flush=True)


def collect(path, root, tracks, models, seeds) -> dict:
    "Per track and method: accuracy (pooled over seeds, Wilson 95 % CI over record decisions), macro-F1, confusion summed over seeds."
    from lstm_pfd.evaluation import wilson_interval
    from lstm_pfd.experiments import run_id, run_status
    rows, names = [], None
    for t in tracks:
        for label, m, cs in methods(models):
            done = [(s, Path(root) / run_id(experiment(path, t, m, cs, s))) for s in seeds]
            done = [(s, d) for s, d in done if run_status(d) == 'done']
            row = {'track': t, 'method': label, 'model': m, 'channels': cs, 'seeds': [s for s, _ in done]}
            if not done: rows.append({**row, 'status': 'not run', 'reason': f'not reached within the time budget of one CPU core'}); continue
            accs, f1s, cm = [], [], 0
            for s, d in done:
                mt = json.loads((d / 'metrics.json').read_text())
                c = mt['conditions']['clean']
                names = mt['class_names']
                accs.append(c['summary']['record_acc']); f1s.append(c['summary']['macro_f1'])
                cm = cm + np.asarray(c['record']['confusion'], int)
            n, k = int(cm.sum()), int(np.trace(cm))
            lo, hi = wilson_interval(k, n)
            rows.append({**row, 'status': 'done', 'acc': k / n, 'ci_low': lo, 'ci_high': hi, 'acc_per_seed': accs,
                         'macro_f1': float(np.mean(f1s)), 'macro_f1_per_seed': f1s, 'n_records': n // len(done),
                         'confusion': cm.tolist()})
    return {'class_names': names, 'rows': rows}


def confused_pairs(cm, names, min_share=0.1):
    "Class pairs (true, predicted) whose off-diagonal share of the true class's records is >= `min_share`."
    cm = np.asarray(cm, float); tot = np.maximum(cm.sum(1, keepdims=True), 1)
    return [(names[i], names[j], float(cm[i, j] / tot[i, 0])) for i, j in zip(*np.nonzero(cm / tot >= min_share)) if i != j]


COLOURS = {'accel': 'C0', 'orbit': 'C1', 'probes': 'C1', 'both': 'C2', 'all': 'C2'}   # accelerometer, probes, both
MARKERS = {'classical': 'o', 'compact': 's', 'cnn_lstm': '^', 'spectral': 'D', 'spectral_fs': 'v'}


def figure(res, path):
    "Record accuracy with its 95 % interval per track and method: colour the channels (accelerometer, probes, both), marker the model."
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = [r for r in res['rows'] if r['status'] == 'done']
    tracks = list(dict.fromkeys(r['track'] for r in rows)); meths = list(dict.fromkeys(r['method'] for r in rows))
    fig, ax = plt.subplots(figsize=(9, 3.6))
    w = 0.8 / len(meths)
    for i, m in enumerate(meths):
        for j, t in enumerate(tracks):
            r = next((r for r in rows if r['track'] == t and r['method'] == m), None)
            if r is None: continue
            ax.errorbar(j + (i - (len(meths) - 1) / 2) * w, r['acc'], yerr=[[r['acc'] - r['ci_low']], [r['ci_high'] - r['acc']]],
                        fmt=MARKERS.get(r['model'], 'd'), color=COLOURS[r['channels']], capsize=2, ms=4, label=m if j == 0 else None)
    ax.set_xticks(range(len(tracks)), tracks); ax.set_ylabel('record accuracy (95 % CI)'); ax.set_ylim(0, 1.02)
    ax.grid(axis='y', alpha=0.3); ax.legend(fontsize=7, ncol=1, loc='center left', bbox_to_anchor=(1, 0.5))
    ax.set_title('shaft fleet benchmark: what the probes add (small jbfd11_shaft file)', fontsize=9)
    fig.tight_layout(); fig.savefig(path, dpi=80); plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--build', required=True, help='the small jbfd11_shaft file (built here if missing)')
    p.add_argument('--root', default='runs/shaft_fleet')
    p.add_argument('--scratch', default='runs/shaft_fleet_scratch')
    p.add_argument('--tracks', nargs='+', default=list(TRACKS))
    p.add_argument('--models', nargs='+', default=['compact', 'cnn_lstm', 'spectral', 'spectral_fs'],
                   help="networks (each on every channel set; 'spectral_fs': the spectral model with the probe pair's full spectrum)")
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2, 3, 4])
    p.add_argument('--stop-at', help='HH:MM (UTC): start no new run after this time')
    p.add_argument('--first-seeds', type=int, help='networks: run this many seeds first, the rest after every network had them')
    p.add_argument('--summary', action='store_true', help='no training: JSON and figure of the finished runs')
    p.add_argument('--out', help='results JSON'); p.add_argument('--figure', help='figure PNG')
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    build(a.build)
    if not a.summary: sweep(a.build, a.root, a.scratch, a.tracks, a.models, a.seeds, a.stop_at, a.first_seeds)
    res = collect(a.build, a.root, a.tracks, a.models, a.seeds)
    from lstm_pfd.data import open_dataset
    with open_dataset(a.build) as ds:
        sizes = {t: {s: len(ds.table(s, track=t) if t != 'iid' else ds[s]) for s in ds.splits} for t in a.tracks}
    args = [v for v in sys.argv[1:] if v != '--summary']    # the command that runs (or resumes) the whole benchmark
    res.update(command='OMP_NUM_THREADS=1 python benchmarks/' + Path(sys.argv[0]).name + ' ' + ' '.join(args),
               hardware=HARDWARE, python=platform.python_version(), data={'preset': 'jbfd11_shaft', 'overrides': SMALL, 'records': sizes},
               train=TRAIN, forest_trees=FOREST_TREES, channel_sets={k: v or ['x', 'y', 'keyphasor', 'accel'] for k, v in CHANNEL_SETS.items()})
    for r in res['rows']:
        print(f"{r['track']:15s} {r['method']:20s} " + (f"{100 * r['acc']:6.1f} [{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}] "
              f"F1 {r['macro_f1']:.3f} n={r['n_records']} seeds={r['seeds']}" if r['status'] == 'done' else 'not run'))
    if a.out: Path(a.out).write_text(json.dumps(res, indent=1) + '\n')
    if a.figure: figure(res, a.figure)


if __name__ == '__main__':
    main()
