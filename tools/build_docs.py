#!/usr/bin/env python
"""Build the docs site offline, with one command:

    python tools/build_docs.py            # -> docs/_build/html

Steps (Quarto is not available, and nothing is fetched from a CDN at view time):

1. README.md from nbs/index.ipynb (tools/make_readme.py).
2. Execute the notebooks (index, every numbered notebook, nbs/tutorials/*) with nbclient, two at a
   time, widget state stored; cells nbdev_test would skip are skipped (`eval: false`, the
   settings.ini `tst_flags` such as `slow`, `nbdev_export()` cells), their saved outputs kept. A
   cell error or a cell running past the per-cell timeout fails the build.
3. nbdev's preprocessing from Python (refresh_quarto_yml, _build_modidx, nbdev_sidebar,
   proc_nbs) over the executed copies: show_doc entries are added and rendered, links added.
4. The `#|` directives left in `_proc/` become MyST-NB cell tags (`#| no-output` -> tag_no-output:
   a cell silent on purpose); show_doc outputs become real markdown cells (sections in the TOC and
   in search) with a parameter table (nbdev docments or numpy docstrings), a source link built from
   settings.ini (git_url, branch, the definition's line) and, for a class, an entry per public
   method without its own show_doc; warnings and local paths leave rendered outputs; pages are named
   like nbdev's (00_config.ipynb -> config.html), nbdev's absolute doc links are made relative and
   links to private names (no entry) dropped.
5. The widget JS (@jupyter-widgets/html-manager@1, requirejs) and MathJax 3 are fetched with
   `npm pack` (tarballs cached in docs/_static_vendor/) and served from the site's _static/vendor.
6. `sphinx-build -W -b html` with myst-nb (no execution: the notebooks are executed already) and
   sphinx-book-theme; configuration in docs/conf.py.

Environment: LSTM_PFD_DOCS_CELL_TIMEOUT (seconds per cell, default 600),
LSTM_PFD_DOCS_WORKERS (notebooks executed at once, default 2).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / 'nbs'
DOCS = ROOT / 'docs'
SRC = DOCS / '_src'                 # generated: exec/ (executed notebooks), site/ (the Sphinx source)
EXEC = SRC / 'exec'
SITE = SRC / 'site'
OUT = DOCS / '_build' / 'html'
DOCTREES = DOCS / '_build' / 'doctrees'
VENDOR_CACHE = DOCS / '_static_vendor'  # npm tarballs, kept between builds
PROC = ROOT / '_proc'
TIMES = DOCS / '_build' / 'exec_times.json'  # per-notebook execution time of the last build
IMAGE_EXTS = {'.png', '.jpg', '.jpeg', '.gif', '.svg', '.webp'}

# npm spec -> (name of the tarball's folder under _static/vendor, files/folders to copy from package/)
VENDOR = {
    '@jupyter-widgets/html-manager@1': ('html-manager', ['dist']),
    'requirejs@2': ('requirejs', ['require.js']),
    'mathjax@3': ('mathjax', ['es5/tex-mml-chtml.js', 'es5/input', 'es5/output', 'es5/ui', 'es5/a11y',
                              'es5/sre', 'es5/adaptors']),
}
VENDOR_SKIP = re.compile(r'(\.map$|(^|/)embed\.js|libembed-amd\.js|\.LICENSE\.txt$)')

sys.path.insert(0, str(Path(__file__).resolve().parent))
log = logging.getLogger('build_docs')


# ----------------------------------------------------------------------------------- discovery
def discover_notebooks(nbs: Path = NBS) -> list[Path]:
    "index, the numbered notebooks and tutorials/*, relative to `nbs`, in site order."
    ok = lambda p: not p.name.startswith(('_', '.'))
    res = [Path('index.ipynb')] if (nbs / 'index.ipynb').exists() else []
    res += sorted(p.relative_to(nbs) for p in nbs.glob('[0-9]*_*.ipynb') if ok(p))
    res += sorted(p.relative_to(nbs) for p in nbs.glob('tutorials/*.ipynb') if ok(p))
    return res


def page_name(rel: Path) -> str:
    "nbdev's page name: 00_config.ipynb -> config, tutorials/01_x.ipynb -> tutorials/x."
    stem = re.sub(r'^\d+[a-zA-Z0-9]*_', '', rel.stem)
    return (rel.parent / stem).as_posix()


# ----------------------------------------------------------------------------------- execution
def _tst_flags() -> set[str]:
    from nbdev.config import get_config
    return set(get_config().get('tst_flags', '').split())


def _skip(cell, flags: set[str]) -> bool:
    "True for the code cells nbdev_test skips: nbdev_export(), `eval: false`, a tst_flags directive."
    from nbdev.process import extract_directives
    if cell.cell_type != 'code': return True
    if 'nbdev_export' + '(' in cell.source: return True
    d = extract_directives(cell, remove=False)
    if d.get('eval:', [''])[0].lower() == 'false': return True
    return bool(flags & d.keys())


_re_no_output = re.compile(r'^(\s*#\s*\|\s*no-output)\s*$', re.M)


def execute_one(rel: str, timeout: int) -> tuple[str, float, int]:
    "Execute nbs/`rel` (cwd: its folder) into docs/_src/exec/`rel`; returns (rel, seconds, skipped cells)."
    import nbformat
    from jupyter_client import KernelManager
    from nbclient import NotebookClient
    from nbdev.frontmatter import FrontmatterProc
    from nbdev.process import NBProcessor

    src, dst = NBS / rel, EXEC / rel
    nb = nbformat.read(src, as_version=4)
    t0, flags = time.time(), _tst_flags()
    fm = getattr(NBProcessor(src, procs=FrontmatterProc, process=True).nb, 'frontmatter_', {})
    skipped = 0
    if str(fm.get('skip_exec', '')).lower() not in ('true', '1', 'yes'):
        skip_idx = {i for i, c in enumerate(nb.cells) if c.cell_type == 'code' and _skip(c, flags)}
        skipped = len(skip_idx)

        class Client(NotebookClient):
            async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
                if cell_index in skip_idx: return cell  # keep the outputs saved in the notebook
                return await super().async_execute_cell(cell, cell_index, execution_count, store_history)

        # IPC transport: TCP ports picked by kernels started at the same moment can collide
        with tempfile.TemporaryDirectory(prefix='lstm_pfd_docs_kernel_') as d:
            km = KernelManager(kernel_name='python3', transport='ipc', ip=str(Path(d) / 'k'))
            try:
                Client(nb, km=km, timeout=timeout, kernel_name='python3', store_widget_state=True,
                       allow_errors=False, record_timing=False,
                       resources={'metadata': {'path': str(src.parent)}}).execute()
            finally:  # a km passed in is not shut down by nbclient
                if km.has_kernel: km.shutdown_kernel(now=True)
    for c in nb.cells:  # nbdev's processing keeps only `#| key: value` directives: give `#| no-output` its value
        if c.cell_type == 'code': c.source = _re_no_output.sub(r'\1: true', c.source)
    dst.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dst)
    return rel, time.time() - t0, skipped


def execute_all(rels: list[Path], workers: int, timeout: int) -> None:
    if EXEC.exists(): shutil.rmtree(EXEC)
    EXEC.mkdir(parents=True)
    for p in NBS.rglob('*'):  # images the notebooks' markdown may reference
        if p.suffix.lower() in IMAGE_EXTS and not any(s.startswith(('.', '_')) for s in p.relative_to(NBS).parts):
            (EXEC / p.relative_to(NBS)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, EXEC / p.relative_to(NBS))
    env_backend = os.environ.pop('MPLBACKEND', None)  # let the kernels use the inline backend
    # longest first (times of the last build), so that two workers finish close together
    times = json.loads(TIMES.read_text()) if TIMES.exists() else {}
    order = sorted(rels, key=lambda r: -times.get(str(r), 1e9))
    try:
        with ProcessPoolExecutor(max_workers=max(1, workers)) as ex:
            futs = {ex.submit(execute_one, str(r), timeout): r for r in order}
            failed = []
            for fut, rel in futs.items():
                try:
                    r, dt, skipped = fut.result()
                    times[r] = round(dt, 1)
                    log.info('executed %s in %.1f s (%d cells skipped)', r, dt, skipped)
                except Exception as e:  # noqa: BLE001 - report every failing notebook, then stop
                    failed.append(rel)
                    log.error('executing nbs/%s failed:\n%s', rel, e)
            TIMES.parent.mkdir(parents=True, exist_ok=True)
            TIMES.write_text(json.dumps(times, indent=1, sort_keys=True))
            if failed: raise SystemExit(f'docs build failed: error while executing {", ".join(map(str, failed))}')
    finally:
        if env_backend is not None: os.environ['MPLBACKEND'] = env_backend


# ----------------------------------------------------------------------------------- nbdev processing
def _filter_defaults():
    """nbdev's FilterDefaults with `exec_show_docs` adapted to notebooks that were executed already:
    instead of re-running the notebook's export and import cells (slow for training notebooks, and
    failing on cells that mix imports with code that needs earlier cells), the namespace of the
    module(s) the notebook exports to is loaded, then only the show_doc cells run. Every other cell
    keeps its nbclient outputs. Notebooks that export nothing get nbdev's behaviour."""
    from copy import deepcopy
    from nbdev.processors import FilterDefaults, _default_exp, _is_showdoc, exec_show_docs

    class exec_show_docs_(exec_show_docs):
        def begin(self):
            super().begin()
            mods = {_default_exp(self.nb)} | {d[0] for c in self.nb.cells if c.cell_type == 'code'
                                              for k, d in (c.directives_ or {}).items()
                                              if k in ('export', 'exports', 'exporti') and d}
            self.mods = sorted(m for m in mods if m)
            for m in self.mods:
                self.k.run_cell(f'import importlib as _il; globals().update({{k: v for k, v in '
                                f'vars(_il.import_module("lstm_pfd.{m}")).items() if not k.startswith("__")}})')
                if self.k.exc: raise Exception(f'cannot import lstm_pfd.{m} for show_doc') from self.k.exc

        def __call__(self, cell):
            if self.mods and not (_is_showdoc(cell) or 'exec_doc' in (cell.directives_ or {})): return
            keep = None if _is_showdoc(cell) else deepcopy(cell.get('outputs'))
            super().__call__(cell)
            if keep is not None: cell['outputs'] = keep
    exec_show_docs_.__name__ = 'exec_show_docs'

    class Filter(FilterDefaults):
        def base_procs(self):
            return [exec_show_docs_ if p is exec_show_docs else p for p in super().base_procs()]
    return Filter


