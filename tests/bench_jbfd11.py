"""The JBFD-11 benchmark: train registry models for several seeds and report record-level accuracy, clean and at 20/10/5 dB.

Run (CPU):  python tests/bench_jbfd11.py --data /tmp/jbfd11.h5 --models compact --seeds 0 1 2 --threads 2 \
                --out nbs/tutorials/jbfd11_results.json
     (GPU):  python tests/bench_jbfd11.py --data /tmp/j.h5 --models cnn_lstm,resnet18 --seeds 0 1 2 --device cuda --out r.json
     summary of an existing file only:  python tests/bench_jbfd11.py --out nbs/tutorials/jbfd11_results.json --summary

The protocol is DESIGN.md's "Benchmark protocol": record-level 70/15/15 split, 1-s windows (5 per record), soft vote
(mean of window probabilities) per record, test copies at 20/10/5 dB. Training uses NoiseAugment((0, 30) dB, p=0.5) and
early stopping on the validation loss; the best epoch's weights are evaluated.

The dataset file is built when `--data` does not exist (`--preset`, `--workers`). Results go to one JSON file, written
after every (model, seed) run under a file lock, so the script is resumable (pairs already in the file are skipped)
and several processes (e.g. one per model on a GPU) may share one file. The file is small: per run the headline metrics,
the training history and the predicted class of every test record per condition (a string, one hex digit per record),
which is enough for McNemar tests and bootstrap intervals; no probabilities, weights or data.

Timings are wall-clock on whatever machine ran it (named in each run): a shared machine makes them noisy.
"""
import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lstm_pfd.config import PRESETS, DataConfig
from lstm_pfd.data import build_dataset, open_dataset
from lstm_pfd.models import count_parameters, create_model
from lstm_pfd.train import Callback, Evaluation, NoiseAugment, evaluate, fit, mcnemar, summarize_runs

FORMAT = 'lstm_pfd.bench_jbfd11/1'
CONDITIONS = ('clean', 'snr20', 'snr10', 'snr5')


# ---------------------------------------------------------------- results file
@contextlib.contextmanager
def locked(path: Path):
    "Exclusive lock beside `path` (several processes may append runs to one results file)."
    lock = Path(tempfile.gettempdir()) / f"bench_jbfd11-{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]}.lock"
    with open(lock, 'w') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try: yield
        finally: fcntl.flock(f, fcntl.LOCK_UN)


def load_results(path: Path) -> dict:
    if not path.exists(): return {'format': FORMAT, 'protocol': None, 'records': None, 'runs': {}}
    res = json.loads(path.read_text())
    if res.get('format') != FORMAT: raise ValueError(f"{path}: format {res.get('format')!r}, expected {FORMAT!r}")
    return res


def _dump(res: dict) -> str:
    "JSON with one run per block and short lists on one line (the file stays small and diffable)."
    return json.dumps(res, indent=1, sort_keys=False, separators=(',', ': ')) + '\n'


def add_run(path: Path, protocol: dict, records: dict, key: str, run: dict):
    "Merge one run into the file (re-read under the lock, check the protocol matches, write atomically)."
    with locked(path):
        res = load_results(path)
        if res['protocol'] is None: res['protocol'], res['records'] = protocol, records
        check_same_protocol(res, protocol, records, path)
        res['runs'][key] = run
        tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
        tmp.write_text(_dump(res)); os.replace(tmp, path)


def check_same_protocol(res, protocol, records, path):
    "Same config and test records (ids, labels) or raise; differing record checksums only warn (see below)."
    a, b = res['protocol'], protocol
    if a['config_hash'] != b['config_hash']:
        raise ValueError(f"{path} holds runs on data with config_hash={a['config_hash']}, this one has "
                         f"{b['config_hash']}: use another --out")
    if res['records'] != records: raise ValueError(f"{path}: test records (ids, labels) differ from this dataset's")
    if a['test_checksum'] != b['test_checksum']:
        # the generator is bit-identical only for one numpy build and CPU family: a dataset regenerated on another
        # machine can differ in the last bits of some samples. Each run keeps the checksum of the data it was tested on.
        print(f"note: test-split checksum {b['test_checksum']} differs from {a['test_checksum']} in {path} "
              "(same config and records, regenerated on another machine)")


