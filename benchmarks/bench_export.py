"""Export benchmark: size, 1-thread latency (batch 1/32) and accuracy per model and precision, beside PyTorch eager.

    python benchmarks/bench_export.py CKPT.pt [CKPT2.pt ...] --dataset DATA.h5      # trained checkpoints, with accuracy
    python benchmarks/bench_export.py --registry --window-len 20480 --fs 20480       # untrained registry models, latency only
Prints a Markdown table (a measurement, not a test: nothing is asserted).
"""
import argparse
import logging
import time

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument('checkpoints', nargs='*')
    ap.add_argument('--dataset')
    ap.add_argument('--registry', action='store_true', help='untrained registry models (latency and size only)')
    ap.add_argument('--models', nargs='*', help='registry model names (default: all)')
    ap.add_argument('--window-len', type=int)
    ap.add_argument('--fs', type=float)
    ap.add_argument('--precisions', nargs='*', default=['fp32', 'int8', 'int8-dynamic', 'fp16'])
    ap.add_argument('--runs', type=int, default=100)
    ap.add_argument('--runs-large', type=int, default=20)
    ap.add_argument('--out-dir')
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from lstm_pfd.export import export_report
    if a.registry:
        from lstm_pfd.models import MODELS, create_model
        models = {n: create_model(n, seed=0) for n in (a.models or MODELS)}
        cal = np.random.default_rng(0).standard_normal((64, 1, a.window_len)).astype(np.float32)
    else:
        models, cal = {p.rsplit('/', 1)[-1].rsplit('.', 1)[0]: p for p in a.checkpoints}, None
    t0 = time.time()
    tab = export_report(models, a.dataset, precisions=a.precisions, window_len=a.window_len, fs=a.fs,
                        calibration=cal, runs=a.runs, runs_large=a.runs_large, out_dir=a.out_dir)
    print(tab)
    print(f"\n({time.time() - t0:.0f} s)")


if __name__ == '__main__':
    main()