def nbdev_process() -> None:
    "nbdev's docs preprocessing, from Python (the CLI commands would try to download Quarto)."
    import nbdev.serve
    from nbdev.doclinks import _build_modidx
    from nbdev.quarto import nbdev_sidebar, refresh_quarto_yml
    refresh_quarto_yml()
    _build_modidx()
    nbdev_sidebar.__wrapped__()
    cwd, orig = os.getcwd(), nbdev.serve.FilterDefaults
    os.chdir(ROOT)
    nbdev.serve.FilterDefaults = _filter_defaults()
    try: nbdev.serve.proc_nbs(path=str(EXEC), n_workers=0, force=True)
    finally: os.chdir(cwd); nbdev.serve.FilterDefaults = orig


# ----------------------------------------------------------------------------------- _proc -> MyST-NB
_re_dir = re.compile(r'^\s*#\s*\|\s*(.*?)\s*$')
_re_fence = re.compile(r'^\s*(`{3,}|~{3,})')
_re_heading = re.compile(r'^(#{1,6})(\s+.*)$')
_re_showdoc = re.compile(r'^\s*show_doc\(\s*([\w.]+)')
_re_source = re.compile(r'^\[source\]\((\S+?)\)(\{[^}]*\})?\s*$')
_re_mdlink = re.compile(r'(!?)\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(([^()\s]+)\)')  # (image mark, text, url)


