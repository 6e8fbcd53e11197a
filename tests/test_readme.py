"""README.md is generated from nbs/index.ipynb by tools/make_readme.py and committed; its top holds
exactly the two commands (run the main job; run the whole test suite)."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tools'))
import make_readme  # noqa: E402

README = ROOT / 'README.md'
HINT = 'regenerate it with `python tools/make_readme.py` and commit README.md'


def test_readme_matches_index_notebook():
    assert README.read_text(encoding='utf-8') == make_readme.render(), f'README.md is stale: {HINT}'


def test_committed_readme_matches():
    "The committed README (not just the working copy, which the docs build rewrites) is up to date."
    git = shutil.which('git')
    if not git or not (ROOT / '.git').exists(): pytest.skip('not a git checkout')
    r = subprocess.run([git, 'show', 'HEAD:README.md'], cwd=ROOT, capture_output=True, text=True)
    if r.returncode: pytest.fail(f'README.md is not committed: {HINT}')
    assert r.stdout == make_readme.render(), f'the committed README.md differs from nbs/index.ipynb: {HINT}'


def test_top_holds_exactly_the_two_commands():
    text = README.read_text(encoding='utf-8')
    first_fence = re.search(r'^```[a-z]*\n(.*?)^```', text, flags=re.MULTILINE | re.DOTALL)
    assert first_fence, 'no code block in README.md'
    before = text[:first_fence.start()]
    assert '\n## ' not in before, 'the commands must come before any section'
    cmds = [l.strip() for l in first_fence.group(1).splitlines() if l.strip()]
    assert len(cmds) == 2, f'expected exactly two commands at the top, got {cmds}'
    assert 'lstm-pfd demo' in cmds[0], cmds[0]
    assert cmds[1] == 'bash .ci/run', cmds[1]



def test_in_ten_lines_is_ten_lines():
    "The code of the section 'In ten lines' is ten lines, blank ones included, as its heading promises."
    text = README.read_text(encoding='utf-8')
    head, sep, rest = text.partition('\n## In ten lines\n')
    assert sep, 'README.md has no section "## In ten lines"'
    section = rest.split('\n## ', 1)[0]
    block = re.search(r'^```python\n(.*?)^```', section, flags=re.MULTILINE | re.DOTALL)
    assert block, 'the section "In ten lines" holds no python code block'
    lines = block.group(1).splitlines()
    assert len(lines) == 10, f'"In ten lines" shows {len(lines)} lines: {lines}'


def test_generator_strips_directives_and_hidden_cells(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
    nb = new_notebook(cells=[new_markdown_cell('# T\n> the summary'),
                             new_code_cell('#| hide\nsecret = 1'),
                             new_code_cell('#| export\ndef f(): pass'),
                             new_code_cell('#| eval: false\nx = 2')])
    p = tmp_path / 'index.ipynb'
    nbformat.write(nb, p)
    out = make_readme.render(p)
    assert '# T\n\nthe summary' in out and '> the summary' not in out
    assert 'secret' not in out and 'def f' not in out and '#|' not in out
    assert '```python\nx = 2\n```' in out


def test_readme_shows_the_catalogue_figure():
    "The README shows figures as committed PNG files (GitHub renders no notebook outputs)."
    text = README.read_text(encoding='utf-8')
    imgs = re.findall(r'!\[[^\]]*\]\(([^)\s]+)\)', text)
    assert any('catalogue' in i for i in imgs), f'no catalogue figure in README.md: {imgs}'
    for rel in imgs:
        p = ROOT / rel
        assert p.exists(), f'README.md shows {rel}, which does not exist: run `python tools/make_readme.py --figures`'
        assert p.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n', f'{rel} is not a PNG file'
    marked = [p for p, _ in make_readme.figure_cells()]
    assert marked, 'nbs/index.ipynb marks no cell with `#| readme-image:`'
    assert all(p.relative_to(ROOT).as_posix() in imgs for p in marked), (marked, imgs)


def test_readme_image_cells(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
    nb = new_notebook(cells=[new_markdown_cell('# T\n> s'), new_markdown_cell('## The plot'),
                             new_code_cell('#| readme-image: images/p.png\nfrom matplotlib.figure import Figure\n'
                                           'fig = Figure(figsize=(2, 1))\nfig.subplots().plot([0, 1])\nfig')])
    p = tmp_path / 'index.ipynb'
    nbformat.write(nb, p)
    out = make_readme.render(p)
    assert f'![The plot]({(tmp_path / "images" / "p.png").as_posix()})' in out, out
    assert "Figure(" in out  # the code is shown, its output replaced by the image
    path, code = make_readme.figure_cells(p)[0]
    assert path == tmp_path / 'images' / 'p.png' and code.startswith('from matplotlib')
    assert make_readme.draw_figures(p) == [path]
    assert path.read_bytes()[:4] == b'\x89PNG'


def test_readme_relative_links_resolve():
    "On GitHub the README's relative links point into the repository: each must name a file there."
    text = README.read_text(encoding='utf-8')
    links = [u for u in re.findall(r'\]\(([^)\s]+)\)', text) if '://' not in u and not u.startswith(('#', 'mailto:'))]
    missing = [u for u in links if not (ROOT / u.split('#')[0]).exists()]
    assert not missing, f'README.md links to files that do not exist: {missing}'


def test_module_table_lists_every_library_notebook():
    "The README's module table is generated from the numbered notebooks: each one and its module appears."
    text = README.read_text(encoding='utf-8')
    nbs = sorted((ROOT / 'nbs').glob('[0-9]*.ipynb'))
    assert nbs
    for p in nbs:
        assert f'| `{p.stem}` |' in text, f'{p.name} is missing from the module table of README.md'
    for stem, _, _, mod in make_readme.library_notebooks():
        if mod: assert f'| `{stem}` | `lstm_pfd.{mod}` |' in text
    assert make_readme.MODULE_TABLE not in text
