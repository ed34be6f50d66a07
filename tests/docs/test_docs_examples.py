"""Every ```python block of README.md and docs/*.md runs; so do the cheap ``structgen generate`` bash lines.

The python blocks of one page run in order in one namespace (later blocks use earlier names),
with the current directory at the repository root. ``structgen.load()`` and
``structgen.Runtime()`` without a model return one shared runtime of the embedded default model
(its ``shutdown`` is a no-op), so the pages load the model once. A page whose blocks load a
model is marked slow. A block opts out only with ``<!-- no-test: reason -->`` on the line
before its fence. Of bash blocks, only lines starting with ``structgen generate`` run (installs,
test runs and servers do not); each must exit 0 and print something.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import threading
import types

import pytest

from .blocks import ROOT, Block, blocks, doc_files

PAGE_TIMEOUT_S = 90
CLI_TIMEOUT_S = 300


def _page_params():
    params = []
    for path in doc_files():
        py = [b for b in blocks(path) if b.lang == "python"]
        if py:
            marks = [pytest.mark.slow] if any(b.needs_model and not b.no_test for b in py) else []
            params.append(pytest.param(path, py, id=str(path.relative_to(ROOT)), marks=marks))
    return params


def _cli_params():
    params = []
    for path in doc_files():
        for b in blocks(path):
            if b.lang not in ("bash", "sh", "console") or b.no_test:
                continue
            for k, line in enumerate(b.code.splitlines()):
                cmd = line.split(" #")[0].strip()
                if cmd.startswith("structgen generate"):
                    params.append(pytest.param(cmd, id=f"{path.name}:{b.line + k}", marks=[pytest.mark.slow]))
    return params


class _Shared:
    """A shared runtime whose ``shutdown`` (also through ``with``) leaves it running for the next page."""

    def __init__(self, runtime):
        self._rt = runtime

    def __getattr__(self, name):
        return getattr(self._rt, name)

    def shutdown(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


@pytest.fixture
def shared_default(monkeypatch):
    """Patch ``structgen.load`` / ``structgen.Runtime`` so model-less calls share one runtime."""
    import structgen
    from structgen.engine.runtime import Runtime
    from structgen.integrations import shared_runtime

    real_load = structgen.load

    def load(model_path=None, device="auto", dtype=None, **options):
        if model_path is None and dtype is None and not options:
            return _Shared(shared_runtime(None, device))
        return real_load(model_path, device=device, dtype=dtype, **options)

    def runtime(model_path=None, **options):
        if model_path is None and not options:
            return _Shared(shared_runtime(None))
        return Runtime(model_path, **options)

    monkeypatch.setattr(structgen, "load", load)
    monkeypatch.setattr(structgen, "Runtime", runtime)
    monkeypatch.chdir(ROOT)


def _run_page(py: list[Block], monkeypatch) -> None:
    module = types.ModuleType("__docs__")  # a real module, so pydantic can resolve the page's annotations
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    for b in py:
        if b.no_test:
            continue
        code = compile("\n" * (b.line - 1) + b.code, str(b.path), "exec")
        outcome: list[BaseException] = []

        def target():
            try:
                exec(code, namespace)  # noqa: S102 - running the docs' own examples is the point
            except BaseException as e:  # noqa: BLE001 - reported below
                outcome.append(e)

        t = threading.Thread(target=target, daemon=True)
        t.start()
        t.join(PAGE_TIMEOUT_S)
        if t.is_alive():
            pytest.fail(f"{b.path.name}:{b.line}: block did not finish in {PAGE_TIMEOUT_S} s "
                        "(add <!-- no-test: reason --> before blocks that start servers)")
        if outcome:
            raise AssertionError(f"{b.path.name}:{b.line}: block failed: {outcome[0]!r}") from outcome[0]


@pytest.mark.parametrize(("path", "py"), _page_params())
def test_python_blocks_run(path, py, shared_default, monkeypatch):
    _run_page(py, monkeypatch)


@pytest.mark.parametrize("cmd", _cli_params())
def test_cli_lines_run(cmd):
    argv = shlex.split(cmd)
    r = subprocess.run([sys.executable, "-m", "structgen.cli", *argv[1:]], cwd=ROOT, capture_output=True, text=True,
                       timeout=CLI_TIMEOUT_S)
    assert r.returncode == 0, f"{cmd!r} exited {r.returncode}:\n{r.stderr[-2000:]}"
    assert r.stdout.strip(), f"{cmd!r} printed nothing"


def test_no_test_markers_give_a_reason():
    for path in doc_files():
        text = path.read_text()
        assert "<!-- no-test -->" not in text and "<!-- no-test: -->" not in text, f"{path.name}: a no-test marker needs a reason"
