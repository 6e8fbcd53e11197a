"""Sizes of the exported notebook cells (the project's style rule: no exported cell over 60 lines, median under 15).

    python tools/cell_stats.py [--top 10] [--per-notebook]

Counts the lines of each `#| export` cell of nbs/*.ipynb, directive lines left out.
"""
import argparse
import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def exported_cells(nbs: Path = ROOT / 'nbs'):
    "`(lines, notebook, first line)` of every exported cell."
    for nb in sorted(nbs.glob('*.ipynb')):
        for c in json.loads(nb.read_text())['cells']:
            src = ''.join(c['source'])
            if c['cell_type'] == 'code' and src.startswith('#| export'):
                body = [l for l in src.splitlines() if not l.startswith('#|')]
                yield len(body), nb.name, (body[0] if body else '')[:70]


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--top', type=int, default=10, help='how many of the longest cells to list (default: 10)')
    ap.add_argument('--per-notebook', action='store_true', help='also print the median per notebook')
    a = ap.parse_args()
    rows = list(exported_cells())
    n = [r[0] for r in rows]
    print(f'{len(n)} exported cells: median {statistics.median(n):g} lines, max {max(n)}, over 60 lines: {sum(x > 60 for x in n)}')
    if a.per_notebook:
        for nb in sorted({r[1] for r in rows}):
            m = [r[0] for r in rows if r[1] == nb]
            print(f'  {nb:<28} {len(m):4d} cells, median {statistics.median(m):g}, max {max(m)}')
    for r in sorted(rows, reverse=True)[:a.top]: print(f'{r[0]:4d}  {r[1]:<24} {r[2]}')
