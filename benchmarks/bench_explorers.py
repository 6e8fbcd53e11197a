"""Latency of the explorers: control change to new image, per explorer and control. Measures; asserts nothing.

    OMP_NUM_THREADS=1 python benchmarks/bench_explorers.py [--repeat 5] [--out latency.json]     # real JupyterLab
    OMP_NUM_THREADS=1 python benchmarks/bench_explorers.py --inprocess [--repeat 10]               # in one process
    OMP_NUM_THREADS=1 python benchmarks/bench_explorers.py --inprocess --only OrbitExplorer        # one explorer

Default: starts JupyterLab (this interpreter, a temporary Jupyter home, 127.0.0.1, no token), opens a notebook
that builds a small `quick` dataset, a compact model trained one epoch, three short runs, and shows
SignalExplorer, DatasetExplorer, ModelExplorer, RobustnessExplorer, RunsExplorer and OrbitExplorer (a
`quick_shaft` probe record; it keeps one analysed record, so every control but the order filter is timed with a
new record generated and analysed), and DatasetExplorer and ModelExplorer again on a small 4-channel `quick_shaft`
file (`/shaft`: their channel picker; `--only DatasetExplorer` includes it); then drives each control
from headless Chromium (playwright with /usr/bin/chromium, never `playwright install`) and times, in the page,
from the user's input event to the new PNG in the explorer's image, or to its new title or side panel when the
plot stays the same (`first`); ModelExplorer's attributions are
computed in a background thread, so for its controls the time to the image with the attribution (`final`) is
given too. `--inprocess` sets each control's `.value` in this process and times the update (wall and CPU time),
which is less sensitive to other load on the machine. Prints the median per explorer and control, and the load
average. Timings vary with other load on the CPU: repeat a run and report the spread.
"""
import os
for v in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS'): os.environ.setdefault(v, '1')
import argparse
import json
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path('/usr/bin/chromium')
KERNEL = 'lstm_pfd_bench'

SETUP = """import torch; torch.set_num_threads(1)
import tempfile
from pathlib import Path
from lstm_pfd.config import DataConfig
from lstm_pfd.data import build_dataset, open_dataset
from lstm_pfd.models import create_model
from lstm_pfd.train import fit
from lstm_pfd.experiments import load_experiment, run_experiment
from lstm_pfd.explorers import SignalExplorer, DatasetExplorer, ModelExplorer, RobustnessExplorer, RunsExplorer, OrbitExplorer
tmp = Path(tempfile.mkdtemp())
cfg = DataConfig.preset('quick', {'dataset.records_per_class_severity': 3, 'dataset.snr_db': [10.0]})
ds = open_dataset(build_dataset(cfg, tmp / 'q.h5', progress=False))
model = create_model('compact', channels=(8, 16), first_stride=32, seed=0)
fit(model, ds.windows('train'), epochs=1, batch_size=32, progress=False, seed=0)
model.eval()
for s in (0, 1, 2): run_experiment(load_experiment('quick', {'train.seed': s, 'train.epochs': 2}), tmp / 'runs')"""
SHAFT_SETUP = """scfg = DataConfig.preset('quick_shaft', {'dataset.records_per_class_severity': 3})
sds = open_dataset(build_dataset(scfg, tmp / 'shaft.h5', progress=False))
smodel = create_model('compact', n_classes=len(sds.fault_names), in_channels=len(sds.channels), channels=(8, 16), first_stride=32, seed=0)
fit(smodel, sds.windows('train'), epochs=1, batch_size=32, progress=False, seed=0, checkpoint_path=tmp / 'shaft.pt')"""
EXPLORERS = {
    'SignalExplorer': "SignalExplorer(cfg, 'misalignment', seed=1)",
    'DatasetExplorer': "DatasetExplorer(ds, 'train')",
    'ModelExplorer': "ModelExplorer(model, ds, 'test', method='none')",
    'RobustnessExplorer': "RobustnessExplorer(model, ds, 'test', snr_db=10.0)",
    'RunsExplorer': "RunsExplorer(tmp / 'runs', max_runs=3)",
    'OrbitExplorer': "OrbitExplorer('quick_shaft', 'misalignment', cache=1)",
    'DatasetExplorer/shaft': "DatasetExplorer(sds, 'train')",
    'ModelExplorer/shaft': "ModelExplorer(tmp / 'shaft.pt', sds, 'test', method='none')",   # the checkpoint names its 4 channels
}
NEEDS_SETUP = {'OrbitExplorer': False}   # explorers that need no dataset, model or runs (default: they do)

