"The main job: `lstm-pfd demo` on the quick preset writes every report section and file, with real values."
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np

from lstm_pfd.demo import REPORT_SECTIONS
from lstm_pfd.physics import FAULTS

SCRIPT = Path(sys.executable).parent / 'lstm-pfd'


def test_demo_quick(tmp_path):
    out = tmp_path / 'demo'
    r = subprocess.run([str(SCRIPT), 'demo', '--preset', 'quick', '--set', 'dataset.records_per_class_severity=3',
                        '--epochs', '3', '--out', str(out), '--no-progress'], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'report:' in r.stdout
    for name in ('config.yaml', 'dataset.h5', 'model.pt', 'model.onnx', 'report.html', 'summary.json'):
        assert (out / name).stat().st_size > 0, name
    pngs = sorted((out / 'figures').glob('*.png'))
    assert {'catalogue.png', 'training.png', 'confusion.png'} <= {p.name for p in pngs}
    assert len([p for p in pngs if p.name.startswith('xai_')]) == len(FAULTS)
    for p in pngs: assert p.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n', p
    s = json.loads((out / 'summary.json').read_text())
    assert [r['split'] for r in s['robustness']] == ['test', 'test_snr20', 'test_snr10', 'test_snr5']
    for row in s['robustness']:
        assert 0 <= row['record_acc'] <= 1 and 0 <= row['window_acc'] <= 1 and row['records'] > 0
    assert s['epochs_run'] >= 1 and s['n_parameters'] > 1000 and s['train_seconds'] > 0
    assert s['onnx']['max_abs_diff'] < 1e-4
    assert abs(sum(s['predictor']['probabilities'].values()) - 1) < 1e-4
    assert [x['true'] for x in s['xai']] == list(FAULTS)
    assert any(math.isfinite(x['band_alignment']) for x in s['xai'])
    assert {(l['engine'], l['batch']) for l in s['latency']} >= {('PyTorch eager', 1), ('onnxruntime FP32', 1)}
    assert all(l['median_ms'] > 0 for l in s['latency'])
    doc = (out / 'report.html').read_text()
    for k, title in REPORT_SECTIONS.items():
        assert f'id="{k}"' in doc and title in doc, k
    assert doc.count('data:image/png;base64,') == len(pngs)
    assert 'http://' not in doc and 'https://' not in doc   # self-contained
    assert f"{s['record_acc']:.4f}" in doc
