"""Signal-generator benchmark (prints figures, asserts nothing).

    OMP_NUM_THREADS=1 python benchmarks/bench_signals.py [--n 440] [--batch 64] [--repeats 3] [--preset jbfd11] [--fleet]

`--fleet` measures the fleet generator (preset `jbfd11_fleet`: every record seen on a machine of the fleet,
transfer path, sensor and site background on) and the single-machine preset in the same run, so that both
meet the same load on the CPU; compare the CPU-time rates.
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
    ap.add_argument('--fleet', action='store_true', help='also measure the fleet preset jbfd11_fleet (and compare)')
    a = ap.parse_args()
    presets = [a.preset] + (['jbfd11_fleet'] if a.fleet and a.preset != 'jbfd11_fleet' else [])
    res = {}
    for name in presets:
        res[name] = benchmark(DataConfig.preset(name), n=a.n, batch_size=a.batch, repeats=a.repeats)
        print(f"== {name}\n{format_benchmark(res[name])}\n")
    if len(res) == 2:
        (b, rb), (f, rf) = res.items()
        print(f"{f} vs {b}: single {rf['single_rec_s_cpu']:.0f} vs {rb['single_rec_s_cpu']:.0f} records/s CPU "
              f"({rf['single_rec_s_cpu'] / rb['single_rec_s_cpu']:.0%}), batched {rf['batch_rec_s_cpu']:.0f} vs {rb['batch_rec_s_cpu']:.0f}")
