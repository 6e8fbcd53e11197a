"""CWRU cross-load table: leave one load out on the 12-kHz drive-end recordings, per model, per fold.

Protocol. The CWRU files in `--cwru` (a local folder of <number>.mat files; nothing is downloaded and the files never
enter this repository) are read with `lstm_pfd.datasets.cwru_recordings` (4 classes: normal, inner race, ball, outer
race at 6 o'clock; or 10: normal and each fault at 0.007, 0.014 and 0.021 inch) and imported with
`lstm_pfd.data.import_recordings` under the library's defaults: the `IMPORT_PRESET` protocol (2-s records, 0.5-s
windows) and its rate rule (every recording brought to the lowest native rate, at most 10,240 Hz, with an anti-alias
filter). The load (0, 1, 2, 3 hp) is the group. Cross-validation is the code `lstm-pfd cv` runs (`recordings.grouped_windows`,
`data.group_folds`, `train.cv_fold`, `evaluation.cv_summary`): one fold per load held out; the model is trained on the other
three loads (20 % of each class's training records held out for early stopping) and scored on the held-out load;
`classical` is `train.ClassicalBaseline` (features + random forest) trained on all records of the other three loads.

Reported per model and class setting: record accuracy per fold (mean over `--seeds` seeds of weights, batch order,
validation draw and forest), the mean over folds, and a 95 % interval: the Wilson score interval on the records
pooled over the folds (the interval of `lstm-pfd cv`; with several seeds the accuracy is averaged over the seeds
first), and with 2 or more seeds also the 95 % t interval of the fold mean over the seeds.

The normal baselines 98-100 (1-3 hp) are 48-kHz files of 7.7 MB or more. When a copy lacks the normal recording at any
load, the normal class cannot be held out load by load: it is dropped, and the table is the fault-only one (3 classes
instead of 4, 9 instead of 10), which the JSON states.

Runs go in priority order: `classical` and `compact` on every class setting, then the slower models; the JSON is
rewritten after every fold, so an interrupted run leaves a valid file that names the rows still missing.

Run (one thread; 38 minutes for this command on a 2-core x86-64 CPU shared with other work, fault files only):
    OMP_NUM_THREADS=1 python benchmarks/bench_cwru.py --cwru /path/to/cwru --classes 4 10 \\
        --models classical compact cnn_lstm --seeds 3 --out nbs/_data/cwru_crossload.json
The JSON is read by the tutorial nbs/tutorials/02_your_own_recordings.ipynb.
"""
import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.stats
import torch

from lstm_pfd import __version__
from lstm_pfd.cli import build_parser
from lstm_pfd.config import IMPORT_PRESET, DataConfig
from lstm_pfd.data import group_folds, import_recordings, open_dataset, subset_records
from lstm_pfd.evaluation import cv_summary, wilson_interval
from lstm_pfd.recordings import grouped_windows
from lstm_pfd.datasets import CWRU_FILES, cwru_recordings
from lstm_pfd.train import ClassicalBaseline, cv_fold

FAST = ('classical', 'compact')   # run first, on every class setting


def import_cwru(folder, classes: int, path: Path) -> dict:
    "Import the CWRU files of `folder` (`classes` 4 or 10) with the library's defaults; fault-only when a load lacks its normal file."
    kw = cwru_recordings(folder, classes=classes)
    normal = [i for i, l in enumerate(kw['labels']) if l == 'normal']
    loads = sorted({f"{h}hp" for h in range(4)})
    normal_loads = sorted({kw['groups'][i] for i in normal})
    fault_only = normal_loads != loads
    if fault_only:   # the normal class would be absent from training (or from testing) in some folds: drop it
        keep = [i for i in range(len(kw['labels'])) if i not in set(normal)]
        kw = dict(recordings=[kw['recordings'][i] for i in keep], labels=[kw['labels'][i] for i in keep],
                  fs=[kw['fs'][i] for i in keep], key=[kw['key'][i] for i in keep], groups=[kw['groups'][i] for i in keep],
                  meta={k: [v[i] for i in keep] for k, v in kw['meta'].items()})
    import_recordings(kw['recordings'], kw['labels'], kw['fs'], path, key=kw['key'], groups=kw['groups'], meta=kw['meta'],
                      progress=False, overwrite=True)
    with open_dataset(path) as ds: fs, names = float(ds.fs), list(ds.fault_names)
    files = sorted(int(Path(r).stem) for r in kw['recordings'])
    absent = sorted(n for n in CWRU_FILES if not (Path(folder) / f'{n}.mat').exists())
    return dict(requested_classes=classes, classes=names, fault_only=fault_only, normal_loads=normal_loads, fs=fs, files=files,
                missing_files=absent,
                native_fs=sorted({float(f) for f in kw['fs']}))