# (explorer, control, kind, label, values): kind says how the page changes it; values are cycled through
ACTIONS = [
    ('SignalExplorer', 'class', 'select', 'class', ['looseness', 'oil_whirl', 'misalignment', 'wear', 'cavitation']),
    ('SignalExplorer', 'severity', 'select', 'severity', None),
    ('SignalExplorer', 'seed', 'text', 'seed', [2, 3, 4, 5, 6, 7]),
    ('SignalExplorer', 'speed', 'slider', 'speed (Hz)', [0.2, 0.7, 0.4, 0.9, 0.1, 0.6]),
    ('SignalExplorer', 'load', 'slider', 'load (x rated)', [0.2, 0.7, 0.4, 0.9, 0.1, 0.6]),
    ('SignalExplorer', 'oil T', 'slider', 'oil T (C)', [0.2, 0.7, 0.4, 0.9, 0.1, 0.6]),
    ('SignalExplorer', 'noise layer', 'checkbox', 'measurement', None),
    ('SignalExplorer', 'window', 'select', 'window', ['0.5 s', '1 s', '0.25 s', '2 s']),
    ('SignalExplorer', 'start', 'slider', 'start (s)', [0.5, 0.1, 0.8, 0.3]),
    ('SignalExplorer', 'spectrogram', 'select', 'spectrogram', None),
    ('SignalExplorer', 'log axis', 'checkbox', 'log frequency axis', None),
    ('DatasetExplorer', 'record', 'select', 'record', None),
    ('DatasetExplorer', 'split', 'select', 'split', ['val', 'test', 'train']),
    ('DatasetExplorer', 'classes', 'multi', 'classes', [[0, 1, 2], [3, 4, 5], [6, 7], list(range(11))]),
    ('DatasetExplorer', 'speed range', 'slider', 'speed (Hz)', ['End', 'Home']),   # the low handle to the top (no record kept) and back: a one-step move keeps the same records and changes nothing
    ('ModelExplorer', 'record', 'select', 'record', None),
    ('ModelExplorer', 'window', 'slider', 'window', [0.9, 0.1, 0.6, 0.35]),
    ('ModelExplorer', 'XAI (ig, occlusion, gradcam, shap)', 'select', 'XAI', ['ig', 'occlusion', 'gradcam', 'shap', 'none']),
    ('ModelExplorer', 'record, with ig', 'select', 'record', None),
    ('ModelExplorer', 'target', 'toggle', 'target', ['true', 'predicted']),
    ('RobustnessExplorer', 'SNR', 'slider', 'SNR (dB)', ['ArrowRight']),   # a new SNR each time (no cached evaluation)
    ('RobustnessExplorer', 'noise seed', 'text', 'noise seed', [1, 2, 3, 4, 5, 6]),
    ('RobustnessExplorer', 'noise layer', 'checkbox', 'pink', None),
    ('RunsExplorer', 'runs', 'multi', 'runs', [[0, 1], [1, 2], [0, 2], [0, 1, 2], [2]]),
    ('RunsExplorer', 'condition', 'select', 'condition', None),
    ('RunsExplorer', 'level', 'toggle', 'level', ['window', 'record']),
    ('OrbitExplorer', 'class', 'select', 'class', ['looseness', 'oil_whirl', 'misalignment', 'wear', 'cavitation']),
    ('OrbitExplorer', 'severity', 'select', 'severity', None),
    ('OrbitExplorer', 'speed', 'slider', 'speed (Hz)', [0.2, 0.7, 0.4, 0.9, 0.1, 0.6]),
    ('OrbitExplorer', 'load', 'slider', 'load (x rated)', [0.2, 0.7, 0.4, 0.9, 0.1, 0.6]),
    ('OrbitExplorer', 'machine', 'select', 'machine', None),
    ('OrbitExplorer', 'order filter', 'toggle', 'order filter', ['1X', '2X', '0.5X', 'direct']),
    ('DatasetExplorer/shaft', 'channel', 'select', 'channel', None),
    ('DatasetExplorer/shaft', 'record', 'select', 'record', None),
    ('ModelExplorer/shaft', 'channel', 'select', 'channel', None),
    ('ModelExplorer/shaft', 'channel, with ig', 'select', 'channel', None),   # the record's attribution cached: a redraw
    ('ModelExplorer/shaft', 'record, with ig', 'select', 'record', None),
]