def split_directives(source: str) -> tuple[dict[str, str], str]:
    "Leading `#| key: value` lines of a code cell as {key: value}, and the code without them."
    lines, dirs, i = source.splitlines(), {}, 0
    while i < len(lines) and _re_dir.match(lines[i]):
        key, _, val = _re_dir.match(lines[i]).group(1).partition(' ')
        if key: dirs[key.rstrip(':')] = val.strip().strip('"\'')
        i += 1
    return dirs, '\n'.join(lines[i:]).strip('\n')


def tags_for(dirs: dict[str, str]) -> list[str]:
    "MyST-NB cell tags for nbdev/Quarto directives."
    false = lambda k: dirs.get(k, '').lower() == 'false'
    tags = []
    if 'hide' in dirs or false('include'): tags.append('remove-cell')
    if false('echo'): tags.append('remove-input')
    if false('output'): tags.append('remove-output')
    if 'code-fold' in dirs and dirs['code-fold'].lower() not in ('false', ''): tags.append('hide-input')
    if NO_OUTPUT in dirs: tags.append(NO_OUTPUT)  # a cell meant to produce no output (tests/test_docs_site.py)
    return tags


# ----------------------------------------------------------------------------------- rendered outputs
NO_OUTPUT = 'no-output'  # `#| no-output`: the cell produces no output on purpose
_re_warning = re.compile(r'^\S.*?:\d+: \w*Warning: ')


