"""A user's own device: any two-terminal ``.subckt`` from their netlist file.

The file is checked before anything is simulated: it must exist, be text, define the
named subcircuit with exactly two ports, and hold only netlist lines — no ``.control``
blocks, ``.include``/``.lib`` of other files or analysis cards, since ngspice's control
language can run shell commands. Its subcircuit and model cards are then embedded in
the benches, which only drive and read the two terminals.
"""
from __future__ import annotations

import re
from pathlib import Path

from rramsim.circuits.render import check_identifier
from rramsim.circuits.testbenches import Device

#: Dot-cards a device file may hold (everything else is refused).
ALLOWED_CARDS = {".subckt", ".ends", ".model", ".param", ".func", ".global", ".end"}


class NetlistError(ValueError):
    """The user's netlist cannot be characterized; the message says why and what to do."""


def _logical_lines(text: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(";", 1)[0].rstrip() if not raw.lstrip().startswith("*") else ""
        if not line.strip():
            continue
        if line.lstrip().startswith("+") and out:
            out[-1] = (out[-1][0], out[-1][1] + " " + line.lstrip()[1:].strip())
        else:
            out.append((number, line.strip()))
    return out


def subckt_ports(text: str, name: str) -> list[str] | None:
    """Port names of subcircuit ``name`` in netlist ``text`` (None if it is not defined)."""
    for _, line in _logical_lines(text):
        tokens = line.split()
        if tokens[0].lower() == ".subckt" and len(tokens) > 1 and tokens[1].lower() == name.lower():
            ports = []
            for tok in tokens[2:]:
                if tok.lower().startswith("params:") or "=" in tok:
                    break
                ports.append(tok)
            return ports
    return None


def load_user_device(path: str | Path, subckt: str, cell: str = "1R") -> Device:
    """Check ``path`` and return the :class:`Device` that instantiates ``subckt`` from it."""
    path = Path(path)
    check_identifier(subckt, "--subckt")
    if not path.is_file():
        raise NetlistError(f"netlist file {path} does not exist (give the path to a file with your .subckt)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise NetlistError(f"{path} is not a text netlist (it is not UTF-8 text)") from None
    for number, line in _logical_lines(text):
        card = line.split()[0].lower()
        if card.startswith(".") and card not in ALLOWED_CARDS:
            raise NetlistError(f"{path}:{number}: '{card}' is not allowed in a device file; keep only the "
                               f"subcircuit and its {', '.join(sorted(ALLOWED_CARDS - {'.end'}))} cards "
                               "(rramsim writes the analyses itself)")
        if re.match(r"^(shell|exec|source|system)\b", line, re.IGNORECASE):
            raise NetlistError(f"{path}:{number}: control command {line.split()[0]!r} is not allowed")
    ports = subckt_ports(text, subckt)
    if ports is None:
        found = [ln.split()[1] for _, ln in _logical_lines(text) if ln.split()[0].lower() == ".subckt"
                 and len(ln.split()) > 1]
        raise NetlistError(f"{path} defines no subcircuit {subckt!r}"
                           + (f"; it defines {', '.join(found)}" if found else "; it defines none"))
    if len(ports) != 2:
        raise NetlistError(f"subcircuit {subckt} has {len(ports)} ports ({' '.join(ports) or 'none'}); "
                           "a device for rramsim must have exactly two (top electrode, bottom electrode)")
    definition = "\n".join(ln for _, ln in _logical_lines(text) if ln.split()[0].lower() != ".end")
    return Device(subckt, definition, (), cell)
