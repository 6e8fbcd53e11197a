"""Shared pytest fixtures and helpers.

Helpers (import them with `from conftest import ROOT, CHROMIUM, free_port`): the repository root, the
system chromium the browser tests drive through playwright, a free local TCP port.
Fixtures: `one_torch_thread` (small models and batches run fastest on one intra-op thread),
`browser` (a headless chromium page factory's browser; skips when chromium or playwright is missing).
"""
from __future__ import annotations

import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / 'tests' / '_artifacts'  # screenshots and other outputs of the tests (git-ignored)
CHROMIUM = Path('/usr/bin/chromium')      # Debian's chromium; playwright drives it (never `playwright install`)
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                 '--disable-component-update', '--no-first-run']
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason=f'no chromium at {CHROMIUM} (apt-get install chromium)')


def free_port() -> int:
    "A TCP port on 127.0.0.1 that was free a moment ago (bind may still race: retry on failure)."
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def one_torch_thread():
    "Small models and batches: one intra-op thread avoids oversubscription stalls when the CPU is busy."
    import torch
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope='module')
def browser():
    "A headless chromium (system binary) driven by playwright, for one test module."
    if not CHROMIUM.exists(): pytest.skip(f'no chromium at {CHROMIUM} (apt-get install chromium)')
    sync_api = pytest.importorskip('playwright.sync_api')
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()
