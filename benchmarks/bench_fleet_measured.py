"""What the fleet generator realises, measured over the machines of a fleet (prints a table, asserts nothing).

    OMP_NUM_THREADS=1 python benchmarks/bench_fleet_measured.py [--preset jbfd11_fleet] \
        [--out nbs/_data/fleet_measured.json] [--figure nbs/images/fleet_measured.png]

Per machine: four healthy records (velocity RMS 10-1000 Hz, ISO 20816-3 zone), two healthy records at its nominal
speed (its healthy in-band baseline), then one record per class x severity slot, rendered with `generate(...,
machine=m, components=True)`: the record's velocity RMS and the fault part's in-band energy over the machine's
healthy baseline, in dB. Per class and slot: median and 10-90 % over the fleet, the ISO zones reached, the share of
machines in zone C or D, and (incipient slot) the share of records inside the healthy machines' 10-90 % velocity
range. nbs/01a_fleet.ipynb shows the JSON and the figure.
"""
import os
for v in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'NUMEXPR_NUM_THREADS'): os.environ.setdefault(v, '1')
import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from lstm_pfd import __version__
from lstm_pfd.config import DataConfig
from lstm_pfd.fleet import ISO_20816_3, band_energy, fault_kind, fleet, velocity_rms
from lstm_pfd.physics import FAULTS
from lstm_pfd.signals import generate


def measure(preset: str = 'jbfd11_fleet') -> dict:
    "The measured table of `preset`'s fleet (see the module docstring)."
    cfg = DataConfig.preset(preset)
    fs, machines = cfg.signal.fs, fleet(cfg)
    healthy = {m.id: np.stack([generate(cfg, 'healthy', severity=0, seed=1000 * m.id + k, machine=m)[0] for k in range(4)])
               for m in machines}
    vh = np.array([np.median(velocity_rms(healthy[m.id], fs)) for m in machines])
    h_nom = {m.id: np.stack([generate(cfg, 'healthy', severity=0, seed=500 + k, machine=m, speed_hz=m.speed_hz)[0] for k in range(2)])
             for m in machines}
    lo, hi = np.percentile(vh, [10, 90])
    rows = []
    for fi, fault in enumerate(FAULTS[1:], 1):
        e_h = {m.id: np.median(band_energy(h_nom[m.id], fs, fault, m.speed_hz)) for m in machines}
        for si, sev in enumerate(cfg.severity.names):
            v, r = [], []
            for m in machines:
                x, meta, parts = generate(cfg, fault, severity=si, seed=10_000 * m.id + 100 * fi + si, machine=m, components=True)
                v.append(float(velocity_rms(x, fs)))
                r.append(float(10 * np.log10(band_energy(parts['fault'], fs, fault, meta['speed_hz']) / e_h[m.id])))
            v, z = np.array(v), [m.zone(x) for m, x in zip(machines, v)]
            rows.append(dict(fault=fault, severity=sev, slot=si, kind=fault_kind(fault),
                             velocity_mm_s=np.percentile(v, [10, 50, 90]).tolist(), in_band_db=np.percentile(r, [10, 50, 90]).tolist(),
                             zones=''.join(sorted(set(z))), share_zone_cd=float(np.mean([q in 'CD' for q in z])),
                             share_in_healthy_range=float(np.mean((v >= lo) & (v <= hi)))))
    zones = [m.zone(x) for m, x in zip(machines, vh)]
    return dict(preset=preset, n_machines=len(machines), severity_names=list(cfg.severity.names),
                iso_limits_mm_s=list(ISO_20816_3[(cfg.fleet.iso_group, 'rigid')]),
                healthy=dict(velocity_mm_s=vh.tolist(), median=float(np.median(vh)), p10=float(lo), p90=float(hi),
                             zones={z: zones.count(z) for z in sorted(set(zones))}),
                rows=rows)