def cv_args(path, model: str, epochs: int, seed: int):
    "The parsed options of `lstm-pfd cv PATH --model MODEL --epochs E --seed S` (every other option at its default)."
    m = 'compact' if model == 'classical' else model
    return build_parser().parse_args(['cv', str(path), '--model', m, '--epochs', str(epochs), '--seed', str(seed), '--no-progress'])


def run_fold(model: str, args, data, groups, tr, te) -> dict:
    "One fold of `lstm-pfd cv`: the model's row of `train.cv_fold` (options from the cv parser), or the classical baseline (its `--baseline` column)."
    if model != 'classical':
        return cv_fold(data, groups, tr, te, model=args.model, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                       patience=args.patience, seed=args.seed, val_fraction=args.val_fraction)
    tr_all, test = subset_records(data, np.isin(groups, tr)), subset_records(data, np.isin(groups, te))
    acc = ClassicalBaseline(seed=args.seed).fit(tr_all).evaluate(test).record_acc
    return {'held_out': list(te), 'records': int(len(test.record_labels)), 'classical': acc}


def t95(v) -> list | None:
    v = np.asarray(v, float)
    if len(v) < 2: return None
    h = scipy.stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return [float(max(0.0, v.mean() - h)), float(min(1.0, v.mean() + h))]   # an accuracy: clipped to [0, 1]


def summarise(entry: dict) -> dict:
    "Mean over folds (of the mean over seeds), Wilson interval on the pooled records, t interval over seeds."
    folds = [f for f in entry['folds'] if len(f['acc']) == len(entry['seeds'])]
    if len(folds) < len(entry['fold_order']): return {}
    per_seed = [cv_summary([{'records': f['records'], 'acc': f['acc'][s]} for f in folds], ['acc'])['acc']
                for s in range(len(entry['seeds']))]
    n = sum(f['records'] for f in folds)
    k = sum(np.mean(f['acc']) * f['records'] for f in folds)
    return {'mean': float(np.mean([np.mean(f['acc']) for f in folds])), 'pooled': float(k / n),
            'ci95': list(wilson_interval(k, n)), 'ci': 'Wilson score interval on the records pooled over folds (accuracy averaged over seeds)',
            'seed_means': [p['mean'] for p in per_seed], 'seed_ci95': t95([p['mean'] for p in per_seed])}


def write(doc: dict, out):
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(out).with_suffix('.tmp')
        tmp.write_text(json.dumps(doc, indent=1, allow_nan=False) + '\n')
        tmp.replace(out)


def missing_rows(doc: dict) -> list[str]:
    return [f"{c}-class {m}" for c, r in doc['results'].items() for m, e in r['models'].items() if not e.get('summary')]


