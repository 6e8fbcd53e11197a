"""`lstm_pfd.plotting.figure`: figures that display as images in a fresh Jupyter kernel, without pyplot."""
import subprocess
import sys

from conftest import ROOT


def test_figure_shows_as_png_in_a_process_without_pyplot():
    "IPython's display formatter returns a PNG for the figure, and drawing never imports pyplot."
    probe = ("import sys\n"
             "from IPython.core.formatters import DisplayFormatter\n"
             "from lstm_pfd.plotting import figure\n"
             "fig = figure((3, 2)); fig.subplots().plot([0, 1], [1, 0])\n"
             "data, _ = DisplayFormatter().format(fig)\n"
             "assert data['image/png'][:8] == b'\\x89PNG\\r\\n\\x1a\\n', sorted(data)\n"
             "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
             "print('ok')\n")
    r = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.strip() == 'ok', r.stderr


def test_figure_renders_as_image_in_a_fresh_kernel(monkeypatch):
    import nbformat
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook
    monkeypatch.delenv('MPLBACKEND', raising=False)
    nb = new_notebook(cells=[new_code_cell("from lstm_pfd.plotting import figure\nfig = figure((3, 2))\n"
                                           "fig.subplots().plot([0, 1])\nfig")])
    NotebookClient(nb, kernel_name='python3', timeout=120, resources={'metadata': {'path': str(ROOT)}}).execute()
    kinds = [sorted(o.get('data', {})) for o in nb.cells[0].outputs if o.output_type == 'execute_result']
    assert kinds and 'image/png' in kinds[0], nb.cells[0].outputs
