"""Training throughput (windows/s) of the registry models on this CPU: a measurement that prints, never asserts.

Run: python benchmarks/bench_train.py [--threads 2] [--window-len 20480] [--models compact,cnn1d]
Timings vary with other load on the CPU (tens of percent): repeat and report the spread.
"""
import argparse

import torch

from lstm_pfd.models import MODELS, count_parameters, create_model
from lstm_pfd.train import train_throughput


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--window-len', type=int, default=20480)
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--batches', type=int, default=20)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--models', default='compact')
    p.add_argument('--device', default='cpu')
    a = p.parse_args(argv)
    names = sorted(MODELS) if a.models == 'all' else a.models.split(',')
    print(f"torch {torch.__version__}, device {a.device}, {a.threads} threads, window {a.window_len}, batch {a.batch_size}")
    for name in names:
        m = create_model(name, seed=0)
        runs = [train_throughput(m, a.window_len, batch_size=a.batch_size, n_batches=a.batches, num_threads=a.threads, device=a.device)['windows_per_s']
                for _ in range(a.repeats)]
        print(f"{name:14s} {count_parameters(m):>10,d} params  train {max(runs):7.0f} windows/s (best of {a.repeats}; "
              f"all: {', '.join(f'{r:.0f}' for r in runs)})")


if __name__ == '__main__':
    main()