def _selected(name: str, control: str, only) -> bool:
    "Whether `--only` (Explorer or Explorer:control entries; empty: everything) selects this control; Explorer selects Explorer/shaft too."
    return not only or name in only or name.split('/')[0] in only or f'{name}:{control}' in only
SETTLE_S = {'ModelExplorer': 3.0, 'ModelExplorer/shaft': 3.0}   # background attributions: collect the image changes of this long after an input

ARM = """out => {
  window.__t0 = null; window.__changes = []; window.__text = [];
  const img = out.querySelector('img');
  if (window.__obs) { window.__obs.disconnect(); window.__tobs.disconnect(); }
  window.__obs = new MutationObserver(() => window.__changes.push(performance.now()));
  window.__obs.observe(img, {attributes: true, attributeFilter: ['src']});
  // a control that leaves the plot as it was (the same PNG) still changes the title or the side panel
  window.__tobs = new MutationObserver(() => window.__text.push(performance.now()));
  for (const h of out.querySelectorAll('.widget-html-content'))
    window.__tobs.observe(h, {childList: true, characterData: true, subtree: true});
  if (!window.__listening) {
    window.__listening = true;
    for (const ev of ['pointerdown', 'mousedown', 'keydown', 'input', 'change', 'click'])
      document.addEventListener(ev, () => { if (window.__t0 === null) window.__t0 = performance.now(); }, true);
  }
}"""


# ------------------------------------------------------------------------------------------ in one process
def _inprocess_values(ex, control: str, kind: str, label: str, values, n: int):
    "The widget and `n` values for one control of an in-process explorer."
    import ipywidgets as W
    w = {'class': 'fault', 'oil T': 'temperature', 'noise layer': None, 'log axis': 'spec_log', 'spectrogram': 'spec_fmax',
         'speed range': None, 'XAI (ig, occlusion, gradcam, shap)': 'method', 'record, with ig': 'record', 'channel, with ig': 'channel', 'target': 'target_mode',
         'SNR': 'snr', 'noise seed': 'noise_seed', 'condition': 'condition_w', 'level': 'level_w',
         'order filter': 'order'}.get(control, control)
    if control == 'noise layer': w = ex.noise['pink' if hasattr(ex, 'snr') else 'measurement']
    elif control == 'speed range': w = ex.ranges['speed_hz']
    else: w = getattr(ex, w)
    if isinstance(w, W.Checkbox): return w, [not w.value if i % 2 == 0 else w.value for i in range(n)]
    if isinstance(w, (W.FloatSlider, W.IntSlider)):
        if isinstance(values[0], str): return w, [w.value + (i + 1) * w.step for i in range(n)]   # one step up each time
        return w, [type(w.value)(w.min + f * (w.max - w.min)) for f in (values * n)[:n]]
    if isinstance(w, W.FloatRangeSlider):
        if isinstance(values[0], str):   # the keys the page presses: 'End' moves the low handle to the top, 'Home' back
            return w, [(w.max, w.max) if v == 'End' else (w.min, w.max) for v in (values * n)[:n]]
        return w, [(w.min + f * (w.max - w.min), w.max) for f in (values * n)[:n]]
    if isinstance(w, W.SelectMultiple):
        opts = [v for _, v in w.options] if isinstance(w.options[0], tuple) else list(w.options)
        return w, [tuple(opts[i] for i in v if i < len(opts)) for v in (values * n)[:n]]
    if isinstance(w, (W.Dropdown, W.ToggleButtons)):
        opts = [o[1] if isinstance(o, tuple) else o for o in w.options]
        if values is not None: opts = [o for o in opts if str(o) in map(str, values) or any(str(v).startswith(str(o)) for v in values)] or opts
        seq = [o for o in opts if o != w.value] + [w.value]
        return w, (seq * n)[:n]
    return w, [values[i % len(values)] for i in range(n)]


