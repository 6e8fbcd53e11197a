"""The fleet benchmark: models x seeds on every track of a `jbfd11_fleet` dataset, as run folders ranked by `leaderboard`.

Run (CPU, 2 processes of 1 thread each; resumable: finished runs are skipped):
    OMP_NUM_THREADS=1 python benchmarks/bench_fleet.py --data fleet.h5 --root nbs/tutorials/fleet_runs \
        --models compact classical order_spectrum --seeds 0 1 2 3 4 --workers 2 --stop-at 04:45
The speed every method knows (`lstm_pfd.speed`): --speed-source {oracle,tach,estimated,none} (default: none applied,
the stored speed, an oracle) and --order-domain (the networks read order-domain windows at that speed; the feature
baselines read time-domain windows and the same speeds), both in each run's `data` config (`data.speed_source`,
`data.order_domain`), so they are part of its run id.
Tables and figures of the finished runs only (no training):
    python benchmarks/bench_fleet.py --root nbs/tutorials/fleet_runs --summary --figures nbs/images

A thin caller of `lstm_pfd.experiments`: each (track, model, seed) is one `ExperimentConfig` (`experiment`) run by
`run_experiment` into its run folder under --root (`runs(root)` and `leaderboard(df, by=['model', 'track'])` read
them; a finished run is skipped, an interrupted one resumes). Each is trained on the track's `train` split (`val` for
early stopping of the networks), then evaluated on the track's `test` split: clean, and noisy at every SNR of the
file's stored copies (`iid`) or at `SHIFT_SNR` (5 dB; the networks on the other tracks, whose noisy copies are
derived on read with the same recipe; the feature baselines are scored clean there, to fit the benchmark into the
CPU time available). Network checkpoints (for resuming an interrupted run) are removed from a finished run folder,
so --root holds metrics only.

Models: the registry's networks (`compact`, `cnn1d`, ...: noise augmentation (0-30 dB, p=0.5), Adam, early stopping
on the validation loss), and the feature baselines of `lstm_pfd.baselines.BASELINES`: `classical` and `order_spectrum`
(order-normalised spectra + catalogue band energies). Their features are cached per record and condition under
--scratch by `FeatureCache`, the explicit `feature_cache` hook of `run_experiment`, so seeds and tracks that share
records compute them once.
"""
import argparse
import contextlib
import datetime
import fcntl
import hashlib
import json
import logging
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np

from lstm_pfd.config import SPLITS, TRACKS   # the track and split names, one place
from lstm_pfd.speed import SPEED_SOURCES     # the speed rules, one place
from lstm_pfd.utils import atomic_write

log = logging.getLogger('bench_fleet')

FEATURE_MODELS = ('classical', 'order_spectrum')
NOT_RUN = {'resnet18': 'too slow on a 2-core CPU in the time available (GPU-scale model)',
           'patchtst': 'too slow on a 2-core CPU in the time available (GPU-scale model)'}
FOREST_TREES = 100   # trees of the feature baselines' random forests in this benchmark
TRAIN = {'epochs': 15, 'patience': 3, 'lr': 1e-3, 'batch_size': 64, 'optimizer': 'adam',
         'augment_snr_db': [0.0, 30.0], 'augment_p': 0.5, 'threads': 1, 'device': 'cpu'}
SHIFT_SNR = (5.0,)   # SNR levels (dB) evaluated on the shift tracks, whose noisy copies are derived on read


# ---------------------------------------------------------------- the experiments
def snr_levels(ds) -> list[float]:
    "The SNR levels (dB) of the file's noisy test copies."
    return [float(v) for v in ds.file.attrs.get('snr_db', [])]


def conditions(ds, track: str = 'iid', model: str | None = None, shift_snr=SHIFT_SNR) -> list[str]:
    "`['clean', 'snr20', ...]`: every stored SNR copy for `iid`; `shift_snr` for the networks on the other tracks."
    levels = snr_levels(ds) if track == 'iid' else [] if model in FEATURE_MODELS else [float(v) for v in shift_snr]
    return ['clean'] + [f'snr{v:g}' for v in levels]


def speed_rule(model: str, speed_source: str | None = None, order_domain: bool = False) -> dict:
    "The `data` keys of the speed rule of one model's runs: order-domain windows for the networks only (None/False: left out)."
    rule = {'speed_source': speed_source, 'order_domain': order_domain and model not in FEATURE_MODELS}
    return {k: v for k, v in rule.items() if v not in (None, False)}   # at their defaults: the run ids of runs made before


