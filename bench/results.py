"""bench/RESULTS.md: each benchmark replaces (or appends) its own ``## title`` section,
atomically, leaving every other section as it was."""

from __future__ import annotations

import time
from pathlib import Path

from rramsim.cosim.files import atomic_write


def write_section(path: Path, title: str, lines: list[str], script: str) -> None:
    """Put ``lines`` (a code block) under ``## title`` in ``path``, stamped with ``script``
    and the time of measurement."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    body = (
        f"{title}\n\nMeasured by `{script}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}."
        "\n\n```\n" + "\n".join(lines) + "\n```\n"
    )
    head, *sections = text.split("\n## ")
    sections = [body if s.split("\n", 1)[0].strip() == title else s for s in sections]
    if body not in sections:
        sections.append(body)
    atomic_write(
        path, head.rstrip("\n") + "\n\n## " + "\n## ".join(s.rstrip("\n") + "\n" for s in sections).rstrip("\n") + "\n"
    )
