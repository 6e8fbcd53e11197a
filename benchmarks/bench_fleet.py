"""The fleet benchmark: models x seeds on every track of a `jbfd11_fleet` dataset, as run folders ranked by `leaderboard`.

Run (CPU, 2 processes of 1 thread each; resumable: finished runs are skipped):
    OMP_NUM_THREADS=1 python benchmarks/bench_fleet.py --data fleet.h5 --root nbs/tutorials/fleet_runs \
        --models compact classical order_spectrum --seeds 0 1 2 3 4 --workers 2 --stop-at 04:45
Tables and figures of the finished runs only (no training):
    python benchmarks/bench_fleet.py --root nbs/tutorials/fleet_runs --summary --figures nbs/images

Each (track, model, seed) is trained on the track's `train` split (`val` for early stopping of the networks),
then evaluated on the track's `test` split: clean, and noisy at every SNR of the file's stored copies (`iid`) or at
`SHIFT_SNR` (5 dB; the networks on the other tracks, whose noisy copies are derived on read with the same recipe;
the feature baselines are scored clean there, to fit the benchmark into the CPU time available). One run folder per run,
`<root>/<track>-<model>-s<seed>-<hash>/`, in the format of `lstm_pfd.experiments` (`run.json` with the flattened
headline metrics, `metrics.json` with per-condition summaries, per-class recall, confusion matrices and the
predicted class of every test record, `history.json`), so `experiments.runs(root)` and
`experiments.leaderboard(df, by=['model', 'track'])` read them. Only metrics are written under --root;
network checkpoints (for resuming an interrupted run) go to --scratch.

Models: the registry's networks (`compact`, `cnn1d`, ...: `lstm_pfd.train.fit`, noise augmentation (0-30 dB,
p=0.5), Adam, early stopping on the validation loss), `classical` (`train.ClassicalBaseline`) and
`order_spectrum` (`train.OrderSpectrumBaseline`, order-normalised spectra + catalogue band energies). The two
feature baselines cache the features of each record per condition under --scratch, so seeds and tracks that
share records compute them once.
"""
import argparse
import contextlib
import datetime
import fcntl
import hashlib
import json
import logging
import multiprocessing as mp
import os
import platform
import time
from pathlib import Path

import numpy as np

log = logging.getLogger('bench_fleet')

from lstm_pfd.config import SPLITS, TRACKS   # the track and split names, one place
FEATURE_MODELS = ('classical', 'order_spectrum')
NOT_RUN = {'cnn_lstm': 'too slow on a 2-core CPU in the time available (GPU-scale model)',
           'resnet18': 'too slow on a 2-core CPU in the time available (GPU-scale model)',
           'patchtst': 'too slow on a 2-core CPU in the time available (GPU-scale model)'}
FOREST_TREES = 100   # trees of the feature baselines' random forests in this benchmark
TRAIN = {'epochs': 15, 'patience': 3, 'lr': 1e-3, 'batch_size': 64, 'optimizer': 'adam',
         'augment_snr_db': [0.0, 30.0], 'augment_p': 0.5, 'threads': 1, 'device': 'cpu'}


def _now(): return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')


def _write_json(path: Path, obj, indent=1):
    from lstm_pfd.utils import atomic_write, strict_json
    with atomic_write(path, overwrite=True) as tmp: tmp.write_text(strict_json(obj, indent=indent) + '\n')


# ---------------------------------------------------------------- data access (the dataset's track API)
def snr_levels(ds) -> list[float]:
    "The SNR levels (dB) of the file's noisy test copies."
    a = ds.file.attrs
    return [float(v) for v in a.get('snr_db', [])]


SHIFT_SNR = (5.0,)   # SNR levels (dB) evaluated on the shift tracks, whose noisy copies are derived on read


def conditions(ds, track: str = 'iid', model: str | None = None, shift_snr=SHIFT_SNR) -> dict:
    "`{'clean': None, 'snr20': 20.0, ...}`: every stored SNR copy for `iid`; `shift_snr` for the networks on the other tracks."
    levels = snr_levels(ds) if track == 'iid' else [] if model in FEATURE_MODELS else [float(v) for v in shift_snr]
    return {'clean': None, **{f'snr{v:g}': v for v in levels}}


def track_windows(ds, split: str, track: str, snr_db=None):
    "The windows of `split` of `track` (at `snr_db` for the test copies)."
    return ds.windows(split, track=track, snr_db=snr_db)


# ---------------------------------------------------------------- run identity
def dataset_id(ds) -> str:
    "A digest of the records' checksums: the feature cache of one file is never used for another."
    h = hashlib.sha256()
    for s in SPLITS: h.update(b''.join(ds[s].checksums[:]))
    return h.hexdigest()[:16]