def experiment(ds, track: str, model: str, seed: int, train: dict, speed: dict | None = None):
    "The `ExperimentConfig` of one (track, model, seed) on the dataset file `ds`; `speed`: `speed_source`/`order_domain` (see `speed_rule`)."
    from lstm_pfd.experiments import ExperimentConfig
    is_net = model not in FEATURE_MODELS
    return ExperimentConfig.from_dict({
        'name': 'fleet', 'tags': ['fleet', track],
        'data': {'path': str(Path(ds.path).resolve()), 'track': track, **speed_rule(model, **(speed or {}))},
        'model': {'name': model, 'kwargs': {} if is_net else {'n_estimators': FOREST_TREES}},
        'train': {**train, 'seed': seed} if is_net else {'seed': seed, 'threads': 1, 'device': 'cpu'},
        'eval': {'conditions': conditions(ds, track, model), 'levels': ['window', 'record'], 'xai_methods': []}})


# ---------------------------------------------------------------- feature cache of the feature baselines
def dataset_id(ds) -> str:
    "A digest of the records' checksums: the feature cache of one file is never used for another."
    h = hashlib.sha256()
    for s in SPLITS: h.update(b''.join(ds[s].checksums[:]))
    return h.hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix('.lock'), 'w') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try: yield
        finally: fcntl.flock(f, fcntl.LOCK_UN)


def _subset(wds, rows):
    from lstm_pfd.data import WindowDataset
    return WindowDataset(wds.signals[rows], wds.record_labels[rows], wds.record_record_ids[rows], window_len=wds.window_len,
                         hop_len=wds.hop_len, normalize=wds.normalize, meta={k: np.asarray(v)[rows] for k, v in wds.meta.items()},
                         fs=wds.fs, class_names=wds.class_names, config_hash=wds.config_hash,
                         channels=getattr(wds, 'channels', None))


def cached_features(cache: Path, kind: str, cond: str, wds, featurize):
    "`(features, labels, record_ids)` of `wds`, computing only records not cached under `cache/<kind>-<cond>.npz`."
    rids = np.asarray(wds.record_record_ids)
    W = wds.windows_per_record
    if len(np.unique(rids)) != len(rids):
        log.warning("record ids repeat in %s/%s: features not cached", kind, cond); return featurize(wds)
    path = cache / f'{kind}-{cond}.npz'
    with _locked(path):
        store = dict(np.load(path)) if path.exists() else {}
        keys = np.array([str(r) for r in rids])
        missing = np.flatnonzero(~np.isin(keys, list(store)))
        if len(missing):
            F, _, r = featurize(_subset(wds, missing))
            F = F.reshape(len(missing), W, -1)
            store.update({k: F[i] for i, k in enumerate(keys[missing])})
            with atomic_write(path, overwrite=True) as tmp, open(tmp, 'wb') as f: np.savez(f, **store)
        F = np.concatenate([store[k] for k in keys])
    return F, np.asarray(wds.labels, np.int64), np.asarray(wds.record_ids, np.int64)


def feature_code_id() -> str:
    "A digest of the feature baselines' source (`lstm_pfd.baselines`): cached features of other code are never reused."
    import inspect
    import lstm_pfd.baselines
    return hashlib.sha256(inspect.getsource(lstm_pfd.baselines).encode()).hexdigest()[:12]


class FeatureCache:
    "The `feature_cache` hook of `run_experiment`: features per record and condition in `<scratch>/features/<data>/<code>/`."
    def __init__(self, scratch, data_id: str): self.root = Path(scratch) / 'features' / data_id / feature_code_id()

    def __call__(self, name: str, condition: str, windows, featurize):
        kind = {'ClassicalBaseline': 'classical', 'OrderSpectrumBaseline': 'order_spectrum'}.get(name, name)
        return cached_features(self.root, kind, condition, windows, featurize)


