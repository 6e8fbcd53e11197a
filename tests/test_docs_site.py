"""The built docs site (docs/_build/html, from `python tools/build_docs.py`).

Static checks on the HTML: no figure shown as its text placeholder, no results heading without output,
no dead link or anchor, source links built from settings.ini, parameter tables and class methods in the
API reference, no warnings or local paths in rendered outputs. Browser checks (headless Debian chromium
through PyPI playwright, never `playwright install`): the config API page, the index and search pages,
no request failing or leaving the machine, wide tables inside the page column. Screenshots go to
tests/_artifacts/. The count of public callables without parameter docs needs no built site.
"""
from __future__ import annotations

import configparser
import functools
import http.server
import re
import sys
import threading
from html import unescape
from pathlib import Path
from urllib.parse import unquote, urlparse, urlsplit

import pytest

from conftest import ARTIFACTS, ROOT

sys.path.insert(0, str(ROOT / 'tools'))
import build_docs  # noqa: E402

SITE = ROOT / 'docs' / '_build' / 'html'
needs_site = pytest.mark.skipif(not (SITE / 'index.html').exists(),
                                reason='docs site not built: run `python tools/build_docs.py` first (.ci/run does)')
# public functions, classes and methods whose parameters are not all described (docments or numpy
# docstring). Lower it as parameters get documented; the goal is 0.
MAX_UNDOCUMENTED = 0


def _pages() -> list[Path]:
    "The site's content pages (no theme templates, no generated index or search page)."
    return sorted(p for p in SITE.rglob('*.html')
                  if not p.relative_to(SITE).as_posix().startswith(('_', 'genindex', 'search', 'py-modindex')))


def _soup(page: Path):
    from bs4 import BeautifulSoup
    return BeautifulSoup(page.read_text(encoding='utf-8', errors='replace'), 'html.parser')


def _article(page: Path):
    s = _soup(page)
    return s.select_one('article') or s


# ----------------------------------------------------------------------------------- API parameters (no site)
def test_public_callables_document_their_parameters():
    "Counts public callables with undocumented parameters and lists them; fails above MAX_UNDOCUMENTED."
    callables = build_docs.public_callables()
    assert len(callables) > 50, f'too few public callables found ({len(callables)}): the discovery is broken'
    bad = [f"{q}({', '.join(u)})" for q, o in callables if (u := build_docs.undocumented(o))]
    print(f'{len(bad)} of {len(callables)} public callables have parameters without a description:')
    print('\n'.join(bad))
    assert len(bad) <= MAX_UNDOCUMENTED, (
        f'{len(bad)} public callables without parameter docs (allowed: {MAX_UNDOCUMENTED}); document the '
        f"parameters with docments comments (see CONTRIBUTING.md): {bad}")


def test_parameter_docs_are_read_from_docments_and_numpy_docstrings():
    def f(a: int,  # the a
          b=2, _private=None): "Doc."
    def g(x, y=1):
        """Doc.

        Parameters
        ----------
        x : int
            the x
        y : int
            the y
        """
    test_eq = lambda a, b: (a == b) or pytest.fail(f'{a!r} != {b!r}')
    test_eq(build_docs.undocumented(f), ['b'])
    test_eq(build_docs.undocumented(g), [])
    table = build_docs.param_table(f)
    assert '| `a` | int |  | the a |' in table and '| `b` | int | `2` |  |' in table, table
    assert '_private' not in table, table


def test_build_drops_links_to_private_names_and_cleans_outputs():
    "Converter rules the site tests rely on, checked without a build."
    pc = build_docs.PageConverter(Path('02_signals.ipynb'), {'02_signals.ipynb': 'signals', '00_config.ipynb': 'config'},
                                  'https://example.org/lib/', 'signals')
    md = pc.links('[`_record`](https://example.org/lib/signals.html#_record), '
                  '[`DataConfig`](https://example.org/lib/config.html#DataConfig), ![x](images/a.png)')
    assert md == '`_record`, [`DataConfig`](config.html#dataconfig), ![x](images/a.png)', md
    text = 'ok\n/x/lib.py:3: UserWarning: careful\n  warnings.warn(msg)\nafter\n'
    assert build_docs.strip_warnings(text) == 'ok\nafter\n'
    assert build_docs.clean_text(f'{ROOT}/nbs/a.h5 and /rooted', [str(ROOT)]) == 'nbs/a.h5 and /rooted'
    assert build_docs.tags_for({'no-output': ''}) == [build_docs.NO_OUTPUT]


