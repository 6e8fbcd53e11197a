"The main job: `lstm-pfd demo` on the quick preset writes every report section and file, with real values."
import json
import math
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lstm_pfd import demo as D
from lstm_pfd.demo import REPORT_SECTIONS
from lstm_pfd.physics import FAULTS, expected_bands

SCRIPT = Path(sys.executable).parent / 'lstm-pfd'


def wilson95(k: int, n: int) -> tuple[float, float]:
    "The 95 % Wilson score interval, written out here (not the library's)."
    c, h = (k / n + 1.96 ** 2 / (2 * n)), 1.96 * math.sqrt(k / n * (1 - k / n) / n + 1.96 ** 2 / (4 * n * n))
    return max(0.0, (c - h) / (1 + 1.96 ** 2 / n)), min(1.0, (c + h) / (1 + 1.96 ** 2 / n))


def png_size(path: Path) -> tuple[int, int]:
    "Width and height of a PNG file from its IHDR chunk (fails on anything else)."
    b = path.read_bytes()
    assert b[:8] == b'\x89PNG\r\n\x1a\n' and b[12:16] == b'IHDR', path
    return struct.unpack('>II', b[16:24])

ABLATION = re.compile(r'(accel|orbit|both) (\d\.\d{3}) \((\d\.\d\d)-(\d\.\d\d), (\d+) records\)')