def run_spec(ds, track: str, model: str, seed: int, train: dict) -> dict:
    "The resolved configuration of one run (flattened by `experiments.runs` into columns)."
    is_net = model not in FEATURE_MODELS
    tr = dict(train, seed=seed) if is_net else {'seed': seed, 'n_estimators': FOREST_TREES, 'threads': 1, 'device': 'cpu'}
    return {'name': 'fleet', 'tags': ['fleet', track],
            'data': {'path': str(Path(ds.path).name), 'config_hash': ds.config_hash, 'track': track, 'normalize': None},
            'model': {'name': model, 'kwargs': {}}, 'train': tr,
            'eval': {'conditions': list(conditions(ds, track, model)), 'levels': ['window', 'record']}}


def spec_hash(spec: dict) -> str:
    d = {k: v for k, v in spec.items() if k not in ('name', 'tags')}
    d['train'] = {k: v for k, v in d['train'].items() if k not in ('threads', 'device')}
    d['data'] = {k: v for k, v in d['data'].items() if k != 'path'}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def run_dir(root: Path, spec: dict) -> Path:
    return Path(root) / f"{spec['data']['track']}-{spec['model']['name']}-s{spec['train']['seed']}-{spec_hash(spec)}"


def is_done(d: Path) -> bool:
    p = d / 'run.json'
    return p.exists() and json.loads(p.read_text()).get('status') == 'done'


def is_running_elsewhere(d: Path) -> bool:
    "True when another live process on this host is running the run in `d`."
    p = d / 'run.json'
    if not p.exists(): return False
    r = json.loads(p.read_text())
    pid = r.get('pid')
    if r.get('status') != 'running' or not pid or pid == os.getpid() or r.get('environment', {}).get('host') != platform.node(): return False
    try: os.kill(pid, 0); return True
    except OSError: return False


# ---------------------------------------------------------------- feature cache of the feature baselines
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
                         fs=wds.fs, class_names=wds.class_names, config_hash=wds.config_hash)


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
            tmp = path.with_name(f'.{path.stem}.{os.getpid()}.npz')
            np.savez(tmp, **store); os.replace(tmp, path)
        F = np.concatenate([store[k] for k in keys])
    return F, np.asarray(wds.labels, np.int64), np.asarray(wds.record_ids, np.int64)


def feature_code_id() -> str:
    "A digest of the feature baselines' source (`lstm_pfd.train`): cached features of other code are never reused."
    import inspect
    import lstm_pfd.train
    return hashlib.sha256(inspect.getsource(lstm_pfd.train).encode()).hexdigest()[:12]


def feature_model(kind: str, seed: int, cache: Path):
    from lstm_pfd.train import ClassicalBaseline, OrderSpectrumBaseline
    cache = cache / feature_code_id()
    cls = ClassicalBaseline if kind == 'classical' else OrderSpectrumBaseline
    m = cls(seed=seed, n_jobs=1, n_estimators=FOREST_TREES)
    raw = m.features
    m._cond = 'clean'              # the training records' clean features (the cache is keyed by record and condition)
    m.features = lambda d: cached_features(cache, kind, m._cond, d, raw)
    return m


# ---------------------------------------------------------------- one run
def _metrics(ev) -> dict:
    m = {'summary': ev.summary(), 'record_pred': ev.record_pred, 'record_ids': ev.records}
    for level in ('window', 'record'):
        m[level] = {'per_class_recall': ev.per_class_recall(level), 'confusion': ev.confusion_matrix(level)}
    return m


def _environment():
    import torch, lstm_pfd
    return {'lstm_pfd': lstm_pfd.__version__, 'torch': torch.__version__, 'numpy': np.__version__,
            'python': platform.python_version(), 'machine': platform.machine(), 'cpu_count': os.cpu_count(),
            'device': 'cpu', 'threads': 1, 'host': platform.node()}


def _train_net(spec, tr, va, scratch: Path, d: Path):
    from lstm_pfd.models import count_parameters, create_model
    from lstm_pfd.train import NoiseAugment, fit
    t = spec['train']
    model = create_model(spec['model']['name'], n_classes=len(tr.class_names), seed=t['seed'])
    ckpt = scratch / 'checkpoints' / f'{d.name}.pt'; ckpt.parent.mkdir(parents=True, exist_ok=True)
    res = fit(model, tr, va, epochs=t['epochs'], lr=t['lr'], batch_size=t['batch_size'], optimizer=t['optimizer'],
              patience=t['patience'], seed=t['seed'], augment=NoiseAugment(tuple(t['augment_snr_db']), t['augment_p']),
              checkpoint_path=ckpt, resume_from=ckpt if ckpt.exists() else None, progress=False, num_threads=1)
    extra = {'epochs': len(res.history), 'best_epoch': res.best_epoch, 'stopped_early': res.stopped_early,
             'params': count_parameters(res.model), 'train_seconds': res.train_seconds}
    return res.model, res.history, extra


