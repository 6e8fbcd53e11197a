"""How much of each fleet track is learnable: the classical forest on the `jbfd11_fleet` records without sensor noise.

The fleet benchmark's feature baseline (`classical`: catalogue band features at each record's speed + a random forest
of `bench_fleet.FOREST_TREES` trees) is run, 5 seeds x 4 tracks, on a file of the same preset in which every layer of
the sensor-noise model is off (`NoiseConfig.only()`: no background, electrical, quantisation or any other layer; no
stored noisy test copies). Machines, operating conditions, severities, transfer paths and the tracks' record lists
are those of `jbfd11_fleet` (the same seeds), so each track's score without noise is an estimate of its ceiling for
this kind of model: what is left wrong there is the overlap that the physics itself puts between classes (an
incipient fault inside the spread of healthy baselines, the 1X/2X family), not the sensor. The gap between that and
the committed noisy forest is what the sensor noise costs; the gap between the networks and the noisy forest is
the part a better model could still close.

Run (one process of one thread; about 25 minutes on a 2-core x86 CPU, most of it the band features of 3,520
records, cached per record under --scratch so the tracks share them):
    OMP_NUM_THREADS=1 python benchmarks/bench_ceiling.py --data jbfd11_fleet_noise_free.h5 --out nbs/_data/track_ceilings.json
Run folders go to --root (metrics only); --reference names the committed fleet runs read for the noisy rows.
"""
import argparse
import dataclasses
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import bench_fleet  # noqa: E402  (the fleet benchmark's experiments, sweep and tables: one definition)
from bench_shift import _hardware  # noqa: E402

from lstm_pfd.config import TRACKS, DataConfig  # noqa: E402
from lstm_pfd.utils import atomic_write  # noqa: E402


def noise_free_config() -> DataConfig:
    "The `jbfd11_fleet` preset with every sensor-noise layer off and no noisy test copies."
    cfg = DataConfig.preset('jbfd11_fleet')
    return dataclasses.replace(cfg, noise=cfg.noise.only(), dataset=dataclasses.replace(cfg.dataset, snr_db=()))


def _clean_rows(root) -> dict:
    "Per track: {model: (mean, ci_low, ci_high, n)} of the clean record accuracy of the finished runs under `root`."
    _, tabs = bench_fleet.summary_tables(root)
    out = {}
    for track, tb in tabs.items():
        t = tb['clean'].table
        out[track] = {r['model.name']: [float(r['mean']), float(r['ci_low']), float(r['ci_high']), int(r['n'])] for _, r in t.iterrows()}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', default='jbfd11_fleet_noise_free.h5', help='the noise-free fleet file (built if missing)')
    p.add_argument('--root', default='runs/ceiling_runs', help='run folders of the noise-free forest')
    p.add_argument('--scratch', default='runs/ceiling_scratch', help='feature caches')
    p.add_argument('--reference', default='nbs/tutorials/fleet_runs', help='the committed (noisy) fleet runs')
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2, 3, 4])
    p.add_argument('--workers', type=int, default=1)
    p.add_argument('--out', type=Path, help='JSON file to write (e.g. nbs/_data/track_ceilings.json)')
    a = p.parse_args(argv)
    t0, load = time.perf_counter(), os.getloadavg()[0]
    cfg = noise_free_config()
    if not Path(a.data).exists():
        from lstm_pfd.data import build_dataset
        with ProcessPoolExecutor(max(1, a.workers)) as ex: build_dataset(cfg, a.data, executor=ex)
    bench_fleet.sweep(a.data, a.root, a.scratch, list(TRACKS), ['classical'], a.seeds, workers=a.workers)
    free, noisy = _clean_rows(a.root), _clean_rows(a.reference)
    rows = []
    for track in TRACKS:
        ceil = free.get(track, {}).get('classical')
        if ceil is None: continue
        ref = noisy.get(track, {})
        best_net = max(((m, v) for m, v in ref.items() if m not in bench_fleet.FEATURE_MODELS), key=lambda mv: mv[1][0], default=None)
        rows.append({'track': track, 'noise_free_forest': ceil, 'forest': ref.get('classical')})   # the networks: read from --reference
        f = ref.get('classical')
        print(f"{track:15s} forest without noise {100 * ceil[0]:.1f} [{100 * ceil[1]:.1f}, {100 * ceil[2]:.1f}] ({ceil[3]} seeds)"
              + (f"; with noise {100 * f[0]:.1f}" if f else '') + (f"; best network {best_net[0]} {100 * best_net[1][0]:.1f}" if best_net else ''))
    from lstm_pfd.data import open_dataset
    with open_dataset(a.data) as ds: data_hash = bench_fleet.dataset_id(ds)
    res = {'command': 'OMP_NUM_THREADS=1 python benchmarks/bench_ceiling.py ' + ' '.join(sys.argv[1:] if argv is None else argv),
           'hardware': _hardware(), 'threads': 1, 'load_average_at_start': round(load, 2),
           'seconds': round(time.perf_counter() - t0), 'data': data_hash, 'seeds': a.seeds,
           'columns': 'record accuracy, clean test: [mean, 95 % t-interval low, high, seeds]', 'rows': rows}
    if a.out:
        with atomic_write(a.out, overwrite=True) as tmp: tmp.write_text(json.dumps(res, indent=1) + '\n')
    return res


if __name__ == '__main__':
    main()