def _local_prefixes() -> list[str]:
    "Absolute paths of this checkout and of the Python environment, longest first."
    import site, sysconfig
    ps = {str(ROOT), sys.prefix, sys.base_prefix, str(Path.home()), *site.getsitepackages(),
          sysconfig.get_paths().get('purelib', '')}
    return sorted((p.rstrip('/') for p in ps if p and len(p) > 1), key=len, reverse=True)


def strip_warnings(text: str) -> str:
    "Drop Python warnings (`file.py:12: XWarning: msg` and the indented source line after it) from `text`."
    out, skip = [], False
    for line in text.splitlines(keepends=True):
        if _re_warning.match(line): skip = True; continue
        if skip and line.startswith((' ', '\t')): continue
        skip = False
        out.append(line)
    return ''.join(out)


def clean_text(text: str, prefixes: list[str]) -> str:
    "Local absolute paths made relative (`<checkout>/nbs/x` -> `nbs/x`, site-packages -> `site-packages/...`)."
    for p in prefixes:
        text = re.sub(re.escape(p) + r'(?![\w.-])/?(lib/python[\d.]+/)?', '' if p == str(ROOT) else '.../', text)
    return text


def clean_outputs(cell, prefixes: list[str]) -> None:
    "Warnings and local paths out of a code cell's rendered outputs (stderr warnings dropped; text cleaned)."
    outs = []
    for o in cell.get('outputs', []):
        if o.output_type == 'stream':
            o.text = clean_text(strip_warnings(o.text) if o.name == 'stderr' else o.text, prefixes)
            if not o.text.strip(): continue
        elif o.output_type in ('execute_result', 'display_data'):
            for k in ('text/plain', 'text/html', 'text/markdown'):
                if isinstance(o.get('data', {}).get(k), str): o.data[k] = clean_text(o.data[k], prefixes)
        outs.append(o)
    cell.outputs = outs


# ----------------------------------------------------------------------------------- API reference
def resolve(module: str | None, name: str):
    "The object `name` (`f`, `Class` or `Class.method`) of `lstm_pfd.<module>`, or None."
    import importlib
    try: obj = importlib.import_module(f'lstm_pfd.{module}') if module else None
    except Exception: return None  # noqa: BLE001
    for part in name.split('.'):
        if obj is None: return None
        obj = inspect_getattr(obj, part)
    return obj


def inspect_getattr(obj, name: str):
    "Attribute `name` of `obj` as defined (classmethod/staticmethod/property unwrapped to its function)."
    import inspect
    raw = inspect.getattr_static(obj, name, None) if inspect.isclass(obj) else getattr(obj, name, None)
    if isinstance(raw, (classmethod, staticmethod)): return raw.__func__
    if isinstance(raw, property): return raw.fget
    return raw


def public_methods(cls) -> list[str]:
    "Public methods (functions, classmethods, staticmethods) a class defines itself, in source order."
    import inspect
    return [k for k, v in vars(cls).items() if not k.startswith('_')
            and (inspect.isfunction(v) or isinstance(v, (classmethod, staticmethod)))]


def source_url(obj) -> str | None:
    "`git_url/blob/branch/<file>#L<line>` from settings.ini for an object defined in the package, else None."
    import inspect
    from nbdev.config import get_config
    try:
        obj = inspect.unwrap(obj)
        path = Path(inspect.getsourcefile(obj)).resolve()
        line = inspect.getsourcelines(obj)[1]
    except (TypeError, OSError): return None
    cfg = get_config()
    lib = (ROOT / cfg.get('lib_path', 'lstm_pfd')).resolve()
    url, branch = cfg.get('git_url', ''), cfg.get('branch', '')
    if not (url and branch and line) or lib not in path.parents: return None
    return f"{url.rstrip('/')}/blob/{branch}/{path.relative_to(ROOT).as_posix()}#L{line}"