def run_inprocess(repeat: int, only=()) -> list[dict]:
    import torch
    torch.set_num_threads(1)
    ns, actions = {}, [a for a in ACTIONS if _selected(a[0], a[1], only)]
    names = list(dict.fromkeys(a[0] for a in actions))
    exec(SETUP if any(NEEDS_SETUP.get(n, True) for n in names) else 'from lstm_pfd.explorers import OrbitExplorer', ns)
    if any(n.endswith('/shaft') for n in names): exec(SHAFT_SETUP, ns)
    exs, rows = {k: eval(EXPLORERS[k], ns) for k in names}, []
    for name, control, kind, label, values in actions:
        ex = exs[name]
        if control.endswith(', with ig'): ex.method.value = 'ig'; getattr(ex, 'wait', lambda: None)()
        w, vals = _inprocess_values(ex, control, kind, label, values, repeat)
        wall, cpu, final = [], [], []
        for v in vals:
            t0, c0 = time.perf_counter(), time.process_time()
            w.value = v
            wall.append(time.perf_counter() - t0); cpu.append(time.process_time() - c0)
            if hasattr(ex, 'wait'):
                ex.wait()
                final.append(time.perf_counter() - t0)
        row = dict(explorer=name, control=control, n=len(wall), wall_ms=1e3 * float(np.median(wall)), cpu_ms=1e3 * float(np.median(cpu)))
        if final: row['final_ms'] = 1e3 * float(np.median(final))
        rows.append(row)
        print(f"{name:21s} {control:36s} wall {row['wall_ms']:6.0f} ms  cpu {row['cpu_ms']:6.0f} ms"
              + (f"  attribution drawn {row['final_ms']:6.0f} ms" if final else ''), flush=True)
    for ex in exs.values(): getattr(ex, 'close', lambda: None)()
    return rows


