"""SignalExplorer in a real JupyterLab, driven by headless Debian chromium through PyPI playwright.

Starts `jupyter lab` (this venv's) on 127.0.0.1 with a free port, an empty token, a temporary Jupyter home
(config, data, runtime and IPython dirs) holding a kernelspec that runs this interpreter, and the news and
update checks off. Opens a notebook that shows a SignalExplorer, runs all cells, picks another class in the
page's dropdown and checks that the rendered title and plot change. Screenshots go to tests/_artifacts/.
Every process started here is stopped, also on failure. Never runs `playwright install`.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / 'tests' / '_artifacts'
CHROMIUM = Path('/usr/bin/chromium')
ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
        '--disable-component-update', '--no-first-run']

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f'no chromium at {CHROMIUM} (apt-get install chromium)')

KERNEL = 'lstm_pfd_test'  # a kernelspec of our own, so JupyterLab starts it without asking
NOTEBOOK = {
    'cells': [
        {'cell_type': 'code', 'metadata': {}, 'outputs': [], 'execution_count': None,
         'source': "import sys\nprint('KERNEL', sys.executable)"},
        {'cell_type': 'code', 'metadata': {}, 'outputs': [], 'execution_count': None,
         'source': "from lstm_pfd.explorers import SignalExplorer\nse = SignalExplorer('quick', 'misalignment', seed=1)\nse"},
    ],
    'metadata': {'kernelspec': {'display_name': 'lstm_pfd test', 'language': 'python', 'name': KERNEL},
                 'language_info': {'name': 'python'}},
    'nbformat': 4, 'nbformat_minor': 5,
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen):
    "SIGTERM the server's process group (server and its kernels), then SIGKILL what is left."
    if proc.poll() is None:
        try: os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError: pass
        try: proc.wait(timeout=15)
        except subprocess.TimeoutExpired: pass
    try: os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError: pass
    proc.wait(timeout=5)


@pytest.fixture
def lab(tmp_path):
    "A JupyterLab server in a temporary Jupyter home; yields (base url, work dir)."
    home = {k: tmp_path / d for k, d in (('JUPYTER_CONFIG_DIR', 'config'), ('JUPYTER_DATA_DIR', 'data'),
                                         ('JUPYTER_RUNTIME_DIR', 'runtime'), ('IPYTHONDIR', 'ipython'))}
    home['JUPYTERLAB_SETTINGS_DIR'] = tmp_path / 'lab' / 'user-settings'
    home['JUPYTERLAB_WORKSPACES_DIR'] = tmp_path / 'lab' / 'workspaces'
    for p in home.values(): p.mkdir(parents=True)
    notif = home['JUPYTERLAB_SETTINGS_DIR'] / '@jupyterlab' / 'apputils-extension'
    notif.mkdir(parents=True)  # no news or update toasts
    (notif / 'notification.jupyterlab-settings').write_text(json.dumps({'fetchNews': 'false', 'checkForUpdates': False}))
    spec = home['JUPYTER_DATA_DIR'] / 'kernels' / KERNEL
    spec.mkdir(parents=True)
    (spec / 'kernel.json').write_text(json.dumps({
        'argv': [sys.executable, '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
        'display_name': 'lstm_pfd test', 'language': 'python'}))
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'explorer.ipynb').write_text(json.dumps(NOTEBOOK))
    env = {**os.environ, **{k: str(v) for k, v in home.items()}, 'JUPYTER_PLATFORM_DIRS': '1',
           'PYTHONPATH': os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]).rstrip(os.pathsep)}
    port = _free_port()
    cmd = [sys.executable, '-m', 'jupyterlab', '--no-browser', '--ServerApp.open_browser=False',
           '--ServerApp.ip=127.0.0.1', f'--ServerApp.port={port}', '--ServerApp.port_retries=0',
           '--IdentityProvider.token=', '--ServerApp.password=', f'--ServerApp.root_dir={work}',
           '--LabApp.news_url=None', '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate',
           '--LabApp.extension_manager=readonly']  # no PyPI queries from the extension manager
    if hasattr(os, 'geteuid') and os.geteuid() == 0: cmd.append('--allow-root')
    log = open(tmp_path / 'lab.log', 'wb')
    proc = subprocess.Popen(cmd, env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f'http://127.0.0.1:{port}'
    try:
        deadline = time.time() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f'jupyter lab exited with {proc.returncode}:\n{(tmp_path / "lab.log").read_text()[-3000:]}')
            try:
                with urllib.request.urlopen(f'{url}/api/status', timeout=2) as r:
                    if r.status == 200: break
            except OSError: pass
            if time.time() > deadline: raise TimeoutError(f'jupyter lab did not answer on {url} within 90 s')
            time.sleep(0.3)
        with urllib.request.urlopen(f'{url}/api/kernelspecs', timeout=10) as r:
            specs = json.load(r)['kernelspecs']
        assert KERNEL in specs and specs[KERNEL]['spec']['argv'][0] == sys.executable, sorted(specs)
        yield url, work
    finally:
        _stop(proc)
        log.close()


def _accept_dialog(page, wait_ms: int = 1000):
    "Accept a dialog JupyterLab may raise (kernel choice) so the run goes on."
    try: page.locator('.jp-Dialog .jp-mod-accept').first.click(timeout=wait_ms)
    except Exception: pass


def test_signal_explorer_in_jupyterlab(lab):
    sync_api = pytest.importorskip('playwright.sync_api')
    url, work = lab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={'width': 1400, 'height': 1000})
            page.goto(f'{url}/lab/tree/explorer.ipynb')
            page.wait_for_selector('.jp-Notebook .jp-Cell', timeout=60_000)
            # the kernel is ours and idle before anything runs (else JupyterLab may ask which kernel to start)
            page.wait_for_selector(f'.jp-Toolbar-kernelName:has-text("lstm_pfd test")', timeout=60_000)
            page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=60_000)
            _accept_dialog(page)
            page.locator('.lm-MenuBar-itemLabel', has_text='Run').first.click()
            page.locator('.lm-Menu-itemLabel', has_text='Run All Cells').first.click()
            _accept_dialog(page)
            select = page.locator('.widget-dropdown select').first
            select.wait_for(timeout=60_000)
            img = page.locator('.jupyter-widgets img').first
            img.wait_for(timeout=30_000)
            # the kernel is this interpreter
            out = page.locator('.jp-OutputArea-output', has_text='KERNEL').first.inner_text()
            assert out.strip() == f'KERNEL {sys.executable}'
            title = page.locator('.widget-html-content', has_text='severity factor').first
            before_title, before_src = title.inner_text(), img.get_attribute('src')
            assert before_title.startswith('misalignment') and before_src
            page.screenshot(path=str(ARTIFACTS / 'jupyterlab_signal_explorer_before.png'))
            select.select_option(label='looseness')
            page.wait_for_function(
                "([el, src]) => el.getAttribute('src') !== src", arg=[img.element_handle(), before_src], timeout=30_000)
            page.wait_for_function(
                "el => el.innerText.startsWith('looseness')", arg=title.element_handle(), timeout=30_000)
            after_title, after_src = title.inner_text(), img.get_attribute('src')
            page.screenshot(path=str(ARTIFACTS / 'jupyterlab_signal_explorer_after.png'))
            assert after_title != before_title and after_src != before_src
            assert 'seed 1' in after_title
        except BaseException:
            try: page.screenshot(path=str(ARTIFACTS / 'jupyterlab_failure.png'))
            except Exception: pass
            raise
        finally:
            browser.close()


# ------------------------------------------------------------------------------------------ explorers that fit
FIT_CELLS = [
    "import torch; torch.set_num_threads(1)\n"
    "import tempfile\nfrom pathlib import Path\n"
    "from lstm_pfd.config import DataConfig\nfrom lstm_pfd.data import build_dataset, open_dataset\n"
    "from lstm_pfd.models import create_model\n"
    "from lstm_pfd.explorers import SignalExplorer, DatasetExplorer, ModelExplorer, RunsExplorer\n"
    "from lstm_pfd.experiments import load_experiment, run_experiment\n"
    "cfg = DataConfig.preset('quick', {'dataset.records_per_class_severity': 3, 'dataset.snr_db': [10.0]})\n"
    "ds = open_dataset(build_dataset(cfg, Path(tempfile.mkdtemp()) / 'q.h5', progress=False))\n"
    "runs_root = Path(tempfile.mkdtemp())\n"
    "for s in (0, 1): run_experiment(load_experiment('quick', {'train.seed': s}), runs_root)",
    "SignalExplorer(cfg, 'misalignment', seed=1)",
    "DatasetExplorer(ds, 'train')",
    "ModelExplorer(create_model('compact', channels=(8,), seed=0), ds, 'test', method='none')",
    "RunsExplorer(runs_root)",
]
NAMES = ('SignalExplorer', 'DatasetExplorer', 'ModelExplorer', 'RunsExplorer')

# every control and image of every explorer output, measured in the page: the image's rendered aspect ratio
# against its natural one, each element's box against the output column, and clipped readouts / labels
MEASURE = """outs => outs.map(out => {
  const col = out.getBoundingClientRect();
  const imgs = [...out.querySelectorAll('img')].filter(i => i.naturalWidth > 0).map(i => {
    const r = i.getBoundingClientRect();
    return {natural: i.naturalWidth / i.naturalHeight, shown: r.width / r.height, w: r.width, nw: i.naturalWidth};
  });
  const outside = [...out.querySelectorAll('.jupyter-widgets')].filter(e => {
    const r = e.getBoundingClientRect();
    return r.width > 0 && (r.left < col.left - 1 || r.right > col.right + 1);
  }).map(e => { const r = e.getBoundingClientRect();
    return e.className.split(' ').filter(c => c.startsWith('widget-')).join('.') + ` [${Math.round(r.left)}, ${Math.round(r.right)}]` +
      ` in [${Math.round(col.left)}, ${Math.round(col.right)}] ` + e.innerText.slice(0, 40); });
  const textWidth = e => { const r = document.createRange(); r.selectNodeContents(e); return r.getBoundingClientRect().width; };
  const clipped = [...out.querySelectorAll('.widget-readout, .widget-label, .widget-dropdown select')].filter(
    e => e.clientWidth > 0 && e.innerText.trim() && (e.tagName === 'SELECT'
      ? e.selectedOptions.length && e.selectedOptions[0].text.length * 7.5 > e.clientWidth - 24
      : textWidth(e) > e.clientWidth + 1)).map(e => (e.tagName === 'SELECT' ? e.selectedOptions[0].text : e.innerText) + ` (${Math.round(
      e.tagName === 'SELECT' ? e.selectedOptions[0].text.length * 7.5 : textWidth(e))} px in ${e.clientWidth} px)`);
  return {imgs, outside, clipped, col_width: col.width};
})"""


@pytest.mark.parametrize('width', [1400, 1000])  # 1000: the file browser open, a column of about 650 px
def test_explorers_fit_the_page(lab, width):
    "Images keep their aspect ratio, every control lies inside the output column, nothing is clipped (wide and narrow)."
    sync_api = pytest.importorskip('playwright.sync_api')
    url, work = lab
    nb = {**NOTEBOOK, 'cells': [{'cell_type': 'code', 'metadata': {}, 'outputs': [], 'execution_count': None, 'source': s}
                                for s in FIT_CELLS]}
    (work / 'fit.ipynb').write_text(json.dumps(nb))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={'width': width, 'height': 1000})
            page.goto(f'{url}/lab/tree/fit.ipynb')
            page.wait_for_selector('.jp-StatusBar-Widget:has-text("lstm_pfd test")', timeout=60_000)
            page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=60_000)
            _accept_dialog(page)
            page.locator('.lm-MenuBar-itemLabel', has_text='Run').first.click()
            page.locator('.lm-Menu-itemLabel', has_text='Run All Cells').first.click()
            _accept_dialog(page)
            page.wait_for_function("() => [...document.querySelectorAll('.jp-OutputArea-output .jupyter-widgets img')]"
                                   ".filter(i => i.naturalWidth > 0).length >= 4", timeout=180_000)
            page.wait_for_timeout(500)  # layout settles
            outs = page.locator('.jp-OutputArea-output:has(.jupyter-widgets)')
            assert outs.count() == len(NAMES)
            for i, name in enumerate(NAMES):
                outs.nth(i).scroll_into_view_if_needed()
                outs.nth(i).screenshot(path=str(ARTIFACTS / f'jupyterlab_{name}_{width}px.png'))
            res = outs.evaluate_all(MEASURE)
            for name, r in zip(NAMES, res):
                assert r['imgs'], f'{name}: no rendered image'
                for im in r['imgs']:
                    assert im['shown'] == pytest.approx(im['natural'], rel=0.01), (name, width, im)
                    assert im['w'] <= r['col_width'] + 1, (name, width, im)
                assert not r['outside'], (name, width, r['outside'])
                assert not r['clipped'], (name, width, r['clipped'])
        except BaseException:
            try: page.screenshot(path=str(ARTIFACTS / f'jupyterlab_fit_failure_{width}px.png'))
            except Exception: pass
            raise
        finally:
            browser.close()