def test_demo_quick(tmp_path):
    out = tmp_path / 'demo'
    r = subprocess.run([str(SCRIPT), 'demo', '--preset', 'quick', '--set', 'dataset.records_per_class_severity=3',
                        '--epochs', '3', '--out', str(out), '--no-progress'], capture_output=True, text=True, timeout=900,
                       env={k: v for k, v in os.environ.items() if k != 'OMP_NUM_THREADS'})
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'report:' in r.stdout
    for name in ('config.yaml', 'fleet_config.yaml', 'shaft_config.yaml', 'dataset.h5', 'fleet.h5', 'shaft.h5', 'model.pt', 'model.onnx',
                 'report.html', 'summary.json'):
        assert (out / name).stat().st_size > 0, name
    pngs = sorted((out / 'figures').glob('*.png'))
    assert {'catalogue.png', 'training.png', 'confusion.png', 'orbits.png'} <= {p.name for p in pngs}
    assert len([p for p in pngs if p.name.startswith('xai_')]) == len(FAULTS)
    for p in pngs: assert p.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n', p
    def no_constants(c): raise AssertionError(f'summary.json holds {c}: not strict JSON')
    s = json.loads((out / 'summary.json').read_text(), parse_constant=no_constants)
    assert [r['split'] for r in s['robustness']] == ['test', 'test_snr20', 'test_snr10', 'test_snr5']
    for row in s['robustness']:
        assert 0 <= row['record_acc'] <= 1 and 0 <= row['window_acc'] <= 1 and row['records'] > 0
    assert s['epochs_run'] >= 1 and s['n_parameters'] > 1000 and s['train_seconds'] > 0
    assert s['epochs_counted_from'] == 1 and 1 <= s['best_epoch'] <= s['epochs_run']
    assert [h['epoch'] for h in s['history']] == list(range(1, s['epochs_run'] + 1))
    assert f"best epoch {s['best_epoch']} (counted from 1)" in r.stdout
    assert s['class_names'] == list(FAULTS) and s['threads'] == 1   # OMP_NUM_THREADS unset below: one thread
    assert s['onnx']['max_abs_diff'] < 1e-4
    assert abs(sum(s['predictor']['probabilities'].values()) - 1) < 1e-4
    assert [x['true'] for x in s['xai']] == list(FAULTS)
    assert any(x['band_alignment'] is not None for x in s['xai'])
    for i, x in enumerate(s['xai']):   # every null has its reason
        for k, v in x.items():
            if v is None: assert f'xai[{i}].{k}' in s['null_values'], (i, k)
        if x['faithful'] is not None: assert x['faithful'] == (x['deletion_auc'] < x['deletion_auc_random'])
    healthy = s['xai'][list(FAULTS).index('healthy')]
    assert healthy['band_alignment'] is None and 'no expected bands' in s['null_values'][f"xai[{list(FAULTS).index('healthy')}].band_alignment"]
    assert {(l['engine'], l['batch']) for l in s['latency']} >= {('PyTorch eager', 1), ('onnxruntime FP32', 1)}
    assert all(l['median_ms'] > 0 for l in s['latency'])
    doc = (out / 'report.html').read_text()
    for k, title in REPORT_SECTIONS.items():
        assert f'id="{k}"' in doc and title in doc, k
    assert doc.count('data:image/png;base64,') == len(pngs)
    assert 'http://' not in doc and 'https://' not in doc   # self-contained
    # accuracies with their number of records and a 95 % Wilson interval (formula written out here, not the library's)
    for row in s['robustness']:
        n, k = row['records'], row['records_correct']
        assert k == round(row['record_acc'] * n)
        assert (row['record_ci95_low'], row['record_ci95_high']) == pytest.approx(wilson95(k, n), abs=1e-9)
        assert row['record_ci95_low'] <= row['record_acc'] <= row['record_ci95_high']
    lo, hi = s['record_ci95']
    assert (f"{s['record_acc']:.3f}</b> (clean; 95 % CI {lo:.3f}-{hi:.3f}, Wilson, {s['robustness'][0]['records']} records)") in doc
    # training: the verdict (converged, or the budget stopped it) and one training time everywhere
    assert s['max_epochs'] == 3 and s['patience'] == 5 and s['training_note'] in doc
    if s['epochs_run'] == 3 and s['best_epoch'] >= 2: assert 'budget capped training' in s['training_note']
    assert s['train_seconds'] == s['stage_seconds']['training']
    assert f"{s['train_seconds']:.1f} s of training" in doc and f"{s['train_seconds']:.1f} s on 1 thread(s)" in r.stdout
    # stage timings: every stage, shown in the report, adding up to no more than the run
    assert list(s['stage_seconds']) == list(D.DEMO_STAGES) and all(v >= 0 for v in s['stage_seconds'].values())
    assert all(s['stage_seconds'][k] > 0 for k in ('training', 'fleet', 'shaft', 'report'))
    assert sum(s['stage_seconds'].values()) <= s['total_seconds'] + 1e-6
    for k in D.DEMO_STAGES: assert f'<td>{k}</td>' in doc, k
    # seeds and the overrides actually used, for both configs
    assert s['seeds']['training'] == 0 and s['seeds']['fleet_training'] == list(range(D.FLEET_SEEDS)) and s['seeds']['shaft'] == 0
    assert s['overrides']['dataset.records_per_class_severity'] == 3 and 'fleet.n_machines' not in s['overrides']
    assert s['fleet']['overrides']['fleet.n_machines'] == D.FLEET_DEMO['fleet.n_machines']
    assert '<code>fleet.n_machines: 6</code>' in doc and 'fleet step (fleet_config.yaml)' in doc
    for text in ('expected bands', 'control bands', 'Band alignment', 'completeness gap', 'no better than random',
                 f"best epoch {s['best_epoch']} of {s['epochs_run']}"):
        assert text in doc, text
    flagged = [x['true'] for x in s['xai'] if x['faithful'] is False]
    assert doc.count('NO BETTER THAN RANDOM') == len(flagged)
    # step 7: a small fleet, trained per track; the new-machines track holds its test machines out of training
    f = s['fleet']
    assert (out / 'fleet.h5').stat().st_size > 0 and f['n_machines'] == D.FLEET_DEMO['fleet.n_machines']
    assert [t['track'] for t in f['tracks']] == ['iid', D.FLEET_TRACK] and set(f['track_rules']) == {'iid', D.FLEET_TRACK}
    iid, new = f['tracks']
    assert iid['train_machines'] == list(range(f['n_machines'])) and not set(new['train_machines']) & set(new['test_machines'])
    # equal budgets: the same records and epochs on both tracks, every seed on both
    assert len(f['runs']) == 2 * D.FLEET_SEEDS >= 6 and f['seeds'] == list(range(D.FLEET_SEEDS))
    assert iid['train_records'] == new['train_records'] and iid['val_records'] == new['val_records']
    assert {r['epochs_run'] for r in f['runs']} == {3} and iid['epochs'] == new['epochs'] == 3
    for t in f['tracks']:
        assert t['seeds'] == f['seeds'] and len(t['per_seed']) == D.FLEET_SEEDS and t['test_records'] > 0
        assert t['record_acc'] == pytest.approx(np.mean(t['per_seed'])) and t['ci95_low'] <= t['record_acc'] <= t['ci95_high']
    assert f"[7/8] fleet of {f['n_machines']} machines, {D.FLEET_SEEDS} seeds" in r.stdout
    assert 'Why a new machine is harder' in doc and 'What this shows' in doc and 'What it does not show' in doc
    assert f"<b>{new['record_acc']:.3f}</b> ({new['ci95_low']:.3f}-{new['ci95_high']:.3f}; iid: {iid['record_acc']:.3f}" in doc
    # step 8: the orbit figure of two shaft records, and the channel ablation of the classical baseline
    sh = s['shaft']
    w, h = png_size(out / 'figures' / 'orbits.png')
    assert w >= 300 and h >= 300 and (out / 'figures' / 'orbits.png').stat().st_size > 10_000
    assert sh['channels'] == ['x', 'y', 'keyphasor', 'accel'] and sh['n_machines'] == D.FLEET_DEMO['fleet.n_machines']
    assert (out / 'shaft.h5').stat().st_size > 0 and sh['overrides']['sensors.channels'] == sh['channels']
    assert [o['fault'] for o in sh['orbits']] == list(D.ORBIT_PAIR)
    for o in sh['orbits']:   # the strongest full-spectrum line is forward and where the physics catalogue puts the class
        f = o['peak_order'] * o['speed_hz']
        assert f > 0 and any(lo <= f <= hi for lo, hi in expected_bands(o['fault'], o['speed_hz'])), o
    assert [r['features'] for r in sh['ablation']] == ['accel', 'orbit', 'both']
    for a in sh['ablation']:
        n, k = a['records'], a['records_correct']
        assert n > 0 and 0 <= k <= n and a['record_acc'] == pytest.approx(k / n)
        assert (a['record_ci95_low'], a['record_ci95_high']) == pytest.approx(wilson95(k, n), abs=1e-9)
        assert 0 <= a['record_ci95_low'] <= a['record_acc'] <= a['record_ci95_high'] <= 1
    # the ablation line, on the console and in the report: three accuracies in [0, 1], each inside its interval, with its records
    printed = [l for l in r.stdout.splitlines() if l.startswith('[8/8] channel ablation')]
    assert len(printed) == 1, r.stdout[-2000:]
    got = ABLATION.findall(printed[0])
    assert [g[0] for g in got] == ['accel', 'orbit', 'both'], printed[0]
    for (name, acc, lo, hi, n), a in zip(got, sh['ablation']):
        acc, lo, hi, n = float(acc), float(lo), float(hi), int(n)
        assert 0 <= lo <= acc <= hi <= 1 and n == a['records'] > 0, printed[0]
        assert (acc, lo, hi) == pytest.approx((a['record_acc'], a['record_ci95_low'], a['record_ci95_high']), abs=0.006)
    line = printed[0][len('[8/8] '):printed[0].index('; orbits:')]
    assert f'<b>{line}</b>' in doc and 'id="shaft"' in doc
    assert f"{sh['orbits'][0]['forward_1x_um']:.1f} um" in doc