def merge_files(dst: Path, srcs):
    "Merge the runs of other results files (e.g. a GPU machine's) into `dst`."
    with locked(dst):
        res = load_results(dst)
        for s in srcs:
            other = load_results(Path(s))
            if res['protocol'] is None: res['protocol'], res['records'] = other['protocol'], other['records']
            check_same_protocol(res, other['protocol'], other['records'], s)
            for k, v in other['runs'].items():
                v.setdefault('test_checksum', other['protocol']['test_checksum'])
                if k in res['runs']: print(f"merge: {k} already in {dst}, keeping the existing run")
                else: res['runs'][k] = v
        dst.write_text(_dump(res))


# ---------------------------------------------------------------- evaluations from the file
def encode_preds(p) -> str: return ''.join('0123456789abcdefghijklmnopqrstuvwxyz'[int(v)] for v in p)
def decode_preds(s: str) -> np.ndarray: return np.array([int(c, 36) for c in s], np.int64)


def record_evaluation(res: dict, key: str, cond: str) -> Evaluation:
    "A record-level `Evaluation` rebuilt from the stored predictions (one one-hot 'window' per record)."
    rec = res['records']
    pred = decode_preds(res['runs'][key]['record_pred'][cond])
    probs = np.eye(len(res['protocol']['class_names']), dtype=np.float32)[pred]
    return Evaluation(probs, np.asarray(rec['labels']), np.asarray(rec['record_ids']), res['protocol']['class_names'])


def runs_by_model(res: dict) -> dict:
    out = {}
    for k, r in res['runs'].items(): out.setdefault(r['model'], []).append(k)
    return {m: sorted(ks, key=lambda k: res['runs'][k]['seed']) for m, ks in out.items()}


def summary_rows(res: dict) -> list[dict]:
    "One row per model: record-level mean/std/bootstrap CI per condition, window-level mean, timings, device."
    rows = []
    for model, keys in runs_by_model(res).items():
        runs = [res['runs'][k] for k in keys]
        row = {'model': model, 'seeds': [r['seed'] for r in runs], 'params': runs[0]['params'],
               'device': sorted({r['device_name'] for r in runs}), 'threads': sorted({r['threads'] for r in runs})}
        for c in CONDITIONS:
            s = summarize_runs([record_evaluation(res, k, c) for k in keys], 'record_acc')
            row[c] = {k: s[k] for k in ('mean', 'std', 'ci_low', 'ci_high')}
            w = np.array([r['metrics'][c]['window_acc'] for r in runs])
            row[c]['window_mean'] = float(w.mean()); row[c]['window_std'] = float(w.std(ddof=1)) if len(w) > 1 else 0.0
            row[c]['macro_f1'] = float(np.mean([r['metrics'][c]['macro_f1'] for r in runs]))
        for t in ('train_seconds', 'time_to_best_s', 'epochs', 'best_epoch', 'train_windows_per_s', 'infer_windows_per_s'):
            v = np.array([r[t] for r in runs], float)
            row[t] = {'mean': float(v.mean()), 'std': float(v.std(ddof=1)) if len(v) > 1 else 0.0, 'values': v.tolist()}
        rows.append(row)
    return sorted(rows, key=lambda r: (-r['clean']['mean'], -r['snr5']['mean']))