def format_table(res: dict) -> str:
    "The measured table as text."
    out = [f"{'class':<24}{'severity':<11}{'kind':<7}{'velocity mm/s: median [10-90 %]':<34}{'in-band dB: median [10-90 %]':<32}zones"]
    for r in res['rows']:
        v, d = r['velocity_mm_s'], r['in_band_db']
        out.append(f"{r['fault']:<24}{r['severity']:<11}{r['kind']:<7}{v[1]:6.2f} [{v[0]:5.2f}-{v[2]:5.2f}]{'':<15}"
                   f"{d[1]:+6.1f} [{d[0]:+5.1f} to {d[2]:+5.1f}]{'':<8}{r['zones']}")
    return '\n'.join(out)


def figure(res: dict):
    "Velocity (left) and in-band level (right) per class and severity slot: median and 10-90 % over the fleet."
    from lstm_pfd.plotting import figure as _figure
    fig = _figure((12, 5.2))
    axv, axd = fig.subplots(1, 2)
    faults = list(dict.fromkeys(r['fault'] for r in res['rows']))
    ns = len(res['severity_names'])
    for r in res['rows']:
        y = faults.index(r['fault']) + (r['slot'] - (ns - 1) / 2) * 0.18
        for ax, key in ((axv, 'velocity_mm_s'), (axd, 'in_band_db')):
            lo_, med, hi_ = r[key]
            ax.plot([lo_, hi_], [y, y], color=f'C{r["slot"]}', lw=1.2)
            ax.plot(med, y, 'o', color=f'C{r["slot"]}', ms=3.5, label=r['severity'] if r['fault'] == faults[0] else None)
    h = res['healthy']
    axv.axvspan(h['p10'], h['p90'], color='0.85', zorder=0, label='healthy machines, 10-90 %')
    for lim, z in zip(res['iso_limits_mm_s'], ('A/B', 'B/C', 'C/D')):
        axv.axvline(lim, color='k', lw=0.6, ls='--'); axv.text(lim, len(faults) - 0.4, f' {z}', fontsize=7, va='bottom')
    axv.set(xscale='log', xlabel='velocity RMS 10-1000 Hz, mm/s (ISO 20816-3 zone limits dashed)', yticks=range(len(faults)),
            yticklabels=faults, ylim=(-0.6, len(faults) - 0.2))
    axd.axvline(0, color='k', lw=0.6)
    axd.set(xlabel="fault in-band energy over the machine's healthy baseline, dB", yticks=range(len(faults)), yticklabels=[],
            ylim=(-0.6, len(faults) - 0.2))
    axv.legend(fontsize=7, loc='lower right')
    fig.suptitle(f"{res['preset']}: {res['n_machines']} machines, one record per class x severity x machine "
                 "(dot: median, bar: 10-90 % over the fleet)", fontsize=9)
    fig.tight_layout()
    return fig


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--preset', default='jbfd11_fleet')
    ap.add_argument('--out', default=None, help='write the table to this JSON file')
    ap.add_argument('--figure', default=None, help='save the figure to this PNG file')
    ap.add_argument('--hardware', default='2-core x86 CPU', help='how the CPU is named in the JSON')
    a = ap.parse_args()
    t = time.perf_counter()
    res = measure(a.preset)
    secs = time.perf_counter() - t
    print(format_table(res))
    print(f"{res['n_machines']} machines in {secs:.0f} s")
    res.update(command='OMP_NUM_THREADS=1 python benchmarks/bench_fleet_measured.py ' + ' '.join(sys.argv[1:]),
               hardware=f'{a.hardware}, 1 thread', seconds=secs, lstm_pfd=__version__, python=platform.python_version(),
               numpy=np.__version__)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=1, allow_nan=False) + '\n')
        print(f'wrote {a.out}')
    if a.figure:
        Path(a.figure).parent.mkdir(parents=True, exist_ok=True)
        figure(res).savefig(a.figure, dpi=100)
        print(f'wrote {a.figure}')