def param_docs(obj) -> dict[str, dict]:
    """Parameters of a callable (class: its constructor) as {name: {anno, default, docment}} from nbdev
    docments comments or a numpy-style docstring; `self`/`cls` left out. {} when there are none or no source."""
    import dataclasses, inspect
    from fastcore.docments import docments
    if inspect.isclass(obj) and not dataclasses.is_dataclass(obj):
        # a constructor inherited from object, torch or an exception is not this package's API
        pkg = obj.__module__.split('.')[0]
        if not (getattr(obj.__init__, '__module__', None) or '').split('.')[0] == pkg: return {}
    try: d = docments(obj, full=True, returns=False, args_kwargs=True)  # `**kw,  # comment` counts too
    except Exception: return {}  # noqa: BLE001 - builtins, C extensions, objects without source
    return {k: v for k, v in d.items() if k not in ('self', 'cls', 'return')}


def undocumented(obj) -> list[str]:
    "Names of `obj`'s public parameters (not starting with `_`) without a description."
    return [k for k, v in param_docs(obj).items() if not k.startswith('_') and not (v.get('docment') or '').strip()]


def public_callables() -> list[tuple[str, object]]:
    """Every public callable of the package: ('module.name', obj) for the functions and classes each module
    exports (`__all__`, defined there), and ('module.Class.method', fn) for the public methods a class defines."""
    import importlib, inspect, pkgutil
    from nbdev.config import get_config
    lib = get_config().get('lib_name', 'lstm_pfd')
    pkg = importlib.import_module(lib)
    res = []
    for m in sorted(x.name for x in pkgutil.iter_modules(pkg.__path__) if not x.name.startswith('_')):
        mod = importlib.import_module(f'{lib}.{m}')
        for n in getattr(mod, '__all__', []):
            o = getattr(mod, n, None)
            if not (inspect.isfunction(o) or inspect.isclass(o)) or getattr(o, '__module__', None) != mod.__name__: continue
            res.append((f'{m}.{n}', o))
            if inspect.isclass(o): res += [(f'{m}.{n}.{k}', inspect_getattr(o, k)) for k in public_methods(o)]
    return res


def _fmt_anno(a) -> str:
    import inspect
    if a is inspect.Parameter.empty or a is None: return ''
    return a if isinstance(a, str) else getattr(a, '__name__', str(a)).replace('typing.', '')


def param_table(obj) -> str:
    "A markdown table of `obj`'s parameters (type, default, description); '' without parameters."
    import inspect
    rows = []
    for k, v in param_docs(obj).items():
        if k.startswith('_'): continue  # private parameters are not part of the API
        kind = v.get('kind')
        nm = ('*' if kind == inspect.Parameter.VAR_POSITIONAL else '**' if kind == inspect.Parameter.VAR_KEYWORD else '') + k
        dflt = v.get('default', inspect.Parameter.empty)
        dflt = '' if dflt is inspect.Parameter.empty else f'`{dflt!r}`'
        cell = lambda t: str(t).replace('|', '\\|').replace('\n', ' ')
        rows.append(f"| `{nm}` | {cell(_fmt_anno(v.get('anno')))} | {cell(dflt)} | {cell(v.get('docment') or '')} |")
    if not rows: return ''
    return '\n'.join(['| parameter | type | default | description |', '|---|---|---|---|', *rows])


