"""Signal-generator benchmark (prints figures, asserts nothing): records/s and their ratio to the floor.

    OMP_NUM_THREADS=1 python benchmarks/bench_signals.py [--n 440] [--batch 64] [--repeats 3] [--preset jbfd11] [--fleet] [--out FILE.json]

The floor is what any generator of such a record must do: a float32 Gaussian spectrum, one inverse real FFT of the
record length and the float32 write (`signals._floor`). It runs interleaved with the generator in the same process on
the same thread, and the floor ratio (generator records/s over floor records/s, CPU time) is printed for one record
at a time (`generate`) and batched (`generate_batch`); being a ratio of two rates met under the same load, it moves
less with other work on the CPU than the rates themselves.

`--fleet` also measures the fleet generator (preset `jbfd11_fleet`: every record seen on a machine of the fleet,
transfer path, sensor and site background on) in the same run, so that both meet the same load on the CPU;
compare the CPU-time rates. With `--out`, the figures are also written as JSON (nbs/02_signals.ipynb reads
nbs/_data/signals_benchmark.json).
"""
import os
for v in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'NUMEXPR_NUM_THREADS'): os.environ.setdefault(v, '1')
import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np

from lstm_pfd.config import DataConfig
from lstm_pfd.signals import benchmark, format_benchmark

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=440)
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--preset', default='jbfd11')
    ap.add_argument('--fleet', action='store_true', help='also measure the fleet preset jbfd11_fleet (and compare)')
    ap.add_argument('--out', default=None, help='also write the figures to this JSON file')
    ap.add_argument('--hardware', default='2-core x86 CPU', help='how the CPU is named in the JSON')
    a = ap.parse_args()
    presets = [a.preset] + (['jbfd11_fleet'] if a.fleet and a.preset != 'jbfd11_fleet' else [])
    res, load0 = {}, os.getloadavg()
    for name in presets:
        res[name] = benchmark(DataConfig.preset(name), n=a.n, batch_size=a.batch, repeats=a.repeats)
        print(f"== {name}\n{format_benchmark(res[name])}\n")
    if len(res) == 2:
        (b, rb), (f, rf) = res.items()
        print(f"{f} vs {b}: single {rf['single_rec_s_cpu']:.0f} vs {rb['single_rec_s_cpu']:.0f} records/s CPU "
              f"({rf['single_rec_s_cpu'] / rb['single_rec_s_cpu']:.0%}), batched {rf['batch_rec_s_cpu']:.0f} vs {rb['batch_rec_s_cpu']:.0f}")
    load = [round(max(u, v), 2) for u, v in zip(load0, os.getloadavg())]
    print(f"load average (1, 5, 15 min; the larger of before and after): {load}")
    if a.out:
        doc = {'hardware': f'{a.hardware}, 1 thread', 'command': 'OMP_NUM_THREADS=1 python benchmarks/bench_signals.py ' + ' '.join(sys.argv[1:]),
               'load_average': load, 'python': platform.python_version(), 'numpy': np.__version__, 'preset': a.preset, 'n': a.n, 'repeats': a.repeats,
               'result': res[a.preset], **({'fleet_result': res['jbfd11_fleet']} if len(res) == 2 else {})}
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(doc, indent=1, allow_nan=False, default=float))
        print(f'wrote {a.out}')