# ---------------------------------------------------------------- one run
def run_one(data: str, root: str, scratch: str, track: str, model: str, seed: int, train: dict, speed: dict | None = None) -> str:
    "Train and evaluate one (track, model, seed) with `run_experiment`; returns a line about it (skipped when done)."
    import torch
    from lstm_pfd.data import open_dataset
    from lstm_pfd.experiments import run_experiment, run_id, run_status
    torch.set_num_threads(1)
    with open_dataset(data) as ds: cfg, cache = experiment(ds, track, model, seed, train, speed), FeatureCache(scratch, dataset_id(ds))
    d = Path(root) / run_id(cfg)
    if run_status(d) == 'done': return f'{d.name}: done before, skipped'
    t0 = time.perf_counter()
    d = run_experiment(cfg, root, feature_cache=cache)
    (d / 'checkpoint.pt').unlink(missing_ok=True)          # --root keeps metrics only
    rec = json.loads((d / 'run.json').read_text())['metrics']
    return f"{d.name}: record_acc {rec['clean.record_acc']:.4f}, window_acc {rec['clean.window_acc']:.4f} in {time.perf_counter() - t0:.0f} s"


def _task(args):
    try: return run_one(*args)
    except Exception as e:
        log.exception("run %s failed", args[3:6]); return f'{args[3:6]}: FAILED {e!r}'


def plan(tracks, models, seeds) -> list[tuple]:
    "Runs ordered seed by seed, so that a stopped sweep leaves every (track, model) with the same number of seeds."
    return [(t, m, s) for s in seeds for m in models for t in tracks]


def _deadline(stop_at: str | None):
    if not stop_at: return None
    h, m = map(int, stop_at.split(':'))
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.replace(hour=h, minute=m, second=0, microsecond=0)


def sweep(data, root, scratch, tracks, models, seeds, *, workers=2, stop_at=None, train=None, reverse=False, speed=None):
    "Run every planned run not done yet on `workers` processes; no new run starts after `stop_at` (HH:MM UTC)."
    from lstm_pfd.data import open_dataset
    train, end = {**TRAIN, **(train or {})}, _deadline(stop_at)
    from lstm_pfd.experiments import run_id, run_status
    with open_dataset(data) as ds:
        todo = [(t, m, s) for t, m, s in plan(tracks, models, seeds)
                if run_status(Path(root) / run_id(experiment(ds, t, m, s, train, speed))) != 'done']
        if reverse: todo = todo[::-1]
    print(f"{len(plan(tracks, models, seeds))} runs planned, {len(todo)} to run on {workers} processes", flush=True)
    ctx, pending = mp.get_context('spawn'), []
    def flush():
        for p in [p for p in pending if p.ready()]: print(p.get(), flush=True); pending.remove(p)
    with ctx.Pool(workers) as pool:
        for t, m, s in todo:
            while len(pending) >= workers: time.sleep(1); flush()
            if end and datetime.datetime.now(datetime.timezone.utc) >= end:
                print(f"stop-at {stop_at} UTC reached: no new runs launched", flush=True); break
            pending.append(pool.apply_async(_task, ((str(data), str(root), str(scratch), t, m, s, train, speed),)))
        while pending: time.sleep(1); flush()


# ---------------------------------------------------------------- tables and figures
def summary_tables(root, metric='record_acc'):
    "Per track: the leaderboard (clean and every SNR) and McNemar between the best two (clean)."
    from lstm_pfd.experiments import leaderboard, runs
    df = runs(root, status='done')
    if df.empty: return df, {}
    out = {}
    for track in [t for t in TRACKS if t in set(df['data.track'])] + sorted(set(df['data.track']) - set(TRACKS)):
        sub = df[df['data.track'] == track]
        out[track] = {'conditions': leaderboard(sub, by=['model', 'condition'], metric=metric, mcnemar=False),
                      'clean': leaderboard(sub, by=['model'], metric=metric, conditions=['clean'])}
    return df, out


def per_class_recall(df, track, condition='clean'):
    "Mean per-class recall (record level) over seeds, one row per model."
    import pandas as pd
    rows = {}
    for model, g in df[df['data.track'] == track].groupby('model.name'):
        recs, names = [], None
        for p in g['path']:
            m = json.loads((Path(p) / 'metrics.json').read_text())
            names = m['class_names']
            recs.append([np.nan if v is None else v for v in m['conditions'][condition]['record']['per_class_recall']])
        rows[model] = np.nanmean(np.asarray(recs, float), 0)
    return pd.DataFrame(rows, index=names).T