def mcnemar_best_two(res: dict, rows=None) -> list[dict]:
    "Exact McNemar tests between the two best models (by clean, then 5 dB record accuracy), seed against seed."
    rows = rows or summary_rows(res)
    if len(rows) < 2: return []
    a, b = rows[0]['model'], rows[1]['model']
    ka, kb = runs_by_model(res)[a], runs_by_model(res)[b]
    seeds_b = {res['runs'][k]['seed']: k for k in kb}
    out = []
    for k in ka:
        s = res['runs'][k]['seed']
        if s not in seeds_b: continue
        for c in CONDITIONS:
            t = mcnemar(record_evaluation(res, k, c), record_evaluation(res, seeds_b[s], c))
            out.append({'a': a, 'b': b, 'seed': s, 'condition': c, **t})
    return out


def pct(x): return f"{100 * x:6.2f}"


def print_summary(res: dict):
    rows = summary_rows(res)
    if not rows: print("no runs yet"); return
    print(f"\nJBFD-11, record-level test accuracy (%), soft vote; mean ± std over seeds [95% bootstrap over "
          f"{res['protocol']['n_test_records']} records]")
    hdr = f"{'model':<10} {'params':>9} {'seeds':>5} " + ' '.join(f"{c:>24}" for c in CONDITIONS) + \
          f" {'train s':>12} {'to best s':>11} {'epochs':>6} {'train win/s':>11}  device"
    print(hdr); print('-' * len(hdr))
    for r in rows:
        cells = ' '.join(f"{pct(r[c]['mean'])}±{100 * r[c]['std']:4.2f} [{pct(r[c]['ci_low']).strip()},{pct(r[c]['ci_high']).strip()}]".rjust(24)
                         for c in CONDITIONS)
        print(f"{r['model']:<10} {r['params']:>9,d} {len(r['seeds']):>5} {cells} "
              f"{r['train_seconds']['mean']:>7.0f}±{r['train_seconds']['std']:<4.0f} {r['time_to_best_s']['mean']:>11.0f} "
              f"{r['epochs']['mean']:>6.1f} {r['train_windows_per_s']['mean']:>11.0f}  {', '.join(r['device'])} "
              f"({'/'.join(map(str, r['threads']))} threads)")
    print("\nwindow-level test accuracy (%), mean ± std over seeds")
    for r in rows:
        print(f"{r['model']:<10} " + ' '.join(f"{c}: {pct(r[c]['window_mean'])}±{100 * r[c]['window_std']:.2f}" for c in CONDITIONS))
    tests = mcnemar_best_two(res, rows)
    if tests:
        print(f"\nexact McNemar, record level, {tests[0]['a']} (a) vs {tests[0]['b']} (b), same seed "
              f"(n10: a right, b wrong; n01: a wrong, b right)")
        for t in tests:
            print(f"  seed {t['seed']} {t['condition']:>6}: n10={t['n10']:3d} n01={t['n01']:3d} p={t['pvalue']:.3g}")


# ---------------------------------------------------------------- one run
class TimeBudget(Callback):
    "Stop training after the epoch that ends `seconds` (wall clock, validation included) after the start of `fit`."
    def __init__(self, seconds): self.seconds, self.hit, self.t0 = seconds, False, None
    def on_fit_start(self, state): self.t0 = time.perf_counter()
    def on_epoch_end(self, state):
        if self.seconds and time.perf_counter() - self.t0 >= self.seconds: state.stop = self.hit = True


class EpochLog(Callback):
    def __init__(self, tag): self.tag = tag
    def on_epoch_end(self, state):
        h = state.history[-1]
        print(f"[{self.tag}] epoch {h['epoch']:2d} train_loss {h['train_loss']:.4f} val_loss {h['val_loss']:.4f} "
              f"val_rec_acc {h['val_record_acc']:.4f} {h['epoch_seconds']:.1f}s ({h['windows_per_s']:.0f} win/s)"
              f"{' *' if state.best_epoch == h['epoch'] else ''}", flush=True)


