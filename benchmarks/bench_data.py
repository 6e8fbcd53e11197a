"""Benchmark: wall time, peak memory and file size of the full JBFD-11 build, serial and with workers.

    python benchmarks/bench_data.py [--workers 0 2] [--preset jbfd11] [--out DIR]

Prints figures; asserts nothing about time.
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r'''
import os, sys, time, resource, threading
os.environ.setdefault("OMP_NUM_THREADS", "1")
from concurrent.futures import ProcessPoolExecutor
from lstm_pfd.data import build_dataset
import psutil
preset, out, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
peak = [0]
def watch():
    me = psutil.Process()
    while True:
        rss = me.memory_info().rss + sum(c.memory_info().rss for c in me.children(recursive=True))
        peak[0] = max(peak[0], rss); time.sleep(0.05)
threading.Thread(target=watch, daemon=True).start()
t = time.perf_counter()
if workers:
    with ProcessPoolExecutor(workers) as ex: build_dataset(preset, out, executor=ex, progress=False)
else:
    build_dataset(preset, out, progress=False)
dt = time.perf_counter() - t
print(f"{dt:.2f} {peak[0] / 2**20:.0f} {os.path.getsize(out) / 2**30:.3f}")
'''


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--workers', type=int, nargs='+', default=[0, 2])
    ap.add_argument('--preset', default='jbfd11')
    ap.add_argument('--out', default=None, help='folder for the files (default: a temporary folder)')
    a = ap.parse_args()
    d = Path(a.out or tempfile.mkdtemp())
    print(f"JBFD build benchmark, preset {a.preset}, {os.cpu_count()} CPUs")
    print(f"{'workers':>8} {'wall s':>8} {'peak RSS MiB (all procs)':>26} {'file GiB':>9}")
    for w in a.workers:
        out = d / f'{a.preset}_w{w}.h5'
        r = subprocess.run([sys.executable, '-c', CHILD, a.preset, str(out), str(w)], capture_output=True, text=True)
        if r.returncode: print(r.stderr); sys.exit(1)
        dt, peak, size = r.stdout.split()
        print(f"{w:>8} {dt:>8} {peak:>26} {size:>9}")
        out.unlink()


if __name__ == '__main__':
    main()
