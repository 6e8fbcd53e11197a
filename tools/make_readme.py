#!/usr/bin/env python
"""Generate README.md from nbs/index.ipynb (without Quarto, which nbdev_readme needs).

    python tools/make_readme.py          # write README.md
    python tools/make_readme.py --check  # exit 1 if README.md differs from what would be written
    python tools/make_readme.py --figures  # also re-draw the committed figures (see below), then write

Rules: the title cell (`# Title` + `> summary`) becomes the heading and a plain paragraph; nbdev
directives (`#| ...`) are stripped; cells marked `hide`, `include: false`, `export*` or
`default_exp` are dropped; code cells become ```python fences; text outputs saved in the
notebook are kept as plain fences (images and widgets are dropped). The notebook is not executed,
so the README depends only on the committed notebook and its committed figures.

Module table: a markdown line `<!-- module-table -->` in the notebook becomes the table of the numbered notebooks
(`nbs/NN*.ipynb`): each one's title and summary (its first cell) and its `#| default_exp` module, so the table
lists every library notebook and cannot go stale. The docs build expands the same line the same way.

Figures: a code cell with `#| readme-image: images/x.png` (a path relative to nbs/) is shown in the
README as that committed PNG instead of its outputs; `--figures` executes those cells (their code
alone, with the Agg backend) and saves the figure their last expression returns to that path.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
INDEX = ROOT / 'nbs' / 'index.ipynb'
README = ROOT / 'README.md'
NOTE = '<!-- Generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file. -->'

_re_directive = re.compile(r'^\s*#\s*\|\s*(.*?)\s*$')
_hide = {'hide', 'export', 'exports', 'exporti', 'default_exp'}


def split_directives(source: str) -> tuple[dict, str]:
    "Leading `#| key: value` lines of a code cell as a dict, and the code without them."
    lines, dirs = source.splitlines(), {}
    i = 0
    while i < len(lines) and (_re_directive.match(lines[i]) or not lines[i].strip()):
        m = _re_directive.match(lines[i])
        if m and m.group(1):
            key, _, val = m.group(1).partition(' ')
            dirs[key.rstrip(':')] = val.strip()
        i += 1
    return dirs, '\n'.join(lines[i:]).strip('\n')


def _hidden(dirs: dict) -> bool:
    return bool(_hide & dirs.keys()) or dirs.get('include', '').lower() == 'false'


def _title(source: str) -> list[str]:
    "`# Title` and `> summary` lines of the first cell: keep the heading, make the summary a paragraph."
    out = []
    for line in source.strip().splitlines():
        m = re.match(r'^>\s?(.*)$', line)
        out.append(m.group(1) if m else line)
        if not m and line.startswith('# '): out.append('')
    return ['\n'.join(out).strip()]


def _outputs(cell) -> list[str]:
    res = []
    for o in cell.get('outputs', []):
        if o.output_type == 'stream': text = o.text
        elif o.output_type in ('execute_result', 'display_data'):
            data = o.get('data', {})
            if 'text/markdown' in data: res.append(data['text/markdown'].strip()); continue
            text = data.get('text/plain', '')
        else: continue
        if text.strip(): res.append('```\n' + text.strip('\n') + '\n```')
    return res


MODULE_TABLE = '<!-- module-table -->'


def library_notebooks(nbs: Path = ROOT / 'nbs') -> list[tuple[str, str, str, str | None]]:
    "(notebook stem, title, summary, default_exp module) of every numbered notebook, in file order."
    res = []
    for p in sorted(Path(nbs).glob('[0-9]*.ipynb')):
        nb = nbformat.read(p, as_version=4)
        first = nb.cells[0].source if nb.cells else ''
        title = next((l[2:].strip() for l in first.splitlines() if l.startswith('# ')), p.stem)
        summary = ' '.join(l.lstrip('>').strip() for l in first.splitlines() if l.startswith('>'))
        mod = next((m.group(1) for c in nb.cells if c.cell_type == 'code'
                    for m in [re.search(r'^\s*#\|\s*default_exp\s+(\S+)', c.source, flags=re.MULTILINE)] if m), None)
        res.append((p.stem, title, summary, mod))
    return res


def module_table(nbs: Path = ROOT / 'nbs') -> str:
    "The markdown table of the numbered notebooks: notebook, module, title and summary."
    rows = ['| notebook | module | what it holds |', '|---|---|---|']
    for stem, title, summary, mod in library_notebooks(nbs):
        what = f"**{title}**" + (f": {summary}" if summary else '')
        rows.append(f"| `{stem}` | {f'`lstm_pfd.{mod}`' if mod else '-'} | {what.replace('|', '/')} |")
    return '\n'.join(rows)


def expand_module_table(md: str, nbs: Path = ROOT / 'nbs') -> str:
    "`md` with the `MODULE_TABLE` marker line replaced by `module_table(nbs)`."
    return md.replace(MODULE_TABLE, module_table(nbs)) if MODULE_TABLE in md else md


IMAGE_KEY = 'readme-image'


def _image_path(index: Path, rel: str) -> str:
    "The README's link to the committed figure `rel` (relative to the notebook's folder)."
    p = (Path(index).parent / rel).resolve()
    try: return p.relative_to(ROOT).as_posix()
    except ValueError: return p.as_posix()


def figure_cells(index: Path = INDEX) -> list[tuple[Path, str]]:
    "(absolute PNG path, code) of the cells marked `#| readme-image: path`."
    nb = nbformat.read(index, as_version=4)
    res = []
    for cell in nb.cells:
        if cell.cell_type != 'code': continue
        dirs, code = split_directives(cell.source)
        if dirs.get(IMAGE_KEY): res.append(((Path(index).parent / dirs[IMAGE_KEY]).resolve(), code))
    return res


def draw_figures(index: Path = INDEX, dpi: int = 72) -> list[Path]:
    "Execute each `readme-image` cell's code and save the figure its last expression returns."
    import ast
    import matplotlib
    matplotlib.use('Agg')
    out = []
    for path, code in figure_cells(index):
        tree = ast.parse(code)
        if not tree.body or not isinstance(tree.body[-1], ast.Expr):
            raise SystemExit(f'{index.name}: a readme-image cell must end with an expression returning a figure')
        last = ast.Expression(tree.body.pop().value)
        ns: dict = {}
        exec(compile(tree, f'<{index.name}>', 'exec'), ns)
        fig = eval(compile(last, f'<{index.name}>', 'eval'), ns)
        if not hasattr(fig, 'savefig'):
            raise SystemExit(f'{index.name}: {path.name}: the cell returned {type(fig).__name__}, not a figure')
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi, metadata={'Software': None})
        out.append(path)
        print(f'wrote {_image_path(ROOT / "nbs" / "x", path.as_posix())}')
    return out


def _page_links(md: str, nbs: Path) -> str:
    "Links to site pages (`tutorials/x.html#a`) become links to their notebooks (`nbs/tutorials/01_x.ipynb#a`)."
    from build_docs import discover_notebooks, page_name
    pages = {page_name(r) + '.html': r.as_posix() for r in discover_notebooks(nbs)}
    def sub(m):
        path, _, anchor = m.group(1).partition('#')
        if path not in pages: return m.group(0)
        rel = (Path(nbs) / pages[path]).resolve()
        try: rel = rel.relative_to(ROOT)
        except ValueError: pass
        return f"]({rel.as_posix()}{'#' + anchor if anchor else ''})"
    return re.sub(r'\]\(([\w./-]+\.html(?:#[\w.-]*)?)\)', sub, md)


def render(index: Path = INDEX) -> str:
    "The README text for `index` (deterministic: depends only on the notebook file)."
    nb = nbformat.read(index, as_version=4)
    blocks, alt = [NOTE], 'figure'
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == 'markdown':
            heads = re.findall(r'^#+\s+(.+?)\s*$', cell.source, flags=re.MULTILINE)
            if heads: alt = heads[-1]
            if i == 0 and cell.source.lstrip().startswith('# '): blocks += _title(cell.source)
            elif cell.source.strip(): blocks.append(_page_links(expand_module_table(cell.source.strip(), Path(index).parent), Path(index).parent))
        elif cell.cell_type == 'code':
            dirs, code = split_directives(cell.source)
            if _hidden(dirs) or not code.strip(): continue
            if dirs.get('echo', '').lower() != 'false': blocks.append('```python\n' + code + '\n```')
            if dirs.get(IMAGE_KEY): blocks.append(f'![{alt}]({_image_path(index, dirs[IMAGE_KEY])})')
            elif dirs.get('output', '').lower() != 'false': blocks += _outputs(cell)
        elif cell.cell_type == 'raw' and cell.source.strip() and not cell.source.lstrip().startswith('---'):
            blocks.append(cell.source.strip())
    return '\n\n'.join(blocks) + '\n'


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--check', action='store_true', help='only check that README.md is up to date')
    p.add_argument('--figures', action='store_true', help='re-draw the readme-image figures before writing')
    args = p.parse_args(argv)
    if args.figures and not args.check: draw_figures()
    text = render()
    if args.check:
        ok = README.exists() and README.read_text(encoding='utf-8') == text
        if not ok: print('README.md is out of date: run python tools/make_readme.py', file=sys.stderr)
        return 0 if ok else 1
    if not README.exists() or README.read_text(encoding='utf-8') != text:
        README.write_text(text, encoding='utf-8')
        print('wrote README.md')
    return 0


if __name__ == '__main__':
    sys.exit(main())