def device_name(device: str) -> str:
    if device.startswith('cuda'): return torch.cuda.get_device_name(torch.device(device))
    return f"CPU {platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def run_one(model_name, seed, data, a) -> dict:
    tr, va = data['train'], data['val']
    model = create_model(model_name, n_classes=len(tr.class_names), seed=seed)
    tag = f"{model_name}/{seed}"
    budget = TimeBudget(a.max_train_s)
    ck = None
    if a.checkpoint_dir:
        Path(a.checkpoint_dir).mkdir(parents=True, exist_ok=True)
        ck = Path(a.checkpoint_dir) / f"{model_name}_seed{seed}.pt"
    t0 = time.perf_counter()
    res = fit(model, tr, va, epochs=a.epochs, patience=a.patience, lr=a.lr, batch_size=a.batch_size, seed=seed,
              augment=NoiseAugment((0.0, 30.0), p=0.5), callbacks=[budget, EpochLog(tag)], checkpoint_path=ck,
              num_threads=a.threads, device=a.device, progress=False)
    wall = time.perf_counter() - t0
    metrics, preds, infer = {}, {}, []
    for c in CONDITIONS:
        t1 = time.perf_counter()
        ev = evaluate(res.model, data[c], device=a.device, batch_size=256)
        infer.append(len(ev.labels) / (time.perf_counter() - t1))
        metrics[c] = {k: round(float(v), 6) for k, v in ev.summary().items() if k in ('window_acc', 'record_acc', 'macro_f1', 'window_macro_f1', 'loss')}
        if not np.array_equal(ev.records, data['record_ids']): raise RuntimeError(f"{c}: record ids differ from the test split's")
        preds[c] = encode_preds(ev.record_pred)
    h = res.history
    best = res.best_epoch
    run = {'model': model_name, 'seed': seed, 'test_checksum': data['test_checksum'], 'params': count_parameters(res.model), 'device': a.device,
           'device_name': device_name(a.device), 'threads': torch.get_num_threads() if a.device == 'cpu' else a.threads,
           'torch': torch.__version__, 'host': platform.node(), 'date': time.strftime('%Y-%m-%d %H:%M:%S'),
           'fit': {'epochs_max': a.epochs, 'patience': a.patience, 'lr': a.lr, 'batch_size': a.batch_size,
                   'augment': 'NoiseAugment(snr_db=(0, 30), p=0.5)', 'monitor': res.monitor, 'max_train_s': a.max_train_s},
           'epochs': len(h), 'best_epoch': best, 'stopped_early': bool(res.stopped_early), 'time_budget_hit': budget.hit,
           'train_seconds': round(res.train_seconds, 2), 'wall_seconds': round(wall, 2),
           'time_to_best_s': round(float(h[best]['train_seconds_total']), 2) if best is not None else None,
           'train_windows_per_s': round(float(np.median([r['windows_per_s'] for r in h])), 1),
           'infer_windows_per_s': round(float(np.median(infer)), 1),
           'metrics': metrics, 'record_pred': preds,
           'history': [{k: round(float(r[k]), 5) for k in ('epoch', 'train_loss', 'train_acc', 'val_loss', 'val_acc',
                                                          'val_record_acc', 'epoch_seconds')} for r in h]}
    print(f"[{tag}] done: {len(h)} epochs (best {best}), {res.train_seconds:.0f} s training, record acc "
          + ', '.join(f"{c} {metrics[c]['record_acc']:.4f}" for c in CONDITIONS), flush=True)
    return run