def test_returned_figures_render_as_images_in_a_fresh_kernel(monkeypatch):
    """A figure a plot function returns shows as an image in a fresh Jupyter kernel, whether or not pyplot was
    used before (matplotlib's IPython formatter exists only once pyplot has loaded a backend)."""
    import nbformat
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook
    monkeypatch.delenv('MPLBACKEND', raising=False)  # as in JupyterLab: the kernel picks the inline backend
    calls = ["from lstm_pfd.demo import plot_history\n"
             "plot_history([{'epoch': 0, 'train_loss': 1.0, 'val_loss': 1.1, 'train_acc': 0.5, 'val_acc': 0.4}])",
             "import numpy as np\nfrom lstm_pfd.demo import plot_confusion\nplot_confusion(np.eye(3, dtype=int), names=('a', 'b', 'c'))"]
    nb = new_notebook(cells=[new_code_cell(c) for c in calls])
    NotebookClient(nb, kernel_name='python3', timeout=300, resources={'metadata': {'path': str(ROOT)}}).execute()
    for call, cell in zip(calls, nb.cells):
        kinds = [sorted(o.get('data', {})) for o in cell.outputs if o.output_type in ('execute_result', 'display_data')]
        assert any('image/png' in k for k in kinds), f'{call.splitlines()[-1]} shows no image, only {kinds}: {cell.outputs}'


# ----------------------------------------------------------------------------------- static checks on the built site
@needs_site
def test_no_figure_placeholder_text():
    "A returned matplotlib figure renders as an image, never as `<Figure size WxH with N Axes>`."
    bad = [f'{p.relative_to(SITE)}: {m}' for p in _pages()
           for m in re.findall(r'<Figure size \d+x\d+ with \d+ Axes>', unescape(p.read_text(encoding='utf-8')))]
    assert not bad, f'{len(bad)} figures rendered as text (no image): {bad}'


RESULTS_NAME = re.compile(r'result|benchmark|report|throughput|measur|accuracy|comparison|latency|figure', re.I)


def _has_output(cell) -> bool:
    out = cell.select_one('.cell_output')
    return bool(out and (out.get_text(strip=True) or out.select_one('img, svg, iframe, table, script')))


def empty_results(page: Path) -> list[str]:
    """Headings of `page` whose code shows nothing, unless the silent cells carry `#| no-output`:
    (a) the first element after the heading is a code cell without output; (b) a prose section whose code
    cells all lack output; (c) an API entry named like a result (`benchmark`, `train_throughput`, `*_figure`)
    whose example cells all lack output."""
    bad = []
    for sec in _article(page).select('section'):
        h = sec.find(re.compile(r'^h[1-6]$'), recursive=False)
        if h is None: continue
        kids = [k for k in sec.find_all(recursive=False) if k.name and k is not h and k.name != 'section']
        cells = [k for k in kids if 'cell' in (k.get('class') or [])]
        todo = [c for c in cells if 'tag_' + build_docs.NO_OUTPUT not in (c.get('class') or [])]
        title = h.get_text(' ', strip=True).rstrip('#').strip()
        api = bool(re.fullmatch(r'[\w.]+', title))  # show_doc entries are headed by the name
        where = f'{page.relative_to(SITE)}: "{title}"'
        if kids and kids[0] in todo and not _has_output(kids[0]): bad.append(f'{where} (the code cell under it has no output)')
        elif todo and not any(_has_output(c) for c in cells) and (not api or RESULTS_NAME.search(title)):
            bad.append(f'{where} ({len(cells)} code cell(s), none with output)')
    return bad