class PageConverter:
    "Turns one `_proc` notebook into the notebook MyST-NB renders."
    def __init__(self, rel: Path, pages: dict[str, str], doc_base: str, module: str | None):
        self.rel, self.page, self.pages, self.doc_base, self.module = rel, page_name(rel), pages, doc_base, module
        self.level = 1  # level of the last heading seen
        self.prefixes = _local_prefixes()
        self.documented: set[str] = set()  # names with their own show_doc cell on this page

    # links -------------------------------------------------------------------------------
    def _relurl(self, page: str, anchor: str = '') -> str:
        from docutils.nodes import make_id
        here = Path(self.page).parent
        url = os.path.relpath(page + '.html', here.as_posix() or '.') if page != self.page else ''
        return url + ('#' + make_id(anchor) if anchor else '')

    def _link(self, m: re.Match) -> str:
        bang, text, url = m.groups()
        if self.doc_base and url.startswith(self.doc_base):  # nbdev's absolute links into this site
            path, _, anchor = url[len(self.doc_base):].partition('#')
            path = re.sub(r'\.html$', '', path.lstrip('/')) or 'index'
            # a private name (`_record`) has no entry to link to: keep the text, drop the dead anchor
            if any(part.startswith('_') for part in anchor.split('.')): return text
            if path in self.pages.values(): return f'{bang}[{text}]({self._relurl(path, anchor)})'
        elif '://' not in url and not url.startswith(('#', 'mailto:')):  # a notebook linking another
            path, _, anchor = url.partition('#')
            target = (Path(self.rel).parent / path)
            key = os.path.normpath(target.as_posix())
            if key in self.pages: return f'{bang}[{text}]({self._relurl(self.pages[key], anchor)})'
        return m.group(0)

    def links(self, md: str) -> str:
        return _re_mdlink.sub(self._link, md)

    # headings ------------------------------------------------------------------------------
    def headings(self, md: str, base: int | None = None) -> str:
        """Keep heading levels consecutive (MyST warns on jumps, and -W makes that an error). With `base`,
        the text's top heading level becomes `base` (show_doc entries: one below the current section)."""
        lines, fence, out, shift = md.splitlines(), None, [], None
        for line in lines:
            f = _re_fence.match(line)
            if f:
                if fence is None: fence = f.group(1)
                elif f.group(1).startswith(fence[0]) and len(f.group(1)) >= len(fence): fence = None
            h = None if fence is not None or f else _re_heading.match(line)
            if h:
                lvl = len(h.group(1))
                if base is not None:
                    if shift is None: shift = base - lvl
                    lvl += shift
                lvl = max(2, min(lvl, self.level + 1, 6)) if lvl > 1 or self.level > 1 else lvl
                if base is None: self.level = lvl
                line = '#' * lvl + h.group(2)
            out.append(line)
        return '\n'.join(out)

    # show_doc ------------------------------------------------------------------------------
    def _is_class(self, name: str) -> bool:
        import importlib, inspect
        try: return inspect.isclass(getattr(importlib.import_module(f'lstm_pfd.{self.module}'), name))
        except Exception: return False  # noqa: BLE001 - only a label

    def show_doc(self, md: str, name: str, depth: int = 1) -> str:
        """show_doc markdown as a section `depth` levels below the current one; a source link built from
        settings.ini after the heading (nbdev's is dropped), the parameters as a table after the signature."""
        lines = md.strip().splitlines()
        while lines and lines[0].strip() in ('---', ''): lines.pop(0)
        if lines and _re_source.match(lines[0]):
            lines.pop(0)
            while lines and not lines[0].strip(): lines.pop(0)
        text = '\n'.join(lines)
        obj = resolve(self.module, name)
        src = source_url(obj) if obj is not None else None
        if '.' not in name and self._is_class(name):
            text = re.sub(rf'^def {re.escape(name)}\(', f'class {name}(', text, count=1, flags=re.MULTILINE)
        table = param_table(obj) if obj is not None and callable(obj) else ''
        if table:  # after the signature block (the first fence), before the docstring
            m = re.search(r'^```python\n.*?^```\n?', text, flags=re.MULTILINE | re.DOTALL)
            at = m.end() if m else len(text)
            text = text[:at].rstrip('\n') + '\n\n' + table + '\n\n' + text[at:].lstrip('\n')
        text = self.headings(text, base=min(self.level + depth, 6))
        if src:
            link = f'<a class="nbdev-source" href="{src}">source</a>'
            text = re.sub(r'^(#{1,6} .*)$', lambda m: m.group(1) + '\n\n' + link, text, count=1, flags=re.MULTILINE)
        return self.links(text)

    def methods(self, name: str) -> list:
        "show_doc entries for the public methods of class `name` that have no show_doc cell of their own."
        import inspect
        from nbformat.v4 import new_markdown_cell
        from nbdev.showdoc import BasicMarkdownRenderer
        cls = resolve(self.module, name)
        if '.' in name or not inspect.isclass(cls): return []
        res = []
        for m in public_methods(cls):
            if f'{name}.{m}' in self.documented: continue
            md = BasicMarkdownRenderer(inspect_getattr(cls, m), name=f'{name}.{m}')._repr_markdown_()
            level, self.level = self.level, min(self.level + 1, 6)  # one below the class's entry
            try: res.append(new_markdown_cell(self.show_doc(md, f'{name}.{m}')))
            finally: self.level = level
        return res

    # cells ---------------------------------------------------------------------------------
    def convert(self, nb):
        import nbformat, yaml
        from nbformat.v4 import new_markdown_cell
        self.documented = {m.group(1) for c in nb.cells if c.cell_type == 'code'
                           for m in [_re_showdoc.match(split_directives(c.source)[1])] if m}
        cells = []
        for cell in nb.cells:
            src = cell.source
            if cell.cell_type == 'raw':
                m = re.match(r'^---\s*\n(.*?)\n---\s*$', src.strip(), flags=re.DOTALL)
                if m:  # nbdev's frontmatter: title and description
                    fm = yaml.safe_load(m.group(1)) or {}
                    head = f"# {fm.get('title', page_name(self.rel))}"
                    if fm.get('description'): head += f"\n\n{fm['description']}"
                    cells.append(new_markdown_cell(self.links(head), metadata={'tags': ['nbdev-title']}))
                    self.level = 1
                elif src.strip(): cells.append(cell)
            elif cell.cell_type == 'markdown':
                if src.strip().startswith('<!-- WARNING: THIS FILE WAS AUTOGENERATED'): continue
                from make_readme import expand_module_table   # the table of the numbered notebooks, as in the README
                cell.source = self.links(self.headings(expand_module_table(src, NBS)))
                cells.append(cell)
            elif cell.cell_type == 'code':
                dirs, code = split_directives(src)
                sd = _re_showdoc.match(code)
                mds = [o.data['text/markdown'] for o in cell.get('outputs', [])
                       if o.output_type in ('execute_result', 'display_data') and 'text/markdown' in o.get('data', {})]
                asis = dirs.get('output', '').lower() == 'asis' and mds
                if asis and sd and re.fullmatch(r'\s*show_doc\([^\n]*\)\s*', code):
                    cells += [new_markdown_cell(self.show_doc(md, sd.group(1))) for md in mds]
                    cells += self.methods(sd.group(1))
                    continue
                if asis and dirs.get('echo', '').lower() == 'false':
                    cells += [new_markdown_cell(self.links(self.headings(md))) for md in mds]
                    continue
                tags = tags_for(dirs)
                if 'remove-cell' in tags or (not code.strip() and not cell.get('outputs')): continue
                cell.source = code
                clean_outputs(cell, self.prefixes)
                if tags: cell.metadata['tags'] = sorted(set(cell.metadata.get('tags', [])) | set(tags))
                cells.append(cell)
        nb.cells = cells
        return nb