def test_demo_threads_respects_omp(monkeypatch):
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    assert D.demo_threads() == 1
    monkeypatch.setenv('OMP_NUM_THREADS', '4')
    assert D.demo_threads() == 4 and D.demo_threads(2) == 2
    monkeypatch.setenv('OMP_NUM_THREADS', 'lots')
    assert D.demo_threads() == 1
    with pytest.raises(ValueError, match='threads'): D.demo_threads(0)


def test_strict_summary_nulls_with_reasons():
    s = D.strict_summary({'x': [np.float32(np.nan), 1.5], 'y': {'z': float('inf')}}, notes={'x[0]': 'empty split'})
    assert s == {'x': [None, 1.5], 'y': {'z': None}, 'null_values': {'x[0]': 'empty split', 'y.z': 'not a finite number (inf)'}}
    json.dumps(s, allow_nan=False)


def test_figures_name_classes_on_every_axis():
    from matplotlib.figure import Figure
    fig = D.plot_confusion(np.eye(len(FAULTS), dtype=int))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(FAULTS) == [t.get_text() for t in ax.get_yticklabels()]
    fig = Figure(); ax = fig.subplots(); ax.set_ylabel('p(class 4)')
    D._name_prob_axes(fig, 'lubrication')
    assert ax.get_ylabel() == 'p(lubrication)'
    fig = D.plot_catalogue(__import__('lstm_pfd.config', fromlist=['DataConfig']).DataConfig.preset('quick'), duration_s=0.5)
    assert [a.get_title() for a in fig.axes[:len(FAULTS)]] == [f'{k} {n}' for k, n in enumerate(FAULTS)]