def load_data(path: Path, a):
    t0 = time.perf_counter()
    ds = open_dataset(path)
    cond_split = {'clean': 'test'}
    for c in CONDITIONS[1:]:
        g = f"test_snr{float(c[3:]):g}".replace('-', 'm').replace('.', 'p')      # the names build_dataset gives
        if g not in ds.splits: raise ValueError(f"{path} has no {c[3:]} dB test copy {g!r} (splits: {ds.splits})")
        cond_split[c] = g
    data = {'train': ds.windows('train'), 'val': ds.windows('val'), **{c: ds.windows(s) for c, s in cond_split.items()}}
    test = ds['test']
    data['record_ids'] = np.sort(test.record_index)
    data['test_checksum'] = hashlib.sha256(b''.join(test.checksums[:])).hexdigest()[:16]
    order = np.argsort(test.record_index)
    protocol = {'preset': next((n for n in PRESETS if DataConfig.preset(n).hash() == ds.config_hash), None), 'config_hash': ds.config_hash, 'fs': ds.fs,
                'window_len': ds.config.window_len, 'windows_per_record': data['clean'].windows_per_record,
                'class_names': list(ds.fault_names), 'splits': {s: len(ds[s]) for s in ds.splits},
                'conditions': cond_split, 'n_test_records': len(test),
                'test_checksum': data['test_checksum']}
    records = {'record_ids': test.record_index[order].tolist(), 'labels': test.labels[order].tolist(),
               'severity': test.severity[order].tolist()}
    print(f"loaded {path} in {time.perf_counter() - t0:.0f} s: " + ', '.join(f"{k} {len(v)} windows" for k, v in data.items()
                                                                            if hasattr(v, 'labels')), flush=True)
    return data, protocol, records, ds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', help='dataset .h5 (built with --preset if it does not exist)')
    p.add_argument('--preset', default='jbfd11', help='preset used to build --data when it is missing (default jbfd11)')
    p.add_argument('--workers', type=int, default=2, help='processes for building the dataset (default 2)')
    p.add_argument('--models', default='compact', help='comma-separated registry names (default compact)')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    p.add_argument('--threads', type=int, default=2, help='torch CPU threads (default 2)')
    p.add_argument('--epochs', type=int, default=30, help='maximum epochs (default 30)')
    p.add_argument('--patience', type=int, default=5, help='early-stopping patience on the validation loss (default 5)')
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--max-train-s', type=float, default=None, help='end a run after the epoch that passes this many seconds of fit (wall clock)')
    p.add_argument('--checkpoint-dir', help='keep each run\'s best checkpoint here (default: none kept)')
    p.add_argument('--out', required=True, help='results JSON (created, or extended: existing (model, seed) pairs are skipped)')
    p.add_argument('--merge', nargs='+', help='merge the runs of these results files into --out and print the summary')
    p.add_argument('--summary', action='store_true', help='only print the summary of --out')
    a = p.parse_args(argv)
    out = Path(a.out)
    if a.merge: merge_files(out, a.merge)
    if a.summary or a.merge: print_summary(load_results(out)); return 0
    if not a.data: p.error('--data is required unless --summary or --merge')
    if a.device.startswith('cuda'):
        if not torch.cuda.is_available(): p.error(f"--device {a.device}: CUDA is not available here")
        torch.backends.cudnn.benchmark = True
    torch.set_num_threads(a.threads)
    models = [m.strip() for m in a.models.split(',') if m.strip()]
    todo = [(m, s) for m in models for s in a.seeds if f"{m}/{s}" not in load_results(out)['runs']]
    skipped = len(models) * len(a.seeds) - len(todo)
    if skipped: print(f"{skipped} (model, seed) pairs already in {out}: skipped")
    if todo:
        data_path = Path(a.data)
        if not data_path.exists():
            from concurrent.futures import ProcessPoolExecutor
            t0 = time.perf_counter()
            with (ProcessPoolExecutor(a.workers) if a.workers > 1 else contextlib.nullcontext()) as ex:
                build_dataset(a.preset, data_path, executor=ex, progress=False)
            print(f"built {data_path} ({a.preset}) in {time.perf_counter() - t0:.0f} s", flush=True)
        data, protocol, records, ds = load_data(data_path, a)
        for m, s in todo:
            add_run(out, protocol, records, f"{m}/{s}", run_one(m, s, data, a))
        ds.close()
    print_summary(load_results(out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
