"""Signal-generator benchmark (prints figures, asserts nothing).

    OMP_NUM_THREADS=1 python benchmarks/bench_signals.py [--n 440] [--batch 64] [--repeats 3] [--preset jbfd11]
"""
import os
for v in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'NUMEXPR_NUM_THREADS'): os.environ.setdefault(v, '1')
import argparse

from lstm_pfd.config import DataConfig
from lstm_pfd.signals import benchmark, format_benchmark

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=440)
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--preset', default='jbfd11')
    a = ap.parse_args()
    print(format_benchmark(benchmark(DataConfig.preset(a.preset), n=a.n, batch_size=a.batch, repeats=a.repeats)))
