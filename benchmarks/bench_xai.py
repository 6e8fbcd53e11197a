"""Explanations of a trained model (the `quick` preset): per-class faithfulness and band alignment, example
figures, and the time of each attribution method on each registry model. Measures; asserts nothing.

    OMP_NUM_THREADS=1 python benchmarks/bench_xai.py [--out nbs/_data/xai_quick.json] [--threads 1] [--per-class 3]

Writes the JSON (and one PNG per example class next to it) that nbs/06_xai.ipynb reads and displays.
Timings vary with other load on the CPU: repeat a run and report the spread.
"""
import os
for v in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS'): os.environ.setdefault(v, '1')
import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lstm_pfd import physics
from lstm_pfd.config import DataConfig
from lstm_pfd.data import OnTheFlyDataset
from lstm_pfd.models import MODELS, create_model
from lstm_pfd.train import fit
from lstm_pfd.xai import (METHODS, band_alignment, band_occlusion, deletion_insertion, explain, explain_window_figure,
                          frequency_attribution)


def per_class_table(model, tr, te, fs, per_class):
    "Mean deletion AUC (and its random reference) of each method and the band alignment of both frequency attributions."
    names, rec_of, bg, rows = physics.class_names(), te.record_of_window, tr.windows(), []
    for c, name in enumerate(names):
        for j in np.flatnonzero(te.labels == c)[:per_class]:
            x, speed = te.windows([j])[0], float(te.meta['speed_hz'][rec_of[j]])
            with torch.no_grad(): p_true = float(torch.softmax(model(torch.from_numpy(x)[None]), 1)[0, c])
            row = {'class': name, 'p_true': p_true}
            for method, kw in [('ig', {}), ('gradcam', {}), ('occlusion', dict(window=256)),
                               ('shap', dict(background=bg, nsamples=64))]:
                f = deletion_insertion(model, x, explain(model, x, method, target=c, **kw), target=c, n_segments=32)
                row[f'del_{method}'], row[f'del_rand_{method}'] = f.auc['deletion'], f.auc['deletion_random']
            for key, sa in [('fourier_ig', frequency_attribution(model, x, fs, c)),
                            ('band_occ', band_occlusion(model, x, fs, c, band_hz=4))]:
                row[f'align_{key}'] = band_alignment(sa, name, speed, fs=fs)['alignment']
            rows.append(row)
    cols = [k for k in rows[0] if k != 'class']
    def mean(v):  # None where every window gives NaN (a class without catalogue bands has no alignment)
        v = np.asarray(v, float)
        return float(v[np.isfinite(v)].mean()) if np.isfinite(v).any() else None
    return [{'class': n, 'n_windows': sum(r['class'] == n for r in rows),
             **{k: mean([r[k] for r in rows if r['class'] == n]) for k in cols}} for n in names]


def method_times(length, repeats):
    "Seconds per explained window, best of `repeats`, per model and method (random weights and input)."
    g = np.random.default_rng(0)
    x = g.standard_normal((1, 1, length)).astype(np.float32)
    bg = g.standard_normal((32, 1, length)).astype(np.float32)
    kws = {'ig': dict(n_steps=32), 'gradcam': {}, 'occlusion': dict(window=1024, stride=512),
           'shap': dict(background=bg, nsamples=32)}
    out = {}
    for name in sorted(MODELS):
        m = create_model(name, seed=0).eval()
        out[name] = {}
        for meth in METHODS:
            ts = []
            for _ in range(repeats):
                t0 = time.perf_counter(); explain(m, x, meth, target=1, **kws[meth]); ts.append(time.perf_counter() - t0)
            out[name][meth] = min(ts)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', default='nbs/_data/xai_quick.json')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--epochs', type=int, default=25)
    ap.add_argument('--per-class', type=int, default=3, help='test windows per class in the table')
    ap.add_argument('--examples', default='1,3,7', help='class labels drawn as example figures')
    ap.add_argument('--timing-len', type=int, default=20480, help='window length of the timing table, samples')
    ap.add_argument('--repeats', type=int, default=2)
    ap.add_argument('--hardware', default='2-core x86 CPU', help='how the CPU is named in the JSON')
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True)
    cfg = DataConfig.preset('quick')
    tr, va, te = (OnTheFlyDataset(cfg, s) for s in ('train', 'val', 'test'))
    fs = cfg.signal.fs
    model = create_model('compact', seed=0)
    t0 = time.perf_counter()
    res = fit(model, tr, va, epochs=a.epochs, lr=3e-3, patience=5, progress=False, seed=0)
    train_s = time.perf_counter() - t0
    model.eval()
    with torch.no_grad(): acc = float((model(torch.from_numpy(te.windows())).argmax(1).numpy() == te.labels).mean())
    names, rec_of, figures = physics.class_names(), te.record_of_window, []
    for c in map(int, a.examples.split(',')):
        j = int(np.flatnonzero(te.labels == c)[0])
        fig, summ = explain_window_figure(model, te.windows([j])[0], fs, method='ig', fault=names[c],
                                          speed_hz=float(te.meta['speed_hz'][rec_of[j]]), fmax=fs / 2,
                                          title=f'(true {names[c]})')
        png = out.with_name(f'{out.stem}_{names[c]}.png')
        fig.savefig(png, dpi=90)
        figures.append({'class': names[c], 'png': png.name, 'summary': {k: (v if not isinstance(v, float) or np.isfinite(v) else None)
                                                                 for k, v in summ.items() if np.isscalar(v)}})
    t1 = time.perf_counter()
    table = per_class_table(model, tr, te, fs, a.per_class)
    table_s = time.perf_counter() - t1
    times = method_times(a.timing_len, a.repeats)
    doc = {'hardware': f'{a.hardware}, {a.threads} thread' + ('s' if a.threads > 1 else ''),
           'command': 'OMP_NUM_THREADS=1 python benchmarks/bench_xai.py ' + ' '.join(argv if argv is not None else sys.argv[1:]),
           'python': platform.python_version(), 'torch': torch.__version__, 'preset': 'quick', 'model': 'compact',
           'epochs_run': len(res.history), 'best_epoch': res.best_epoch, 'train_seconds': train_s,
           'test_window_acc': acc, 'n_test_windows': len(te), 'table_seconds': table_s,
           'figures': figures, 'per_class': table,
           'timing': {'window_len': a.timing_len, 'repeats': a.repeats, 'seconds': times}}
    out.write_text(json.dumps(doc, indent=1, allow_nan=False, default=float))
    print(f'wrote {out} ({len(figures)} figures); test window accuracy {acc:.3f}; train {train_s:.0f} s, table {table_s:.0f} s')


if __name__ == '__main__':
    main()
