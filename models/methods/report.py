"""Markdown reports of the reproductions: the paper's numbers beside ours, with provenance."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field

import torch

__all__ = ["Report", "fmt_pct"]


def fmt_pct(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f}%"


@dataclass
class Report:
    """A reproduction report. ``rows`` are (quantity, paper, ours, note)."""

    title: str
    paper: str
    command: str = ""
    seed: int = 0
    table: str = ""
    small: bool = False
    started: float = field(default_factory=time.perf_counter)
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    sections: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    results: dict = field(default_factory=dict)
    runtime: float | None = None

    def row(self, quantity: str, paper: str, ours: str, note: str = "") -> None:
        self.rows.append((quantity, paper, ours, note))

    def section(self, heading: str, text: str) -> None:
        self.sections.append((heading, text))

    def finish(self) -> "Report":
        self.runtime = time.perf_counter() - self.started
        return self

    def markdown(self) -> str:
        runtime = self.runtime if self.runtime is not None else time.perf_counter() - self.started
        out = [
            f"# {self.title}",
            "",
            f"Paper: {self.paper}",
            "",
            "| | |",
            "|---|---|",
            f"| command | `{self.command or '(Python API)'}` |",
            f"| seed | {self.seed} |",
            f"| device table | {self.table} |",
            f"| size | {'small (CI)' if self.small else 'full'} |",
            f"| runtime | {runtime:.1f} s on {torch.get_num_threads()} torch thread(s), "
            f"{platform.machine()} ({platform.python_version()}, torch {torch.__version__}) |",
            "",
            "## Paper versus rramsim",
            "",
            "| quantity | paper | rramsim (ours) | note |",
            "|---|---|---|---|",
        ]
        out += [f"| {q} | {p} | {o} | {n} |" for q, p, o, n in self.rows]
        for heading, text in self.sections:
            out += ["", f"## {heading}", "", text.rstrip()]
        if self.notes:
            out += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        return "\n".join(out) + "\n"

    def write(self, path) -> None:
        from pathlib import Path

        p = Path(path)
        if p.parent and not p.parent.exists():
            raise ValueError(f"report folder {p.parent} does not exist; create it or choose another -o path")
        p.write_text(self.markdown())


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