def _train_and_evaluate(ds, spec, d, data, scratch, rec) -> tuple[dict, list, dict, dict]:
    from lstm_pfd.train import evaluate
    track, model, seed = spec['data']['track'], spec['model']['name'], spec['train']['seed']
    t0 = time.perf_counter()
    tr, va = track_windows(ds, 'train', track), track_windows(ds, 'val', track)
    rec['dataset'] = {'path': Path(data).name, 'config_hash': ds.config_hash, 'track': track,
                      'records': {'train': len(tr.record_labels), 'val': len(va.record_labels)}}
    if model in FEATURE_MODELS:
        net = feature_model(model, seed, scratch / 'features' / dataset_id(ds))
        net.fit(tr); history, extra = [], {}
    else: net, history, extra = _train_net(spec, tr, va, scratch, d)
    del tr, va
    tm = {'train_seconds': time.perf_counter() - t0}
    t1, out = time.perf_counter(), {'conditions': {}, 'class_names': None, 'records': None}
    for cond, snr in conditions(ds, track, model).items():
        te = track_windows(ds, 'test', track, snr)
        if model in FEATURE_MODELS:           # iid reads the stored noisy copies, the other tracks derive them on read
            net._cond = cond if snr is None or track == 'iid' else f'{cond}-derived'; ev = net.evaluate(te)
        else: ev = evaluate(net, te)
        out['class_names'] = ev.class_names
        if out['records'] is None: out['records'] = {'record_ids': ev.records, 'labels': ev.record_labels}
        elif not np.array_equal(out['records']['record_ids'], ev.records):
            raise RuntimeError(f"{track}: the test records at {cond} differ from the clean ones")
        out['conditions'][cond] = _metrics(ev)
        rec['dataset']['records']['test'] = len(ev.records)
    tm['eval_seconds'] = time.perf_counter() - t1
    tm['wall_seconds'] = time.perf_counter() - t0
    return out, history, extra, tm


def run_one(data: str, root: str, scratch: str, track: str, model: str, seed: int, train: dict) -> str:
    "Train and evaluate one (track, model, seed); returns a line about it (skipped when done or running elsewhere)."
    import torch
    from lstm_pfd.data import open_dataset
    torch.set_num_threads(1)
    root, scratch = Path(root), Path(scratch)
    with open_dataset(data) as ds:
        spec = run_spec(ds, track, model, seed, train)
        d = run_dir(root, spec)
        if is_done(d): return f'{d.name}: done before, skipped'
        if is_running_elsewhere(d): return f'{d.name}: running in another process, skipped'
        d.mkdir(parents=True, exist_ok=True)
        rec = {'run_id': d.name, 'name': spec['name'], 'tags': spec['tags'], 'config_hash': spec_hash(spec), 'config': spec,
               'status': 'running', 'started': _now(), 'pid': os.getpid(), 'environment': _environment()}
        _write_json(d / 'run.json', rec)
        try: out, history, extra, tm = _train_and_evaluate(ds, spec, d, data, scratch, rec)
        except BaseException as e:
            rec.update(status='interrupted' if isinstance(e, KeyboardInterrupt) else 'failed', error=repr(e), finished=_now())
            _write_json(d / 'run.json', rec); raise
    _write_json(d / 'metrics.json', out, indent=None)
    _write_json(d / 'history.json', history)
    rec.update(status='done', finished=_now(), timings=tm, **{k: extra.get(k) for k in ('epochs', 'best_epoch', 'params', 'stopped_early')},
               metrics={f'{c}.{k}': v for c, m in out['conditions'].items() for k, v in m['summary'].items()
                        if k in ('window_acc', 'record_acc', 'macro_f1', 'window_macro_f1')})
    _write_json(d / 'run.json', rec)
    s = out['conditions']['clean']['summary']
    return f"{d.name}: record_acc {s['record_acc']:.4f}, window_acc {s['window_acc']:.4f} in {tm['wall_seconds']:.0f} s"


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


def sweep(data, root, scratch, tracks, models, seeds, *, workers=2, stop_at=None, train=None, reverse=False):
    "Run every planned run not done yet on `workers` processes; no new run starts after `stop_at` (HH:MM UTC)."
    from lstm_pfd.data import open_dataset
    train, end = {**TRAIN, **(train or {})}, _deadline(stop_at)
    with open_dataset(data) as ds:
        todo = [(t, m, s) for t, m, s in plan(tracks, models, seeds) if not is_done(run_dir(root, run_spec(ds, t, m, s, train)))]
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
            pending.append(pool.apply_async(_task, ((str(data), str(root), str(scratch), t, m, s, train),)))
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
    p.add_argument('--stop-at', help='HH:MM (UTC): launch no new run after this time')
    p.add_argument('--reverse', action='store_true', help='run the plan from its end (a second sweep sharing the work)')
    p.add_argument('--summary', action='store_true', help='only print the tables of the finished runs under --root')
    p.add_argument('--figures', help='with --summary: write one PNG per track into this folder')
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format='%(asctime)s %(name)s %(levelname)s %(message)s')
    if not a.summary:
        if not a.data: p.error('--data is required to run the benchmark')
        sweep(a.data, a.root, a.scratch, a.tracks, a.models, a.seeds, workers=a.workers, stop_at=a.stop_at,
              train={'epochs': a.epochs, 'patience': a.patience}, reverse=a.reverse)
    print_summary(a.root, a.figures)


if __name__ == '__main__':
    main()
