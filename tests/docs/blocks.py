"""Code blocks of the Markdown docs: extraction and the no-test marker."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```(\w*)\s*$")
NO_TEST = re.compile(r"<!--\s*no-test:\s*(\S.*?)\s*-->")
MODEL_HINTS = ("sg.load(", "start_server(", "launch_server(", "structgen.load(", "Runtime(", "ChatStructgen(", "tiny_runtime(", "build_chain(")


@dataclass(frozen=True)
class Block:
    """One fenced block: its language, first code line (1-based), code, and opt-out reason if any."""

    path: Path
    lang: str
    line: int
    code: str
    no_test: str | None

    @property
    def needs_model(self) -> bool:
        return any(h in self.code for h in MODEL_HINTS) or self.code.lstrip().startswith("structgen generate")


def doc_files() -> list[Path]:
    """README.md and every docs/*.md."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """Fenced blocks of ``path`` in order; a ``<!-- no-test: reason -->`` line right before a fence opts it out."""
    out, lines, i = [], path.read_text().splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        prev = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        reason = NO_TEST.search(prev)
        out.append(Block(path, m.group(1), i + 2, "\n".join(lines[i + 1 : j]), reason.group(1) if reason else None))
        i = j + 1
    return out