# a cell "shows something" when its code calls print/display/show at top level, or ends in a bare expression whose
# value Jupyter displays (a name, an attribute, a subscript, a table method such as `.round(2)`, a `plot_*`/`*_figure` call)
_DISPLAY_FUNCS = {'print', 'display'}
_DISPLAY_METHODS = {'show', 'round', 'head', 'tail', 'to_frame', 'describe', 'unstack', 'sort_values', 'set_index',
                    'reset_index', 'drop', 'rename', 'style', 'to_markdown', 'T'}


def shows_something(src: str) -> bool:
    "True when running `src` in a notebook displays something (see `_DISPLAY_FUNCS`, `_DISPLAY_METHODS`)."
    import ast
    try: tree = ast.parse(src)
    except SyntaxError: return False
    def name(call):
        f = call.func
        return f.attr if isinstance(f, ast.Attribute) else getattr(f, 'id', '')
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): continue
        for n in ast.walk(stmt):
            if isinstance(n, ast.Call) and (name(n) in _DISPLAY_FUNCS or (name(n) == 'show' and isinstance(n.func, ast.Attribute))):
                return True
    if not tree.body or not isinstance(tree.body[-1], ast.Expr): return False
    v = tree.body[-1].value
    if isinstance(v, ast.Call):
        nm = name(v)
        return nm in _DISPLAY_METHODS or nm.startswith('plot_') or nm.endswith(('_figure', '_table'))
    return isinstance(v, (ast.Name, ast.Attribute, ast.Subscript, ast.Tuple))


def silent_display_cells(article, where: str = '') -> list[str]:
    "Code cells whose code displays something (`shows_something`) but that rendered no output (and carry no `#| no-output`)."
    bad = []
    for cell in article.select('div.cell'):
        if 'tag_' + build_docs.NO_OUTPUT in (cell.get('class') or []) or _has_output(cell): continue
        inp = cell.select_one('.cell_input')
        src = inp.get_text() if inp is not None else ''
        if shows_something(src):
            code = [l.strip() for l in src.splitlines() if l.strip() and not l.lstrip().startswith('#')]
            shown = next((l for l in code if re.search(r'\b(print|display)\(|\.show\(', l)), code[-1] if code else '')
            bad.append(f'{where}a cell that displays results rendered no output: {shown[:90]!r}')
    return bad


_NAN = re.compile(r'^(nan|NaN|<NA>|NaT)$')
_NUMBER = re.compile(r'[-+]?\d+(?:[.,]\d+)*%?,?')


def empty_or_nan_tables(article, where: str = '') -> list[str]:
    "Tables without a filled row, tables with a NaN cell, and text outputs that print NaN as a value."
    bad = []
    for i, t in enumerate(article.select('table')):
        rows = t.select('tbody tr') or t.select('tr')[1:]
        cells = [c.get_text(' ', strip=True) for r in rows for c in r.select('td, th')]
        head = ' | '.join(h.get_text(' ', strip=True) for h in t.select('thead th'))[:80]
        if head.lower().startswith('parameter'): continue   # an API parameter table: a NaN there is a default value
        if not any(cells): bad.append(f'{where}table {i} ({head!r}) is empty')
        nans = [c for c in cells if _NAN.match(c)]
        if nans: bad.append(f'{where}table {i} ({head!r}) shows {len(nans)} NaN value(s): say "not run" and why')
    for out in article.select('.cell_output'):
        for pre in out.select('pre'):   # a NaN printed as a value: a table row where a number stands beside it
            for line in pre.get_text().splitlines():
                tok = line.split()
                for k, t in enumerate(tok):
                    if _NAN.match(t.strip(',;()[]')) and any(_NUMBER.fullmatch(n) for n in tok[max(0, k - 1):k] + tok[k + 1:k + 2]):
                        bad.append(f'{where}an output prints NaN as a value: {line.strip()[:100]!r}'); break
    return bad


