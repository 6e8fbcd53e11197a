"""Sphinx configuration of the lstm_pfd docs site.

Built by `python tools/build_docs.py` (do not run sphinx-build by hand: that script executes the
notebooks, runs nbdev's processing and writes the Sphinx source into docs/_src/site first).
Everything the pages load is served from the site itself: no CDN.
"""
from configparser import ConfigParser
from pathlib import Path

_root = Path(__file__).resolve().parents[1]
_cfg = ConfigParser(delimiters=['='])
_cfg.read(_root / 'settings.ini', encoding='utf-8')
_s = _cfg['DEFAULT']

project = _s['lib_name']
author = _s['author']
copyright = _s['copyright']
release = version = _s['version']

extensions = ['myst_nb', 'sphinx.ext.githubpages']  # githubpages: .nojekyll (keeps _static/)
source_suffix = {'.ipynb': 'myst-nb', '.md': 'myst-nb'}
exclude_patterns = ['**.ipynb_checkpoints']
root_doc = 'index'

# MyST / MyST-NB: the notebooks are executed by tools/build_docs.py already
nb_execution_mode = 'off'
nb_render_markdown_format = 'myst'
nb_merge_streams = True
myst_enable_extensions = ['dollarmath', 'amsmath', 'colon_fence']
myst_all_links_external = True  # build_docs.py rewrites notebook and nbdev links to the built pages

# Local copies of the widget manager, requirejs and MathJax 3 (fetched by build_docs.py with npm pack
# into docs/_src/static/vendor, served as _static/vendor). Widget modules missing from the bundle are
# looked up on the site (and fail visibly), never on a CDN.
nb_ipywidgets_js = {
    'vendor/requirejs/require.js': {},
    'vendor/html-manager/dist/embed-amd.js': {'data-jupyter-widgets-cdn': '_static/vendor/no-cdn/'},
}
mathjax_path = 'vendor/mathjax/tex-mml-chtml.js'
myst_update_mathjax = False  # the MathJax config is _static/mathjax_config.js (it also maps the MathJax 2
html_js_files = [('mathjax_config.js', {'priority': 200})]  # API that embedded widgets call onto MathJax 3)

html_theme = 'sphinx_book_theme'
html_title = project
html_static_path = ['_static', '_src/static']
html_css_files = ['lstm_pfd.css']
html_last_updated_fmt = None
html_theme_options = {
    'repository_url': _s['git_url'],
    'use_repository_button': False,
    'use_download_button': False,
    'use_fullscreen_button': False,
    'show_toc_level': 2,
    'navigation_with_keys': False,
}