def figure(track, tables, df, path):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    t = tables['conditions'].table
    fig, axs = plt.subplots(1, 3, figsize=(15, 3.8), gridspec_kw={'width_ratios': [1, 1, 1.4]})
    tables['clean'].plot(ax=axs[0]); axs[0].set_title(f'{track}: record accuracy, clean test')
    conds = list(dict.fromkeys(t['condition']))
    for model, g in t.groupby('model.name', sort=False):
        g = g.set_index('condition').reindex(conds)
        axs[1].errorbar(range(len(conds)), g['mean'], yerr=[g['mean'] - g['ci_low'], g['ci_high'] - g['mean']],
                        marker='o', capsize=3, label=f"{model} (n={int(g['n'].max())})")
    axs[1].set_xticks(range(len(conds)), conds); axs[1].set_ylabel('record accuracy'); axs[1].set_ylim(0, 1.02)
    axs[1].legend(fontsize=7); axs[1].set_title(f'{track}: clean and noisy test copies')
    r = per_class_recall(df, track)
    im = axs[2].imshow(r.to_numpy(), vmin=0, vmax=1, cmap='viridis', aspect='auto')
    axs[2].set_yticks(range(len(r)), r.index); axs[2].set_xticks(range(r.shape[1]), r.columns, rotation=60, ha='right', fontsize=7)
    axs[2].set_title(f'{track}: per-class recall (clean, mean over seeds)'); fig.colorbar(im, ax=axs[2], fraction=0.03)
    fig.tight_layout(); fig.savefig(path, dpi=80); plt.close(fig)


def print_summary(root, figures=None):
    df, tabs = summary_tables(root)
    if df.empty: print(f"no finished runs under {root}"); return
    for track, tb in tabs.items():
        t = tb['conditions'].table.copy()
        for c in ('mean', 'std', 'ci_low', 'ci_high'): t[c] = 100 * t[c]
        print(f"\n== {track}: record-level test accuracy (%), mean, std and 95 % t-interval over seeds")
        print(t.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
        for _, r in tb['clean'].mcnemar.iterrows():
            print(f"McNemar clean seed {r['seed']}: {r['a']} vs {r['b']}: n10={r['n10']} n01={r['n01']} p={r['pvalue']:.3g}")
        if figures:
            Path(figures).mkdir(parents=True, exist_ok=True)
            figure(track, tb, df, Path(figures) / f'fleet_{track}.png')
    print("\nnot run:", ', '.join(f'{k} ({v})' for k, v in NOT_RUN.items()))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', help='the fleet dataset file (.h5 with tracks)')
    p.add_argument('--root', default='nbs/tutorials/fleet_runs', help='run folders (metrics only; committed)')
    p.add_argument('--scratch', default='runs/fleet_scratch', help='checkpoints and feature caches (not committed)')
    p.add_argument('--tracks', nargs='+', default=list(TRACKS))
    p.add_argument('--models', nargs='+', default=['compact', 'classical', 'order_spectrum'])
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2, 3, 4])
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--epochs', type=int, default=TRAIN['epochs'])
    p.add_argument('--patience', type=int, default=TRAIN['patience'])
    p.add_argument('--speed-source', choices=SPEED_SOURCES, help='the speed rule every method gets (default: none applied, an oracle)')
    p.add_argument('--order-domain', action='store_true', help="the networks read order-domain windows at the rule's speed")
    p.add_argument('--stop-at', help='HH:MM (UTC): launch no new run after this time')
    p.add_argument('--reverse', action='store_true', help='run the plan from its end (a second sweep sharing the work)')
    p.add_argument('--summary', action='store_true', help='only print the tables of the finished runs under --root')
    p.add_argument('--figures', help='with --summary: write one PNG per track into this folder')
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format='%(asctime)s %(name)s %(levelname)s %(message)s')
    if not a.summary:
        if not a.data: p.error('--data is required to run the benchmark')
        if a.order_domain and a.speed_source in (None, 'none'): p.error("--order-domain needs a --speed-source with a speed (oracle, tach or estimated)")
        sweep(a.data, a.root, a.scratch, a.tracks, a.models, a.seeds, workers=a.workers, stop_at=a.stop_at,
              train={'epochs': a.epochs, 'patience': a.patience}, reverse=a.reverse,
              speed={'speed_source': a.speed_source, 'order_domain': a.order_domain})
    print_summary(a.root, a.figures)


if __name__ == '__main__':
    main()
