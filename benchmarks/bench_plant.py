"""ADC saturation per class on a fleet with one full scale and on a fleet with a range setting per machine (prints a
table, asserts nothing).

    OMP_NUM_THREADS=1 python benchmarks/bench_plant.py [--presets jbfd11_fleet jbfd11_plant] [--out nbs/_data/fleet_plant.json]

Every record of each preset's protocol (3,520 for the jbfd11 fleets) is rendered with `generate_batch`, machine by
machine (each machine's severity laws computed once), and the records whose ADC saturated (`meta['adc_saturated']`)
are counted per class. nbs/01a_fleet.ipynb (*A fleet more like a plant*) shows the JSON.
"""
import os
for v in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'NUMEXPR_NUM_THREADS'): os.environ.setdefault(v, '1')
import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from lstm_pfd import __version__
from lstm_pfd.config import DataConfig
from lstm_pfd.fleet import fleet
from lstm_pfd.physics import class_names
from lstm_pfd.plan import record_plan
from lstm_pfd.signals import generate_batch


def saturation(preset: str) -> dict:
    "Saturated records per class of `preset` (every record of its protocol)."
    cfg = DataConfig.preset(preset)
    plan, machines, names = record_plan(cfg), fleet(cfg), class_names()
    counts = dict.fromkeys(names, 0)
    for m in tqdm(machines, desc=preset):
        rows = np.flatnonzero(plan['machine_id'] == m.id)
        _, meta = generate_batch(cfg, plan['label'][rows].tolist(), plan['severity'][rows].tolist(), plan['seed'][rows].tolist(), machines=m)
        for lab in np.asarray(plan['label'][rows])[np.asarray(meta['adc_saturated'], bool)]: counts[names[int(lab)]] += 1
    return dict(records=int(len(plan['label'])), fleet_hash=cfg.hash(), saturated=counts,
                full_scale_m_s2=sorted({round(m.full_scale or cfg.noise.quantization.full_scale, 4) for m in machines}))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--presets', nargs='+', default=['jbfd11_fleet', 'jbfd11_plant'])
    ap.add_argument('--out', type=Path, default=None, help='JSON file to write (default: print only)')
    a = ap.parse_args(argv)
    logging.getLogger('lstm_pfd').setLevel(logging.ERROR)     # one warning per saturated record otherwise
    t0 = time.time()
    res = {p: saturation(p) for p in a.presets}
    out = dict(command='OMP_NUM_THREADS=1 python benchmarks/bench_plant.py ' + ' '.join(sys.argv[1:] if argv is None else argv),
               hardware=f"{platform.machine()} CPU, 1 thread", python=platform.python_version(), lstm_pfd=__version__,
               seconds=round(time.time() - t0, 1), class_names=class_names(), presets=res)
    print(f"{'class':<24}" + ''.join(f"{p:>16}" for p in res))
    for c in out['class_names']: print(f"{c:<24}" + ''.join(f"{res[p]['saturated'][c]:>16}" for p in res))
    if a.out: a.out.write_text(json.dumps(out, indent=1) + '\n')


if __name__ == '__main__':
    main()
