"""Convert a jupytext percent-format draft into an nbdev notebook (authoring aid only)."""
import sys

import jupytext

src, dst = sys.argv[1], sys.argv[2]
nb = jupytext.read(src, fmt='py:percent')
nb.metadata = {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}}
for c in nb.cells:
    c.metadata = {}
jupytext.write(nb, dst, fmt='ipynb')
