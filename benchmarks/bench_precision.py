"""Training precision: windows/s and test record accuracy of fp32 vs bf16 autocast, per model, on the `quick` protocol.

Run: OMP_NUM_THREADS=1 python benchmarks/bench_precision.py [--models compact,cnn_lstm] [--epochs 6] [--threads 1] [--device cpu]
A measurement that prints, never asserts: windows/s varies with other load on the CPU (the load average is printed
with the figures), and bf16 only pays on CPUs with bf16 instructions (AVX512-BF16, AMX) or on a GPU.
"""
import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lstm_pfd.data import build_dataset, open_dataset
from lstm_pfd.models import create_model
from lstm_pfd.train import evaluate, fit


def _run(name, precision, tr, va, te, a):
    res = fit(create_model(name, n_classes=len(tr.class_names), seed=0), tr, va, epochs=a.epochs, lr=3e-3, batch_size=32,
              patience=None, seed=0, precision=precision, threads=a.threads, device=a.device, progress=False)
    wps = float(np.median([h['windows_per_s'] for h in res.history]))
    return wps, evaluate(res.model, te, device=a.device).record_acc, res.history[-1]['train_loss']


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--models', default='compact,cnn_lstm')
    p.add_argument('--epochs', type=int, default=6)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--device', default='cpu')
    a = p.parse_args(argv)
    flags = Path('/proc/cpuinfo').read_text() if Path('/proc/cpuinfo').exists() else ''
    print(f"torch {torch.__version__}, device {a.device}, {a.threads} thread(s), {a.epochs} epochs, cpu bf16 instructions: "
          f"{'yes' if 'avx512_bf16' in flags or 'amx_bf16' in flags else 'no'}, load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        path = build_dataset('quick', Path(tmp) / 'quick.h5', progress=False)
        ds = open_dataset(path)
        tr, va, te = (ds.windows(s) for s in ('train', 'val', 'test'))
        print(f"quick: {len(tr)} training windows of {tr.window_len} samples, {len(te)} test windows")
        print(f"{'model':10s} {'precision':9s} {'windows/s':>10s} {'record acc':>10s} {'train loss':>10s}")
        for name in a.models.split(','):
            for precision in ('fp32', 'bf16'):
                t0 = time.perf_counter()
                wps, acc, loss = _run(name, precision, tr, va, te, a)
                print(f"{name:10s} {precision:9s} {wps:10.0f} {acc:10.3f} {loss:10.4f}   ({time.perf_counter() - t0:.0f} s)", flush=True)
        ds.close()
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == '__main__':
    main()