def _default_exp(path: Path) -> str | None:
    import nbformat
    for c in nbformat.read(path, as_version=4).cells:
        m = c.cell_type == 'code' and re.search(r'^\s*#\|\s*default_exp\s+(\S+)', c.source, flags=re.MULTILINE)
        if m: return m.group(1)


def write_site(rels: list[Path]) -> None:
    "docs/_src/site: the converted notebooks (named like nbdev's pages) and the toctree in index."
    import nbformat
    from nbformat.v4 import new_markdown_cell
    from nbdev.config import get_config
    cfg = get_config()
    doc_base = (cfg.get('doc_host', '') + cfg.get('doc_baseurl', '')).rstrip('/') + '/'
    if SITE.exists(): shutil.rmtree(SITE)
    SITE.mkdir(parents=True)
    pages = {os.path.normpath(r.as_posix()): page_name(r) for r in rels}
    for p in EXEC.rglob('*'):
        if p.is_file() and p.suffix.lower() in IMAGE_EXTS:
            (SITE / p.relative_to(EXEC)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, SITE / p.relative_to(EXEC))
    for rel in rels:
        raw = json.loads((PROC / rel).read_text(encoding='utf-8'))
        for c in raw['cells']: c.pop('has_sd', None)  # nbdev's marker, not nbformat
        nb = nbformat.reads(json.dumps(raw), as_version=4)
        nb = PageConverter(rel, pages, doc_base, _default_exp(NBS / rel)).convert(nb)
        if rel == Path('index.ipynb'):
            groups = [('Library', [page_name(r) for r in rels if r.parent == Path('.') and r.name != 'index.ipynb']),
                      ('Tutorials', [page_name(r) for r in rels if r.parent == Path('tutorials')])]
            for caption, names in groups:
                if names:
                    body = '\n'.join(names)
                    nb.cells.append(new_markdown_cell(f'```{{toctree}}\n:hidden:\n:caption: {caption}\n\n{body}\n```'))
        dst = SITE / (page_name(rel) + '.ipynb')
        dst.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, dst)


