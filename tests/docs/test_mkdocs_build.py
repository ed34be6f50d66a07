"""``mkdocs build --strict`` succeeds: every nav page exists and no link is broken."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from .blocks import ROOT


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").is_file()
    shutil.rmtree(tmp_path / "site", ignore_errors=True)
