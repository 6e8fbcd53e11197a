"""Training throughput (windows/s) of the registry models on this CPU: a measurement that prints, never asserts.

Run: python benchmarks/bench_train.py [--threads 2] [--window-len 20480] [--models compact,cnn1d] [--out FILE.json]
Timings vary with other load on the CPU (tens of percent): repeat and report the spread. With `--out`, the figures
are also written as JSON (nbs/05_train.ipynb reads nbs/_data/train_throughput.json).
"""
import argparse
import json
import sys
from pathlib import Path

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
    p.add_argument('--out', default=None, help='also write the figures to this JSON file')
    p.add_argument('--hardware', default='2-core x86 CPU', help='how the machine is named in the JSON')
    a = p.parse_args(argv)
    rows = []
    names = sorted(MODELS) if a.models == 'all' else a.models.split(',')
    print(f"torch {torch.__version__}, device {a.device}, {a.threads} threads, window {a.window_len}, batch {a.batch_size}")
    for name in names:
        m = create_model(name, seed=0)
        runs = [train_throughput(m, a.window_len, batch_size=a.batch_size, n_batches=a.batches, num_threads=a.threads, device=a.device)['windows_per_s']
                for _ in range(a.repeats)]
        print(f"{name:14s} {count_parameters(m):>10,d} params  train {max(runs):7.0f} windows/s (best of {a.repeats}; "
              f"all: {', '.join(f'{r:.0f}' for r in runs)})")
        rows.append({'model': name, 'parameters': count_parameters(m), 'windows_per_s': max(runs), 'runs': runs})
    if a.out:
        doc = {'hardware': f"{a.hardware if a.device == 'cpu' else a.device}, {a.threads} thread" + ('s' if a.threads > 1 else ''),
               'command': 'python benchmarks/bench_train.py ' + ' '.join(argv if argv is not None else sys.argv[1:]),
               'torch': torch.__version__, 'device': a.device, 'threads': a.threads, 'window_len': a.window_len,
               'batch_size': a.batch_size, 'batches': a.batches, 'repeats': a.repeats, 'models': rows}
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(doc, indent=1, allow_nan=False))
        print(f'wrote {a.out}')


if __name__ == '__main__':
    main()