def print_table(doc: dict):
    for c, r in doc['results'].items():
        loads = r['fold_order']
        print(f"\n{c}-class request ({len(r['classes'])} classes{', fault only' if r['fault_only'] else ''}): record accuracy, leave one load out")
        print(f"{'model':10s} " + ' '.join(f'{l:>7s}' for l in loads) + f" {'mean':>7s}  95 % CI (Wilson, pooled)")
        for m, e in r['models'].items():
            fo = {f['held_out']: f for f in e['folds']}
            cells = [f"{np.mean(fo[l]['acc']):7.3f}" if l in fo else f"{'-':>7s}" for l in loads]
            s = e.get('summary') or {}
            tail = f"{s['mean']:7.3f}  [{s['ci95'][0]:.3f}, {s['ci95'][1]:.3f}]" if s else f"{'-':>7s}  (incomplete)"
            print(f"{m:10s} " + ' '.join(cells) + ' ' + tail)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--cwru', required=True, help='local folder of the CWRU files named <number>.mat (97.mat, 105.mat ...)')
    ap.add_argument('--classes', type=int, nargs='+', default=[4, 10], choices=[4, 10], help='class settings (default: 4 10)')
    ap.add_argument('--models', nargs='+', default=['classical', 'compact', 'cnn_lstm'], help="'classical' and registry models")
    ap.add_argument('--seeds', type=int, default=1, help='seeds per model (default: 1)')
    ap.add_argument('--epochs', type=int, default=30, help='maximum epochs per fold, as `lstm-pfd cv` (default: 30)')
    ap.add_argument('--model-epochs', nargs=2, action='append', default=[], metavar=('MODEL', 'E'), help='another maximum for one model')
    ap.add_argument('--model-seeds', nargs=2, action='append', default=[], metavar=('MODEL', 'N'), help='another number of seeds for one model')
    ap.add_argument('--hardware', default='2-core x86-64 CPU', help='how the CPU is named in the JSON')
    ap.add_argument('--out', help='JSON to write (nbs/_data/cwru_crossload.json), rewritten after every fold')
    ap.add_argument('--resume', action='store_true', help='keep the complete rows of --out whose epochs and seeds match; run the rest')
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    epochs = {m: a.epochs for m in a.models} | {m: int(e) for m, e in a.model_epochs}
    seeds = {m: a.seeds for m in a.models} | {m: int(n) for m, n in a.model_seeds}
    args = ' '.join('<cwru folder>' if t == a.cwru else t for t in (argv if argv is not None else sys.argv[1:]))
    cfg = DataConfig.preset(IMPORT_PRESET)
    doc = dict(command='OMP_NUM_THREADS=1 python benchmarks/bench_cwru.py ' + args, hardware=f'{a.hardware}, 1 thread',
               lstm_pfd=__version__, torch=torch.__version__, python=platform.python_version(), seconds=0,
               protocol=dict(data='CWRU 12 kHz drive end (X<number>_DE_time), file numbers of lstm_pfd.datasets.CWRU_FILES',
                             import_=f"import_recordings defaults: preset {IMPORT_PRESET!r} ({cfg.signal.duration_s:g}-s records, "
                                     f"{cfg.dataset.window_s:g}-s windows), lowest native rate at most {cfg.signal.fs:g} Hz",
                             folds='leave one load out (0, 1, 2, 3 hp), the code of `lstm-pfd cv`',
                             training='other options at the `lstm-pfd cv` defaults (lr 1e-3, batch 64, patience 5, val fraction 0.2)',
                             score='record accuracy on the held-out load'),
               results={}, missing=[])
    plan = [(c, m) for c in a.classes for m in a.models if m in FAST] + [(c, m) for c in a.classes for m in a.models if m not in FAST]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix='bench_cwru_') as work:
        data = {}
        for c in a.classes:
            info = import_cwru(a.cwru, c, Path(work) / f'cwru{c}.h5')
            d, g = grouped_windows(Path(work) / f'cwru{c}.h5')
            order = sorted(set(g.tolist()))
            data[c] = (d, g, group_folds(order))
            recs = {l: int((g == l).sum()) for l in order}
            doc['results'][str(c)] = dict(info, records_per_load=recs, fold_order=order, models={
                m: dict(epochs=None if m == 'classical' else epochs[m], seeds=list(range(seeds[m])), fold_order=order, folds=[], summary={})
                for m in a.models})
            print(f"{c}-class request: {len(info['classes'])} classes {info['classes']}{' (fault only: normal files at ' + str(info['normal_loads']) + ')' if info['fault_only'] else ''}; "
                  f"{info['fs']:g} Hz; records per load {recs}", flush=True)
        if a.resume and a.out and Path(a.out).exists():
            old = json.loads(Path(a.out).read_text())
            for c, m in plan:
                e, o = doc['results'][str(c)]['models'][m], old.get('results', {}).get(str(c), {}).get('models', {}).get(m, {})
                if o.get('summary') and all(o.get(k) == e[k] for k in ('epochs', 'seeds', 'fold_order')):
                    doc['results'][str(c)]['models'][m] = o
                    print(f"{c}-class {m}: kept from {a.out}")
            doc['seconds'] = old.get('seconds', 0)
            if old.get('command') != doc['command']: doc['command_resumed'] = doc['command']; doc['command'] = old.get('command', doc['command'])
        doc['missing'] = missing_rows(doc)
        write(doc, a.out)
        t0 -= doc['seconds']
        for c, m in plan:
            d, g, folds = data[c]
            e = doc['results'][str(c)]['models'][m]
            if e.get('summary'): continue
            for tr, te in folds:
                accs, recs = [], None
                for s in e['seeds']:
                    t1 = time.perf_counter()
                    row = run_fold(m, cv_args(Path(work) / f'cwru{c}.h5', m, epochs.get(m, a.epochs), s), d, g, tr, te)
                    accs.append(float(row[m])); recs = row['records']
                    print(f"{c}-class {m:10s} held out {te[0]} seed {s}: record acc {row[m]:.4f} ({recs} records, {time.perf_counter() - t1:.0f} s)", flush=True)
                e['folds'].append({'held_out': te[0], 'records': recs, 'acc': accs})
                e['summary'] = summarise(e)
                doc['missing'], doc['seconds'] = missing_rows(doc), round(time.perf_counter() - t0)
                write(doc, a.out)
    print_table(doc)
    print(f"\n{doc['seconds']} s" + (f"; wrote {a.out}" if a.out else ''))


if __name__ == '__main__':
    main()