# "figures" alone often means numbers ("the figures below were measured"): only the singular names a picture
_FIG_REF = re.compile(r'\b(?:the|this) (?:figure|plot|chart) (?:below|above)\b|\b(?:figure|plot) below\b|\bplotted below\b', re.I)


def missing_figures(article, where: str = '', site: Path | None = None) -> list[str]:
    "A section whose prose refers to a figure below/above but holds no image; an image without data or with a missing file."
    bad = []
    for sec in article.select('section'):
        h = sec.find(re.compile(r'^h[1-6]$'), recursive=False)
        prose = ' '.join(p.get_text(' ', strip=True) for p in sec.find_all('p', recursive=False))
        m = _FIG_REF.search(prose)
        if m and not sec.select('img, svg, .jupyter-widgets, script[type="application/vnd.jupyter.widget-view+json"]'):
            title = h.get_text(' ', strip=True).rstrip('#').strip() if h else '?'
            bad.append(f'{where}"{title}" refers to "{m.group(0)}" but shows no figure')
    for img in article.select('img'):
        src = img.get('src', '')
        if src.startswith('data:'):
            if len(src.split(',', 1)[-1]) < 100: bad.append(f'{where}an embedded image holds no data')
        elif site is not None and src and '://' not in src:
            if not (site / unquote(urlsplit(src).path)).exists(): bad.append(f'{where}image {src} does not exist')
        elif not src: bad.append(f'{where}an image without a source')
    return bad


def page_problems(page: Path) -> list[str]:
    "Every results problem of one built page: silent display cells, empty or NaN tables, missing figures."
    art, where = _article(page), f'{page.relative_to(SITE)}: '
    return silent_display_cells(art, where) + empty_or_nan_tables(art, where) + missing_figures(art, where, page.parent)


def _synthetic(body: str):
    "A page body as myst-nb renders it, for the checkers' own tests."
    from bs4 import BeautifulSoup
    return BeautifulSoup(f'<article>{body}</article>', 'html.parser').select_one('article')


def _cell(src: str, out: str = '', tags: str = '') -> str:
    o = f'<div class="cell_output docutils container">{out}</div>' if out else ''
    return (f'<div class="cell docutils container {tags}"><div class="cell_input docutils container"><div class="highlight">'
            f'<pre>{src}</pre></div></div>{o}</div>')


def test_checkers_catch_an_emptied_results_cell():
    "The checkers on tiny pages: a results cell emptied (as when a `#| slow` cell loses its saved output) is caught."
    filled = _cell('print(format_benchmark(res))', '<pre>records/s 410</pre>')
    emptied = _cell('print(format_benchmark(res))')
    assert silent_display_cells(_synthetic(filled)) == []
    bad = silent_display_cells(_synthetic(emptied))
    assert len(bad) == 1 and 'print(format_benchmark(res))' in bad[0], bad
    for src in ('table.round(2)', 'df', "for f in figs: display(Image(f))", 'fig = plot_history(h)\nplt.show()',
                'plot_confusion(cm)', "tables['iid']"):
        assert silent_display_cells(_synthetic(_cell(src))), src
    for src in ('x = 1', 'test_eq(a, b)', 'def f():\n    print(1)', 'import numpy as np', '"a string"'):
        assert not silent_display_cells(_synthetic(_cell(src))), src
    assert not silent_display_cells(_synthetic(_cell('print(1)', tags='tag_no-output')))   # silent on purpose
    assert silent_display_cells(_synthetic(filled + emptied)) and not silent_display_cells(_synthetic(filled * 2))
    img = '<img src="data:image/png;base64,' + 'A' * 200 + '">'
    assert not silent_display_cells(_synthetic(_cell('fig', img)))