# ----------------------------------------------------------------------------------- vendored JS
def _npm_pack(spec: str) -> Path:
    "The npm tarball for `spec`, from the cache in docs/_static_vendor or fetched with `npm pack`."
    VENDOR_CACHE.mkdir(parents=True, exist_ok=True)
    name = spec.rsplit('@', 1)[0].lstrip('@').replace('/', '-')
    cached = sorted(VENDOR_CACHE.glob(f'{name}-[0-9]*.tgz'))
    if cached: return cached[-1]
    npm = shutil.which('npm')
    if not npm: raise SystemExit(f'docs build needs npm to fetch {spec} (or put its tarball in {VENDOR_CACHE})')
    out = subprocess.run([npm, 'pack', spec, '--silent', '--pack-destination', str(VENDOR_CACHE)],
                         capture_output=True, text=True)
    if out.returncode: raise SystemExit(f'npm pack {spec} failed:\n{out.stderr}')
    cached = sorted(VENDOR_CACHE.glob(f'{name}-[0-9]*.tgz'))
    if not cached: raise SystemExit(f'npm pack {spec} wrote no tarball into {VENDOR_CACHE}')
    return cached[-1]


def vendor_static(dest: Path) -> None:
    "Unpack the widget JS, requirejs and MathJax into `dest`/vendor/<name>/ (served as _static/vendor)."
    for spec, (name, keep) in VENDOR.items():
        tgz, target = _npm_pack(spec), dest / 'vendor' / name
        stamp = target / '.source'
        if stamp.exists() and stamp.read_text() == tgz.name: continue
        if target.exists(): shutil.rmtree(target)
        with tarfile.open(tgz) as tf:
            for m in tf.getmembers():
                rel = m.name.split('/', 1)[-1]
                if not m.isfile() or VENDOR_SKIP.search(rel): continue
                if not any(rel == k or rel.startswith(k + '/') for k in keep): continue
                for k in keep:  # es5/input/... -> input/...: MathJax finds its parts next to its script
                    if '/' in k and (rel == k or rel.startswith(k.rsplit('/', 1)[0] + '/')):
                        rel = rel[len(k.rsplit('/', 1)[0]) + 1:]
                        break
                (target / rel).parent.mkdir(parents=True, exist_ok=True)
                with tf.extractfile(m) as f: (target / rel).write_bytes(f.read())
        stamp.write_text(tgz.name)
        log.info('vendored %s from %s', name, tgz.name)


# ----------------------------------------------------------------------------------- sphinx
def sphinx_build() -> None:
    cmd = [sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-b', 'html', '-c', str(DOCS),
           '-d', str(DOCTREES), str(SITE), str(OUT)]
    log.info('%s', ' '.join(cmd))
    r = subprocess.run(cmd, cwd=ROOT)
    if r.returncode: raise SystemExit(f'sphinx-build failed (exit {r.returncode})')


# ----------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description='Build the docs site into docs/_build/html.')
    p.add_argument('--workers', type=int, default=int(os.environ.get('LSTM_PFD_DOCS_WORKERS', 2)))
    p.add_argument('--timeout', type=int, default=int(os.environ.get('LSTM_PFD_DOCS_CELL_TIMEOUT', 600)),
                   help='seconds per cell')
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='[build_docs %(relativeCreated)6.0f ms] %(message)s')
    logging.getLogger('traitlets').setLevel(logging.WARNING)
    t0 = time.time()
    import make_readme
    make_readme.main([])
    rels = discover_notebooks()
    log.info('notebooks: %s', ', '.join(map(str, rels)))
    execute_all(rels, args.workers, args.timeout)
    nbdev_process()
    write_site(rels)
    vendor_static(SRC / 'static')
    sphinx_build()
    log.info('done in %.1f s', time.time() - t0)
    return 0


if __name__ == '__main__':
    sys.exit(main())
