"""Shaft-channel generator speed: 4-channel `jbfd11_shaft` records against 1-channel `jbfd11_fleet` records, in the same run.

Run (one thread; about a minute):
    OMP_NUM_THREADS=1 python benchmarks/bench_shaft.py --n 220 --repeats 3 [--out nbs/_data/shaft_benchmark.json]

Both presets make 5-s records at 20,480 Hz on the same 40 machines (record i on machine i mod 40, classes and severity
slots in turn, the same seeds). Records/s are given one record at a time (`signals.generate`) and batched
(`signals.generate_batch` into a preallocated array), as the best of `--repeats` timings, in wall-clock and CPU time, the
two presets' timings alternating (so that both meet the same load from other processes);
the machines' severity laws are computed before timing (once per machine and preset). The figure of merit is the
4-channel rate as a share of the 1-channel rate (the target: at least 40 %). It prints figures; it asserts nothing.
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np

import lstm_pfd.shaft  # noqa: F401  (installs the multi-channel generator)
from lstm_pfd.config import DataConfig
from lstm_pfd.fleet import fleet
from lstm_pfd.physics import class_names
from lstm_pfd.signals import generate, generate_batch, record_seed, severity_laws


def _best(fn, n, repeats):
    "Records/s of `fn()` (which makes `n` records): best of `repeats`, wall clock and CPU time."
    w, c = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time(); fn()
        w.append(time.perf_counter() - t0); c.append(time.process_time() - c0)
    return n / min(w), n / min(c)


def prepare(cfg, n, batch_size, seed=0):
    "The two timed workloads of `cfg` on its fleet (`single`, `batched`: each makes `n` records) and the record shape."
    names = class_names()
    ms = fleet(cfg)
    faults = [names[i % len(names)] for i in range(n)]
    sevs = [i // len(names) % len(cfg.severity.names) for i in range(n)]
    seeds = [record_seed(seed, i) for i in range(n)]
    mach = [ms[i % len(ms)] for i in range(n)]
    for m in set(mach): severity_laws(cfg, m)                        # calibration renders, once per machine: not timed
    generate_batch(cfg, faults[:len(names)], sevs[:len(names)], seeds[:len(names)], machines=mach[:len(names)])   # warm-up
    single = lambda: [generate(cfg, f, severity=s, seed=d, machine=m) for f, s, d, m in zip(faults, sevs, seeds, mach)]
    x0, _ = generate(cfg, faults[0], severity=sevs[0], seed=seeds[0], machine=mach[0])
    out = np.empty((batch_size,) + x0.shape, np.float32)
    def batched():
        for i in range(0, n, batch_size):
            k = min(batch_size, n - i)
            generate_batch(cfg, faults[i:i + k], sevs[i:i + k], seeds[i:i + k], machines=mach[i:i + k], out=out[:k] if k == batch_size else None)
    return single, batched, list(x0.shape)


def measure(names, n, batch_size, repeats):
    "Records/s (wall, CPU; best of `repeats`) of each preset, single and batched; the presets' timings alternate, so both meet the same load."
    work = {name: prepare(DataConfig.preset(name), n, batch_size) for name in names}
    best = {(name, k): (0.0, 0.0) for name in names for k in ('single', 'batch')}
    for _ in range(repeats):
        for k, j in (('single', 0), ('batch', 1)):
            for name in names:
                r = _best(work[name][j], n, 1)
                best[name, k] = tuple(max(a, b) for a, b in zip(best[name, k], r))
    return {name: dict(shape=work[name][2], single_rec_s=best[name, 'single'][0], single_rec_s_cpu=best[name, 'single'][1],
                       batch_rec_s=best[name, 'batch'][0], batch_rec_s_cpu=best[name, 'batch'][1]) for name in names}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=220, help='records per timing')
    ap.add_argument('--batch-size', type=int, default=64)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--out', default=None, help='write the figures to this JSON file')
    a = ap.parse_args(argv)
    res = measure(('jbfd11_fleet', 'jbfd11_shaft'), a.n, a.batch_size, a.repeats)
    for name, r in res.items():
        print(f"{name:13s} records {r['shape']}: single {r['single_rec_s']:6.1f} rec/s wall, {r['single_rec_s_cpu']:6.1f} CPU; "
              f"batched {r['batch_rec_s']:6.1f} wall, {r['batch_rec_s_cpu']:6.1f} CPU", flush=True)
    one, four = res['jbfd11_fleet'], res['jbfd11_shaft']
    share = {k: four[k] / one[k] for k in ('single_rec_s', 'single_rec_s_cpu', 'batch_rec_s', 'batch_rec_s_cpu')}
    print('4-channel rate / 1-channel rate: ' + ', '.join(f"{k} {v:.0%}" for k, v in share.items()) + ' (target >= 40 %)')
    if a.out:
        doc = dict(command='OMP_NUM_THREADS=1 python benchmarks/bench_shaft.py ' + ' '.join(argv if argv is not None else sys.argv[1:]),
                   hardware=f"{platform.machine()} {platform.processor() or ''} ({os.cpu_count()} logical CPUs), 1 thread".replace('  ', ' '),
                   numpy=np.__version__, python=platform.python_version(), result=res, share=share)
        with open(a.out, 'w') as f: json.dump(doc, f, indent=1); f.write('\n')


if __name__ == '__main__':
    main()