def test_checkers_catch_empty_and_nan_tables_and_missing_figures():
    full = '<table><thead><tr><th>model</th><th>acc</th></tr></thead><tbody><tr><td>compact</td><td>0.91</td></tr></tbody></table>'
    empty = '<table><thead><tr><th>model</th><th>acc</th></tr></thead><tbody></tbody></table>'
    nan = full.replace('0.91', 'NaN')
    assert empty_or_nan_tables(_synthetic(full)) == []
    assert 'is empty' in ' '.join(empty_or_nan_tables(_synthetic(empty)))
    assert 'NaN' in ' '.join(empty_or_nan_tables(_synthetic(nan)))
    assert empty_or_nan_tables(_synthetic(full.replace('0.91', 'not run: features not recomputed at 5 dB'))) == []
    assert empty_or_nan_tables(_synthetic(_cell('print(r)', '<pre>snr5   nan   0.91</pre>')))
    for text in ('NaN and inf become null in strict JSON', 'NaN literal    422  samples[5]: NaN and Infinity are not allowed'):
        assert not empty_or_nan_tables(_synthetic(_cell('print(r)', f'<pre>{text}</pre>'))), text
    param = '<table><thead><tr><th>parameter</th><th>default</th></tr></thead><tbody><tr><td>fill</td><td>nan</td></tr></tbody></table>'
    assert empty_or_nan_tables(_synthetic(param)) == []   # a NaN default value of an API parameter
    img = '<img src="data:image/png;base64,' + 'A' * 200 + '">'
    sec = '<section><h2>Speed</h2><p>The figure below shows the fleet.</p>{}</section>'
    assert missing_figures(_synthetic(sec.format(_cell('fig', img)))) == []
    assert 'shows no figure' in ' '.join(missing_figures(_synthetic(sec.format(_cell('fig')))))
    assert missing_figures(_synthetic('<section><h2>A</h2><p>No picture here.</p></section>')) == []
    assert missing_figures(_synthetic('<section><h2>B</h2><p>The figures below were measured by a script.</p></section>')) == []
    assert 'no data' in ' '.join(missing_figures(_synthetic('<img src="data:image/png;base64,">')))


@needs_site
def test_results_are_on_the_pages():
    "No page shows a results cell without output, an empty table, a NaN in a table or an output, or lacks a figure its text refers to."
    bad = [b for p in _pages() for b in page_problems(p)]
    print('\n'.join(bad))
    assert not bad, (f'{len(bad)} results missing from the pages (commit the result as a small JSON/PNG that a fast cell '
                     f'shows, see CONTRIBUTING.md "Results on the pages"):\n' + '\n'.join(bad))


@needs_site
def test_fleet_page_shows_its_figures():
    imgs = _article(SITE / 'fleet.html').select('.cell_output img, img')
    assert len(imgs) >= 2, f'fleet.html shows {len(imgs)} figure(s)'


@needs_site
def test_no_results_heading_without_output():
    bad = [b for p in _pages() for b in empty_results(p)]
    print('\n'.join(bad))
    assert not bad, (f'{len(bad)} headings followed by code without output (produce the results, or mark a cell '
                     f'that is meant to be silent with `#| no-output`, see CONTRIBUTING.md):\n' + '\n'.join(bad))


@needs_site
def test_internal_links_and_anchors_resolve():
    "Every relative link points at a file the site holds and, with a #fragment, at an id on that page."
    ids: dict[Path, set[str]] = {}
    def ids_of(p: Path) -> set[str]:
        if p not in ids: ids[p] = set(re.findall(r'\sid="([^"]+)"', p.read_text(encoding='utf-8', errors='replace')))
        return ids[p]
    broken = []
    for page in SITE.rglob('*.html'):
        if '_static' in page.relative_to(SITE).parts: continue  # theme templates, not pages
        for href in re.findall(r'href="([^"]*)"', page.read_text(encoding='utf-8', errors='replace')):
            href = unescape(href)
            u = urlsplit(href)
            if u.scheme or href.startswith(('mailto:', '//', 'javascript:')) or not href: continue
            target = (page.parent / unquote(u.path)).resolve() if u.path else page
            if not target.exists(): broken.append(f'{page.relative_to(SITE)} -> {href}'); continue
            if u.fragment and target.suffix == '.html' and unquote(u.fragment) not in ids_of(target):
                broken.append(f'{page.relative_to(SITE)} -> {href} (no such anchor)')
    assert not broken, f'{len(broken)} broken links or anchors: {broken[:20]}'
    assert 'tutorials/jbfd11_benchmark.html' in (SITE / 'index.html').read_text()


