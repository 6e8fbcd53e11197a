"""The built docs site (docs/_build/html, from `python tools/build_docs.py`) in a real browser.

Serves the site on 127.0.0.1 and opens pages in headless Debian chromium through PyPI playwright
(never `playwright install`): the config API page shows every exported name as a heading, no
request fails, no request leaves the machine (no CDN), the index and search pages work.
Screenshots go to tests/_artifacts/.
"""
from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / 'docs' / '_build' / 'html'
ARTIFACTS = ROOT / 'tests' / '_artifacts'
CHROMIUM = Path('/usr/bin/chromium')
ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
        '--disable-component-update', '--no-first-run']

pytestmark = [
    pytest.mark.skipif(not (SITE / 'index.html').exists(),
                       reason='docs site not built: run `python tools/build_docs.py` first (.ci/run does)'),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f'no chromium at {CHROMIUM} (apt-get install chromium)'),
]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass


@pytest.fixture(scope='module')
def server():
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Quiet, directory=str(SITE)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}'
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope='module')
def browser():
    sync_api = pytest.importorskip('playwright.sync_api')
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


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
    from lstm_pfd import config
    page, rec = _open(browser, f'{server}/config.html')
    headings = [h.strip().rstrip('#').strip() for h in page.locator('article h2, article h3, article h4').all_inner_texts()]
    missing = [n for n in config.__all__ if n not in headings and not n.isupper()]  # constants have no heading
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
    page.screenshot(path=str(ARTIFACTS / 'docs_index.png'))
    rec.check()
    page.close()


def test_every_page_loads_locally(server, browser):
    "All pages: nothing fetched from another host, nothing missing (vendored widget JS and MathJax)."
    for html in sorted(SITE.rglob('*.html')):
        rel = html.relative_to(SITE).as_posix()
        if rel.startswith(('_', 'genindex')): continue
        page, rec = _open(browser, f'{server}/{rel}')
        if 'application/vnd.jupyter.widget-state+json' in html.read_text(encoding='utf-8'):
            # embedded widgets render from the vendored html-manager (no kernel, no CDN)
            page.locator('.jupyter-widgets').first.wait_for(timeout=15_000)
        rec.check()
        page.close()


def test_search_finds_api_entries(server, browser):
    page, rec = _open(browser, f'{server}/search.html?q=DataConfig')
    results = page.locator('#search-results ul.search li')
    results.first.wait_for(timeout=15_000)
    titles = results.locator('a').all_inner_texts()
    assert any('DataConfig' in t for t in titles), f'no search result titled by the DataConfig section: {titles}'
    page.screenshot(path=str(ARTIFACTS / 'docs_search.png'))
    rec.check()
    page.close()


def test_internal_links_resolve():
    "Every relative link of every page points at a file the site holds (tutorial links from the index included)."
    import re
    from urllib.parse import urlsplit, unquote
    broken = []
    for page in SITE.rglob('*.html'):
        if '_static' in page.relative_to(SITE).parts: continue  # theme templates, not pages
        for href in re.findall(r'href="([^"#]+)(?:#[^"]*)?"', page.read_text(encoding='utf-8', errors='replace')):
            if urlsplit(href).scheme or href.startswith(('mailto:', '//', 'javascript:')): continue
            target = (page.parent / unquote(urlsplit(href).path)).resolve()
            if not target.exists(): broken.append(f"{page.relative_to(SITE)} -> {href}")
    assert not broken, f"{len(broken)} broken links, e.g. {broken[:5]}"
    assert 'tutorials/jbfd11_benchmark.html' in (SITE / 'index.html').read_text()