# ------------------------------------------------------------------------------------------ real JupyterLab
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start_lab(tmp: Path):
    "JupyterLab in a temporary Jupyter home with a kernelspec running this interpreter; returns (process, url, work dir)."
    home = {k: tmp / d for k, d in (('JUPYTER_CONFIG_DIR', 'config'), ('JUPYTER_DATA_DIR', 'data'),
                                     ('JUPYTER_RUNTIME_DIR', 'runtime'), ('IPYTHONDIR', 'ipython'))}
    home['JUPYTERLAB_SETTINGS_DIR'] = tmp / 'lab' / 'user-settings'
    home['JUPYTERLAB_WORKSPACES_DIR'] = tmp / 'lab' / 'workspaces'
    for p in home.values(): p.mkdir(parents=True)
    notif = home['JUPYTERLAB_SETTINGS_DIR'] / '@jupyterlab' / 'apputils-extension'
    notif.mkdir(parents=True)
    (notif / 'notification.jupyterlab-settings').write_text(json.dumps({'fetchNews': 'false', 'checkForUpdates': False}))
    spec = home['JUPYTER_DATA_DIR'] / 'kernels' / KERNEL
    spec.mkdir(parents=True)
    (spec / 'kernel.json').write_text(json.dumps({'argv': [sys.executable, '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
                                                  'display_name': 'lstm_pfd bench', 'language': 'python'}))
    work = tmp / 'work'
    work.mkdir()
    env = {**os.environ, **{k: str(v) for k, v in home.items()}, 'JUPYTER_PLATFORM_DIRS': '1',
           'PYTHONPATH': os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]).rstrip(os.pathsep)}
    port = _free_port()
    cmd = [sys.executable, '-m', 'jupyterlab', '--no-browser', '--ServerApp.ip=127.0.0.1', f'--ServerApp.port={port}',
           '--ServerApp.port_retries=0', '--IdentityProvider.token=', '--ServerApp.password=', f'--ServerApp.root_dir={work}',
           '--LabApp.news_url=None', '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate',
           '--LabApp.extension_manager=readonly']
    if hasattr(os, 'geteuid') and os.geteuid() == 0: cmd.append('--allow-root')
    log = open(tmp / 'lab.log', 'wb')
    proc = subprocess.Popen(cmd, env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url, deadline = f'http://127.0.0.1:{port}', time.time() + 120
    while True:
        if proc.poll() is not None: raise RuntimeError(f'jupyter lab exited: {(tmp / "lab.log").read_text()[-2000:]}')
        try:
            with urllib.request.urlopen(f'{url}/api/status', timeout=2) as r:
                if r.status == 200: return proc, url, work
        except OSError: pass
        if time.time() > deadline: raise TimeoutError('jupyter lab did not answer within 120 s')
        time.sleep(0.3)


def stop_lab(proc):
    "SIGTERM the server's process group (server and kernel), then SIGKILL what is left."
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try: os.killpg(proc.pid, sig)
        except ProcessLookupError: pass
        try: proc.wait(timeout=wait)
        except subprocess.TimeoutExpired: pass


def _control(out, kind: str, label: str):
    "The element of the control called `label` inside the explorer output `out`."
    box = {'select': '.widget-dropdown', 'text': '.widget-text', 'slider': '.widget-slider', 'checkbox': '.widget-checkbox',
           'multi': '.widget-select-multiple', 'toggle': '.widget-toggle-buttons'}[kind]
    return out.locator(f'{box}:has(:text-is("{label}"))').first


def _act(page, out, kind: str, label: str, values, i: int):
    "Change the control once (the i-th value); returns a function that performs the input (timed by the page)."
    c = _control(out, kind, label)
    if kind == 'select':
        sel = c.locator('select')
        opts = sel.evaluate("s => [...s.options].map(o => o.text)")
        cur = sel.evaluate("s => s.options[s.selectedIndex] ? s.options[s.selectedIndex].text : ''")
        cand = [o for o in opts if o != cur and (values is None or o in values)] or [o for o in opts if o != cur]
        return lambda: sel.select_option(label=cand[i % len(cand)] if values else cand[(i * 7) % len(cand)])
    if kind == 'text':
        inp = c.locator('input')
        inp.fill(str(values[i % len(values)]))
        return lambda: inp.press('Enter')
    if kind == 'slider':  # the keyboard moves the (first) handle one step, as a user's arrow key does
        handle = c.locator('.noUi-handle').first
        handle.focus()
        key = values[i % len(values)] if values and isinstance(values[0], str) else ('ArrowRight' if i % 6 < 3 else 'ArrowLeft')
        return lambda: handle.press(key)
    if kind == 'checkbox': return lambda: c.locator('input').click()
    if kind == 'multi':
        sel = c.locator('select')
        opts = sel.evaluate("s => [...s.options].map(o => o.text)")
        return lambda: sel.select_option([opts[k] for k in values[i % len(values)] if k < len(opts)])
    if kind == 'toggle':
        cur = c.locator('button.mod-active').inner_text().strip()
        nxt = [v for v in values if v != cur][0]
        return lambda: c.locator(f'button:text-is("{nxt}")').click()
    raise ValueError(kind)


def run_lab(repeat: int, shots: Path | None, only=()) -> list[dict]:
    from playwright.sync_api import sync_playwright
    tmp = Path(tempfile.mkdtemp(prefix='lstm_pfd_bench_'))
    proc, url, work = start_lab(tmp)
    cells = [SETUP, SHAFT_SETUP, *EXPLORERS.values()]
    nb = {'cells': [{'cell_type': 'code', 'metadata': {}, 'outputs': [], 'execution_count': None, 'source': s} for s in cells],
          'metadata': {'kernelspec': {'display_name': 'lstm_pfd bench', 'language': 'python', 'name': KERNEL},
                       'language_info': {'name': 'python'}}, 'nbformat': 4, 'nbformat_minor': 5}
    (work / 'bench.ipynb').write_text(json.dumps(nb))
    rows = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=['--headless', '--no-sandbox', '--disable-gpu'])
            page = browser.new_page(viewport={'width': 1400, 'height': 1000})
            page.set_default_timeout(10_000)
            page.goto(f'{url}/lab/tree/bench.ipynb')
            page.wait_for_selector(f'.jp-Toolbar-kernelName:has-text("lstm_pfd bench")', timeout=120_000)
            page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=120_000)
            try: page.locator('.jp-Dialog .jp-mod-accept').first.click(timeout=1000)
            except Exception: pass
            page.locator('.lm-MenuBar-itemLabel', has_text='Run').first.click()
            page.locator('.lm-Menu-itemLabel', has_text='Run All Cells').first.click()
            try: page.locator('.jp-Dialog .jp-mod-accept').first.click(timeout=1000)
            except Exception: pass
            page.wait_for_function("() => [...document.querySelectorAll('.jp-OutputArea-output .jupyter-widgets img')]"
                                   ".filter(i => i.naturalWidth > 0).length >= %d" % len(EXPLORERS), timeout=300_000)
            page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=120_000)
            outs = page.locator('.jp-OutputArea-output:has(.jupyter-widgets img)')
            index = {name: i for i, name in enumerate(EXPLORERS)}
            for name, control, kind, label, values in ACTIONS:
                out = outs.nth(index[name])
                out.scroll_into_view_if_needed()
                if not _selected(name, control, only): continue
                if control.endswith(', with ig'): _act(page, out, 'select', 'XAI', ['ig'], 0)(); page.wait_for_timeout(3000)
                if control == 'start': _act(page, out, 'select', 'window', ['0.5 s'], 0)(); page.wait_for_timeout(1000)  # room to move
                first, final = [], []
                for i in range(repeat):
                    try:
                        do = _act(page, out, kind, label, values, i)
                        out.evaluate(ARM)
                        do()
                        page.wait_for_function("() => window.__changes.length + window.__text.length > 0", timeout=15_000)
                    except Exception as e:  # no new image: say so, keep a screenshot, go on
                        print(f"  {name} {control}: no new image ({type(e).__name__})", flush=True)
                        if shots: shots.mkdir(parents=True, exist_ok=True); page.screenshot(path=str(shots / f'failed_{name}_{i}.png'))
                        continue
                    page.wait_for_timeout(int(1000 * SETTLE_S.get(name, 1.0)))   # the image may follow the text
                    t0, ch, tx = page.evaluate("() => [window.__t0, window.__changes, window.__text]")
                    if t0 is None: continue
                    ch = ch or tx   # the plot unchanged (the same PNG): the new title or panel
                    first.append(ch[0] - t0); final.append(ch[-1] - t0)
                row = dict(explorer=name, control=control, n=len(first), first_ms=float(np.median(first)) if first else None)
                if name in SETTLE_S and first: row['final_ms'] = float(np.median(final))
                rows.append(row)
                fin = f"  attribution drawn {row['final_ms']:6.0f} ms" if 'final_ms' in row else ''
                print(f"{name:21s} {control:36s} first image {row['first_ms'] or float('nan'):6.0f} ms (n={len(first)}){fin}", flush=True)
            if shots:
                shots.mkdir(parents=True, exist_ok=True)
                page.set_viewport_size({'width': 1000, 'height': 1000})
                page.wait_for_timeout(500)
                for name, i in index.items():
                    outs.nth(i).scroll_into_view_if_needed()
                    outs.nth(i).screenshot(path=str(shots / f'{name}_1000px.png'))
            browser.close()
    finally:
        stop_lab(proc)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--inprocess', action='store_true', help='time the updates in this process instead of a real JupyterLab')
    ap.add_argument('--repeat', type=int, default=None, help='changes per control (default: 5 in JupyterLab, 10 in process)')
    ap.add_argument('--out', type=Path, default=None, help='write the table and the machine load as JSON')
    ap.add_argument('--only', nargs='*', default=(), help='only these explorers or controls, as Explorer or Explorer:control')
    ap.add_argument('--screenshots', type=Path, default=None, help='JupyterLab: save each explorer at a 1000-px viewport here')
    a = ap.parse_args()
    load0 = os.getloadavg()
    rows = run_inprocess(a.repeat or 10, a.only) if a.inprocess else run_lab(a.repeat or 5, a.screenshots, a.only)
    load1 = os.getloadavg()
    info = dict(mode='inprocess' if a.inprocess else 'jupyterlab', command=' '.join(['python', 'benchmarks/bench_explorers.py', *sys.argv[1:]]),
                cpus=os.cpu_count(), machine=platform.processor() or platform.machine(),
                load_before=[round(x, 2) for x in load0], load_after=[round(x, 2) for x in load1], rows=rows)
    print(f"load average (1, 5, 15 min) before {info['load_before']}, after {info['load_after']}; {os.cpu_count()} CPUs")
    if a.out: a.out.write_text(json.dumps(info, indent=1) + '\n')


if __name__ == '__main__':
    main()