def _settings() -> tuple[str, str]:
    cfg = configparser.ConfigParser(delimiters=['='])
    cfg.read(ROOT / 'settings.ini', encoding='utf-8')
    d = cfg['DEFAULT']
    return d['git_url'], d['branch']


@needs_site
def test_source_links_from_settings_with_line_numbers():
    git_url, branch = _settings()
    links = [(p, a.get('href', '')) for p in _pages() for a in _article(p).select('a.nbdev-source')]
    assert links, 'no source links on the site'
    pat = re.compile(re.escape(f"{git_url.rstrip('/')}/blob/{branch}/") + r'[\w/]+\.py#L(\d+)$')
    bad = [f'{p.relative_to(SITE)}: {h}' for p, h in links if not pat.match(h)]
    assert not bad, f'{len(bad)} source links not of the form {git_url}/blob/{branch}/<file>.py#L<line>: {bad[:10]}'
    for p, h in links[:40]:  # the line holds the definition
        path, line = h.split(f'/blob/{branch}/', 1)[1].split('#L')
        src = (ROOT / path).read_text(encoding='utf-8').splitlines()
        assert re.match(r'\s*(@|def |class |async def )', src[int(line) - 1]), f'{h}: line {line} is {src[int(line) - 1]!r}'


@needs_site
def test_api_reference_has_parameter_tables_and_methods():
    for page, methods in (('config.html', ('DataConfig.preset', 'NoiseConfig.only')), ('configbase.html', ('BaseConfig.override',))):
        heads = [h.get_text(' ', strip=True).rstrip('#').strip() for h in _article(SITE / page).select('h2, h3, h4, h5')]
        for m in methods:
            assert m in heads, f'{m} is not listed on {page}: {heads}'
    art = _article(SITE / 'config.html')
    tables = [t for t in art.select('table') if 'parameter' in t.get_text(' ', strip=True).lower()]
    assert tables, 'no parameter table on config.html'


@needs_site
def test_outputs_hold_no_warnings_or_local_paths():
    local = [str(ROOT), str(Path.home()) + '/', 'site-packages/', '/.venv']
    bad = []
    for p in _pages():
        for out in _article(p).select('.cell_output'):
            text = out.get_text('\n')
            bad += [f'{p.relative_to(SITE)}: {l.strip()[:120]}' for l in text.splitlines()
                    if re.search(r'\w*Warning: ', l) or any(s in l for s in local)]
    assert not bad, f'{len(bad)} output lines with warnings or local paths: {bad[:10]}'


# ----------------------------------------------------------------------------------- in the browser
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass


@pytest.fixture(scope='module')
def server():
    if not (SITE / 'index.html').exists(): pytest.skip('docs site not built: run `python tools/build_docs.py` first')
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Quiet, directory=str(SITE)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}'
    httpd.shutdown()
    httpd.server_close()


class Recorder:
    "Every request a page makes, the failed ones, the non-local ones and console errors."
    def __init__(self, page):
        self.requests, self.failed, self.bad_status, self.errors = [], [], [], []
        page.on('request', lambda r: self.requests.append(r.url))
        page.on('requestfailed', lambda r: self.failed.append(f'{r.url} ({r.failure})'))
        page.on('response', lambda r: r.status >= 400 and self.bad_status.append(f'{r.url} -> {r.status}'))
        page.on('pageerror', lambda e: self.errors.append(str(e)))

    def check(self):
        nonlocal_ = [u for u in self.requests
                     if urlparse(u).scheme not in ('data', 'blob', 'about') and urlparse(u).hostname != '127.0.0.1']
        assert not nonlocal_, f'requests left the machine: {nonlocal_}'
        assert not self.failed, f'failed requests: {self.failed}'
        assert not self.bad_status, f'HTTP errors: {self.bad_status}'
        assert not self.errors, f'JavaScript errors: {self.errors}'


def _open(browser, url):
    page = browser.new_page(viewport={'width': 1400, 'height': 1000})
    rec = Recorder(page)
    page.goto(url, wait_until='networkidle')
    return page, rec


def test_config_api_page(server, browser):
    from lstm_pfd import config, configbase
    page, rec = _open(browser, f'{server}/config.html')
    headings = [h.strip().rstrip('#').strip() for h in page.locator('article h2, article h3, article h4').all_inner_texts()]
    own = [n for n in config.__all__ if n not in configbase.__all__]   # configbase's names have their headings on its page
    missing = [n for n in own if n not in headings and not n.isupper()]  # constants have no heading
    assert not missing, f'exported names without a heading on config.html: {missing}; headings: {headings}'
    assert page.locator('article h1').first.inner_text().strip().rstrip('#').strip() == 'Configuration'
    toc = page.locator('.bd-toc-nav, #bd-toc-nav, nav.page-toc').first.inner_text()
    assert 'DataConfig' in toc, 'the API entries should be sections in the page TOC'
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / 'docs_config.png'), full_page=False)
    rec.check()
    page.close()


def test_index_page(server, browser):
    page, rec = _open(browser, f'{server}/index.html')
    assert page.locator('article h1').first.inner_text().strip().rstrip('#').strip() == 'lstm_pfd'
    body = page.locator('article').inner_text()
    assert 'lstm-pfd demo' in body and 'bash .ci/run' in body
    nav = page.locator('nav.bd-docs-nav').inner_text()
    assert 'Configuration' in nav, f'the sidebar should list the notebooks: {nav!r}'
    imgs = page.locator('article .cell_output img')
    assert imgs.count() >= 1, 'the catalogue figure is not shown as an image on the index page'
    w = imgs.first.evaluate('i => i.naturalWidth')
    assert w > 100, f'the catalogue image did not load (natural width {w})'
    page.screenshot(path=str(ARTIFACTS / 'docs_index.png'))
    rec.check()
    page.close()


# tables whose visible part (clipped by the nearest scrolling ancestor, or the table's own box) ends right of the article
_JS_WIDE_TABLES = '''() => {
  const art = document.querySelector('article'), right = art.getBoundingClientRect().right;
  return [...art.querySelectorAll('table')].flatMap(t => {
    let e = t.parentElement, edge = t.getBoundingClientRect().right;
    while (e && e !== art) {
      if (['auto', 'scroll', 'hidden'].includes(getComputedStyle(e).overflowX)) {
        edge = Math.min(edge, e.getBoundingClientRect().right); break;
      }
      e = e.parentElement;
    }
    return edge > right + 1 ? [`table visible to ${Math.round(edge)} px, article ends at ${Math.round(right)} px`] : [];
  });
}'''


def test_every_page_loads_locally_and_fits_the_column(server, browser):
    "All pages: nothing fetched from another host, nothing missing; tables never wider than the article."
    wide = []
    for html in _pages():
        rel = html.relative_to(SITE).as_posix()
        page, rec = _open(browser, f'{server}/{rel}')
        if 'application/vnd.jupyter.widget-view+json' in html.read_text(encoding='utf-8'):
            # displayed widgets (a widget view, not stored state alone) render from the vendored html-manager (no kernel, no CDN)
            page.locator('.jupyter-widgets').first.wait_for(timeout=15_000)
        wide += [f'{rel}: {w}' for w in page.evaluate(_JS_WIDE_TABLES)]
        rec.check()
        page.close()
    assert not wide, f'{len(wide)} tables overflow the page column: {wide[:10]}'


def test_search_finds_api_entries(server, browser):
    page, rec = _open(browser, f'{server}/search.html?q=DataConfig')
    results = page.locator('#search-results ul.search li')
    results.first.wait_for(timeout=15_000)
    titles = results.locator('a').all_inner_texts()
    assert any('DataConfig' in t for t in titles), f'no search result titled by the DataConfig section: {titles}'
    page.screenshot(path=str(ARTIFACTS / 'docs_search.png'))
    rec.check()
    page.close()
