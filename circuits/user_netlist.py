"""A user's own device: a ``.subckt`` from their netlist file, in the dialect it was written.

The file is checked before anything is simulated: it must exist, be text, define the
named subcircuit, and hold only netlist lines — no ``.control`` blocks, ``.include``/
``.lib`` of other files or analysis cards, since ngspice's control language can run
shell commands. Files written for LTspice, PSpice or HSPICE are run through ngspice's
compatibility mode and what it does not cover is translated
(:mod:`rramsim.circuits.dialects`). The subcircuit and model cards are then embedded in
the benches, which only drive and read two terminals.

Ports: a device has two terminals (top electrode first: positive pulses drive it
against the bottom). A subcircuit with more ports — typically a third ``XSV`` port that
only exposes the state variable for plotting — is used through ``ports=(A, B)``: a
two-terminal wrapper connects A and B and leaves every other port open through a 1 TΩ
resistance to ground (so no node floats; 1 pA at 1 V, a time constant of 1e12 s on a 1 F
state capacitor).

Initial states: ``.ic V(node)=...`` inside the subcircuit and ``IC=`` on its elements are
honoured — every bench starts its transient with ``uic``, so the device starts from them.

Variability: ``vary`` names subcircuit parameters (``.subckt`` line, ``params:`` or a
``.param``/``.params`` line) that the benches may set per cell; each needs a numeric
default (its nominal value). A varied ``.param`` is moved to the ``.subckt`` line so that
an instance value overrides it and every expression computed from it.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rramsim.circuits.dialects import DIALECTS, NetlistError, detect, spice_value, split_assignments, translate
from rramsim.circuits.render import check_identifier, number
from rramsim.circuits.testbenches import Device

__all__ = ["ALLOWED_CARDS", "NetlistError", "UserDevice", "load_user_device", "load_user_netlist", "subckt_ports"]

#: Dot-cards a device file may hold (everything else is refused).
ALLOWED_CARDS = {".subckt", ".ends", ".model", ".param", ".params", ".func", ".global", ".ic", ".end",
                 ".backanno"}

#: Resistance that leaves an unused port open (ohm).
R_OPEN = 1e12


def _logical_lines(text: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for number_, raw in enumerate(text.splitlines(), 1):
        line = raw.split(";", 1)[0].rstrip() if not raw.lstrip().startswith("*") else ""
        if not line.strip():
            continue
        if line.lstrip().startswith("+") and out:
            out[-1] = (out[-1][0], out[-1][1] + " " + line.lstrip()[1:].strip())
        else:
            out.append((number_, line.strip()))
    return out


def _subckt_header(line: str) -> tuple[str, list[str], str] | None:
    """(name, ports, parameter text) of a ``.subckt`` line."""
    tokens = line.split()
    if len(tokens) < 2 or tokens[0].lower() != ".subckt":
        return None
    ports, rest = [], []
    for i, tok in enumerate(tokens[2:], 2):
        if tok.lower().startswith("params:") or "=" in tok or (i + 1 < len(tokens) and tokens[i + 1].startswith("=")):
            rest = tokens[i:]
            break
        ports.append(tok)
    params = re.sub(r"^params:\s*", "", " ".join(rest), flags=re.IGNORECASE)
    return tokens[1], ports, params


def subckt_ports(text: str, name: str) -> list[str] | None:
    """Port names of subcircuit ``name`` in netlist ``text`` (None if it is not defined)."""
    for _, line in _logical_lines(text):
        head = _subckt_header(line)
        if head and head[0].lower() == name.lower():
            return head[1]
    return None


@dataclass
class UserDevice:
    """A checked, translated device file: the bench :class:`Device` and what was done."""

    device: Device
    dialect: str
    detected_by: list[str]
    ports: list[str]                    # all ports of the subcircuit, in order
    terminals: tuple[str, str]          # the two driven ports
    nominal: dict[str, float]           # varied parameter -> its nominal (default) value
    c2c: dict[str, float] = field(default_factory=dict)   # cycle-to-cycle parameter -> sigma of ln
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def record(self) -> dict:
        """What the table's model record keeps about the file's handling."""
        return {"dialect": self.dialect, "ports": " ".join(self.ports),
                "terminals": " ".join(self.terminals), "translation": "; ".join(self.notes) or "none"}


def _check_cards(lines: list[tuple[int, str]], path: Path) -> None:
    depth = 0
    refused, level, control = [], 0, False
    for n, ln in lines:
        card = ln.split()[0].lower()
        level += (card == ".subckt") - (card == ".ends")
        if card == ".endc" and control:           # the end of a refused .control block
            control = False
            continue
        control = control or card == ".control"
        if card.startswith(".") and card not in ALLOWED_CARDS:
            refused.append((n, f"'{card}'"))
        elif not card.startswith(".") and level == 0 and not control and card != "simulator":
            refused.append((n, f"the element '{ln.split()[0]}' outside the subcircuit"))
    if refused:                       # all of them at once, so that one edit of the file fixes them
        one = len(refused) == 1
        where = refused[0][1] if one else (", ".join(f"{what} (line {n})" for n, what in refused[:8])
                                           + (", ..." if len(refused) > 8 else ""))
        raise NetlistError(f"{path}:{refused[0][0]}: {where} {'is' if one else 'are'} not allowed in a device file; "
                           f"keep only the subcircuit and its "
                           f"{', '.join(sorted(ALLOWED_CARDS - {'.end', '.backanno'}))} cards "
                           "(rramsim writes the test circuit and the analyses itself)")
    for number_, line in lines:
        card = line.split()[0].lower()
        if card == ".subckt":
            depth += 1
        elif card == ".ends":
            depth -= 1
        if card in (".ic",) and depth == 0:
            raise NetlistError(f"{path}:{number_}: '.ic' outside the subcircuit names nodes of a circuit rramsim "
                               "builds itself; move it inside the .subckt (it then sets that device's initial state)")
        if re.match(r"^(shell|exec|source|system)\b", line, re.IGNORECASE):
            raise NetlistError(f"{path}:{number_}: control command {line.split()[0]!r} is not allowed")


def _parameters(lines: list[tuple[int, str]], start: int, end: int) -> dict[str, tuple[str, str, int]]:
    """Parameters of the subcircuit spanning ``lines[start:end+1]``: lower-case name ->
    (name, default text, index of the defining line); the ``.subckt`` line's come first,
    a later ``.param`` of the same name wins (as in SPICE)."""
    out: dict[str, tuple[str, str, int]] = {}
    head = _subckt_header(lines[start][1])
    for key, value in split_assignments(head[2] if head else ""):
        out[key.lower()] = (key, value, start)
    depth = 0
    for i in range(start + 1, end):
        tokens = lines[i][1].split(None, 1)
        card = tokens[0].lower()
        depth += card == ".subckt"
        depth -= card == ".ends"
        if depth == 0 and card in (".param", ".params") and len(tokens) > 1:
            for key, value in split_assignments(tokens[1]):
                if re.fullmatch(r"\w+", key):
                    out[key.lower()] = (key, value, i)
    return out


def _subckt_span(lines: list[tuple[int, str]], name: str) -> tuple[int, int] | None:
    for i, (_, line) in enumerate(lines):
        head = _subckt_header(line)
        if head and head[0].lower() == name.lower():
            depth = 0
            for j in range(i, len(lines)):
                card = lines[j][1].split()[0].lower()
                depth += card == ".subckt"
                depth -= card == ".ends"
                if depth == 0:
                    return i, j
            return i, len(lines) - 1
    return None


def load_user_netlist(path: str | Path, subckt: str, cell: str = "1R", dialect: str = "auto",
                      ports: Sequence[str] | None = None, vary: Iterable[str] = (),
                      c2c: Mapping[str, float] | None = None) -> UserDevice:
    """Check, translate and wrap subcircuit ``subckt`` of ``path`` (see the module doc).

    ``c2c`` maps parameters to the sigma of a cycle-to-cycle log-normal factor (see
    :func:`_cycle_to_cycle`)."""
    path = Path(path)
    check_identifier(subckt, "--subckt")
    if dialect not in DIALECTS:
        raise NetlistError(f"unknown dialect {dialect!r}; choose from {', '.join(DIALECTS)}")
    if not path.is_file():
        raise NetlistError(f"netlist file {path} does not exist (give the path to a file with your .subckt)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise NetlistError(f"{path} is not a text netlist (it is not UTF-8 text)") from None
    lines = [(n, ln) for n, ln in _logical_lines(text) if ln.split()[0].lower() != ".end"]
    title = lines[0][1] if (lines and lines[0][0] == 1 and not lines[0][1].startswith(".")
                            and not re.match(r"simulator\s+lang", lines[0][1], re.IGNORECASE)) else ""
    if title:                         # a whole deck's first line is its title, not a card
        lines = lines[1:]
    _check_cards(lines, path)
    span = _subckt_span(lines, subckt)
    if span is None:
        found = [h[0] for _, ln in lines if (h := _subckt_header(ln))]
        raise NetlistError(f"{path} defines no subcircuit {subckt!r}"
                           + (f"; it defines {', '.join(found)}" if found else "; it defines none"))
    name, all_ports, _ = _subckt_header(lines[span[0]][1])
    terminals = _terminals(all_ports, ports, subckt)

    why = [f"given as --dialect {dialect}"]
    if dialect == "auto":
        dialect, why = detect(lines, text, path)
    tr = translate(lines, dialect, path)
    if title:
        tr.notes.insert(0, f"line 1 read as the file's title: {title[:60]!r}")
    lines = tr.lines
    span = _subckt_span(lines, subckt)
    params = _parameters(lines, *span)

    nominal: dict[str, float] = {}
    moved: list[str] = []
    for want in vary:
        key = want.lower()
        if key not in params:
            raise NetlistError(f"--vary {want}: subcircuit {name} has no parameter {want!r}"
                               + (f"; its parameters: {', '.join(p[0] for p in params.values())}" if params
                                  else "; it declares none (.param/.params or params: on the .subckt line)"))
        pname, default, where = params[key]
        value = spice_value(default)
        if value is None:
            raise NetlistError(f"{path}:{lines[where][0]}: --vary {pname}: its default {default!r} is an "
                               "expression, not a number; vary the parameters it is computed from")
        if value == 0:
            raise NetlistError(f"{path}:{lines[where][0]}: --vary {pname}: its nominal value is 0, which a "
                               "log-normal spread cannot change")
        nominal[pname] = value
        if where != span[0]:
            moved.append(pname)
            num, line = lines[where]
            card, rest = line.split(None, 1)
            keep = [f"{k}={v}" for k, v in split_assignments(rest) if k.lower() != key]
            lines[where] = (num, f"{card} {' '.join(keep)}" if keep else "* (moved to the .subckt line)")
    if moved:
        num, line = lines[span[0]]
        sep = "" if re.search(r"\bparams:", line, re.IGNORECASE) or _subckt_header(line)[2] else " params:"
        lines[span[0]] = (num, line + sep + " " + " ".join(f"{p}={number(nominal[p], p)}" for p in moved))
        tr.notes.append(f"varied .param(s) {', '.join(moved)} moved to the .subckt line")
    inner_ports = list(all_ports)
    if c2c:
        lines, c2c = _cycle_to_cycle(lines, span, params, dict(c2c), path, name)
        inner_ports.append(C2C_PORT)
        tr.notes.append("cycle-to-cycle factor exp(sigma*z) on " + ", ".join(f"{k} (sigma {v:g})" for k, v in c2c.items())
                        + f", z the bench's per-period draw on the added port {C2C_PORT}")
    tr.lines = lines
    definition = tr.definition()
    dev_name, varied = name, tuple(nominal)
    if list(terminals) != all_ports[:2] or len(all_ports) != 2 or c2c:
        dev_name, wrapper = _wrapper(name, inner_ports, terminals, nominal, bool(c2c))
        definition += "\n" + wrapper
        if list(terminals) != all_ports[:2] or len(all_ports) != 2:
            tr.notes.append(f"ports {' '.join(all_ports)}: {terminals[0]}, {terminals[1]} driven"
                            + (f", {', '.join(p for p in all_ports if p not in terminals)} open through "
                               f"{R_OPEN:.0e} ohm" if len(all_ports) > 2 else ""))
    shown = path.name if re.fullmatch(r"[\w.+-]{1,128}", path.name) else "(device file)"
    record = [f"* rramsim: subcircuit {name} of {shown}, dialect {dialect} ({'; '.join(why)})"]
    record += [f"* rramsim translated: {note}" for note in tr.notes if "\n" not in note]
    definition = "\n".join(record) + "\n" + definition
    device = Device(check_identifier(dev_name, "subcircuit name"), definition, varied, cell, controls=bool(c2c))
    return UserDevice(device, dialect, why, all_ports, terminals, nominal, dict(c2c or {}), dict(tr.ranges),
                      tr.notes)


#: Port added to a subcircuit whose parameters vary from cycle to cycle: the bench drives
#: it with a fresh unit Gaussian every pulse period (the built-in model's c2c port).
C2C_PORT = "rr_c2c"


def _cycle_to_cycle(lines: list[tuple[int, str]], span: tuple[int, int], params: dict, c2c: dict[str, float],
                    path: Path, name: str) -> tuple[list[tuple[int, str]], dict[str, float]]:
    """Make parameters vary from one pulse period to the next.

    A SPICE parameter is a constant of the whole transient, so the factor cannot act on
    the parameter itself: every use of it in a behavioural expression (B/E/G sources,
    ``.func`` bodies) becomes ``(NAME*exp(sigma*V(rr_c2c)))``, with ``rr_c2c`` a port added
    to the subcircuit and driven by the bench with a fresh seeded unit Gaussian each
    period (clamped to ±5 sigma). Uses the transient cannot follow are refused: a derived
    ``.param`` (computed once), the value of an R/C/L element. ``.ic``/``IC=`` uses keep the
    nominal value (they act only at t = 0).
    """
    lines = list(lines)
    start, end = span
    named = {}
    for want, sigma in c2c.items():
        key = want.lower()
        if key not in params:
            raise NetlistError(f"--c2c-vary {want}: subcircuit {name} has no parameter {want!r}; its parameters: "
                               + (", ".join(p[0] for p in params.values()) or "(none)"))
        if not (isinstance(sigma, (int, float)) and sigma > 0 and sigma == sigma and sigma < 10):
            raise NetlistError(f"--c2c-vary {want}: the spread must be a sigma in (0, 10), got {sigma!r}")
        pname, _, where = params[key]
        named[pname] = float(sigma)
        word = re.compile(rf"(?<![\w.]){re.escape(pname)}(?![\w(])", re.IGNORECASE)
        factor = f"({pname}*exp(max(min({number(sigma, pname)}*V({C2C_PORT}), 5), -5)))"
        dynamic = 0
        for i in range(start + 1, end):
            num, line = lines[i]
            card = line.split()[0].lower()
            if i == where or not word.search(line):
                continue
            if card in (".param", ".params"):
                users = [k for k, v in split_assignments(line.split(None, 1)[1]) if word.search(v)]
                raise NetlistError(f"{path}:{num}: --c2c-vary {pname}: it enters the derived parameter(s) "
                                   f"{', '.join(users)}, computed once before the transient; vary a parameter "
                                   "used directly in a source expression")
            if card == ".ic" or re.search(r"\bic\s*=", line, re.IGNORECASE) and card[0] in "cl":
                continue
            if card == ".func":       # an argument named V or I would swallow the V(node) inserted below
                m = re.match(r"^\.func\s+\w+\s*\(([^)]*)\)", line, re.IGNORECASE)
                for arg in (a.strip() for a in (m.group(1).split(",") if m else [])):
                    if arg.lower() in ("v", "i"):
                        line = re.sub(rf"(?<![\w.]){arg}(?![\w(])", f"rr_arg_{arg}", line)
            if card == ".func" or card[0] in "beg":
                head, _, expr = (line.partition(")") if card == ".func" else line.partition("="))
                lines[i] = (num, head + (")" if card == ".func" else "=") + word.sub(factor, expr))
                dynamic += 1
                continue
            raise NetlistError(f"{path}:{num}: --c2c-vary {pname}: it sets the value of element "
                               f"{line.split()[0]}, which stays fixed during a transient; only parameters of "
                               "behavioural expressions (B/E/G sources, .func) can vary from cycle to cycle")
        if not dynamic:
            raise NetlistError(f"--c2c-vary {pname}: no source expression of subcircuit {name} uses it, so a "
                               "per-cycle factor would change nothing")
    num, header = lines[start]
    head = _subckt_header(header)
    tokens = header.split()
    at = 2 + len(head[1])
    lines[start] = (num, " ".join(tokens[:at] + [C2C_PORT] + tokens[at:]))
    return lines, named


def load_user_device(path: str | Path, subckt: str, cell: str = "1R", dialect: str = "auto",
                     ports: Sequence[str] | None = None, vary: Iterable[str] = ()) -> Device:
    """Check ``path`` and return the :class:`Device` that instantiates ``subckt`` from it."""
    return load_user_netlist(path, subckt, cell, dialect, ports, vary).device


def _terminals(all_ports: list[str], ports: Sequence[str] | None, subckt: str) -> tuple[str, str]:
    if ports is None:
        if len(all_ports) == 2:
            return all_ports[0], all_ports[1]
        raise NetlistError(f"subcircuit {subckt} has {len(all_ports)} ports ({' '.join(all_ports) or 'none'}); "
                           "a device for rramsim has two terminals: pick them with --ports A,B (top electrode "
                           "first; the other ports are left open)" if len(all_ports) > 2 else
                           f"subcircuit {subckt} has {len(all_ports)} ports ({' '.join(all_ports) or 'none'}); "
                           "a device for rramsim must have two (top electrode, bottom electrode)")
    ports = [p.strip() for p in ports]
    if len(ports) != 2 or ports[0].lower() == ports[1].lower():
        raise NetlistError(f"--ports takes two different port names A,B, got {','.join(ports)!r}")
    lower = [p.lower() for p in all_ports]
    for p in ports:
        if p.lower() not in lower:
            raise NetlistError(f"--ports: subcircuit {subckt} has no port {p!r}; its ports: {' '.join(all_ports)}")
    return tuple(all_ports[lower.index(p.lower())] for p in ports)


def _wrapper(name: str, all_ports: list[str], terminals: tuple[str, str], nominal: dict[str, float],
             controls: bool = False) -> tuple[str, str]:
    """A two-terminal subcircuit around ``name``: terminals driven, other ports open
    (with ``controls``: the bench's c2c and noise ports too, c2c passed on to the device)."""
    wname = f"{name[:56]}_2t" if re.fullmatch(r"[A-Za-z]\w*", name) else "userdev_2t"
    nodes, opens = [], []
    for i, port in enumerate(all_ports):
        if port == terminals[0]:
            nodes.append("te")
        elif port == terminals[1]:
            nodes.append("be")
        elif controls and port == C2C_PORT:
            nodes.append("c")
        else:
            nodes.append(f"open{i}")
            opens.append(f"Ropen{i} open{i} 0 {number(R_OPEN, 'R_OPEN')}")
    params = " ".join(f"{p}={number(v, p)}" for p, v in nominal.items())
    passed = " ".join(f"{p}={{{p}}}" for p in nominal)
    lines = [f".subckt {wname} te be{' c n' if controls else ''}" + (f" params: {params}" if params else ""),
             f"X0 {' '.join(nodes)} {name}" + (f" {passed}" if passed else ""), *opens, f".ends {wname}"]
    return wname, "\n".join(lines)


# ---------------------------------------------------------------------------- Verilog-A modules
def va_parameter_defaults(source: str, module: str) -> dict[str, tuple[str, str]]:
    """``parameter`` declarations of ``module`` in Verilog-A ``source``: lower-case name ->
    (name, default text)."""
    m = re.search(rf"\bmodule\s+{re.escape(module)}\b(.*?)\bendmodule\b", source, re.DOTALL)
    body = re.sub(r"//[^\n]*|/\*.*?\*/|\(\*.*?\*\)", " ", m.group(1) if m else "", flags=re.DOTALL)
    out = {}
    for stmt in re.findall(r"\bparameter\b([^;]*);", body):
        stmt = re.sub(r"^\s*(real|integer)\b", "", stmt)
        for part in re.split(r",(?![^\[(]*[\])])", stmt):
            d = re.match(r"\s*(\w+)\s*=\s*(.+?)(?:\s+(?:from|exclude)\b.*)?\s*$", part, re.DOTALL)
            if d:
                out[d.group(1).lower()] = (d.group(1), d.group(2).strip())
    return out


def vary_module_parameters(device: Device, source: str, module: str, names: Iterable[str],
                           path: str | Path = "module") -> tuple[Device, dict[str, float]]:
    """The Verilog-A ``device`` with module parameters ``names`` settable per cell.

    The wrapper subcircuit gets ``params: NAME=default`` and its ``.model`` card
    ``NAME={NAME}`` (ngspice makes one model per instance), so the benches set each cell's
    value on its instance line. Each parameter needs a numeric default (its nominal)."""
    declared = va_parameter_defaults(source, module)
    nominal: dict[str, float] = {}
    for want in names:
        if want.lower() not in declared:
            raise NetlistError(f"--vary {want}: module {module} of {path} has no parameter {want!r}"
                               + (f"; its parameters: {', '.join(d[0] for d in declared.values())}" if declared
                                  else ""))
        pname, default = declared[want.lower()]
        value = spice_value(default)
        if value is None or value == 0:
            raise NetlistError(f"--vary {pname}: its default {default!r} in {path} is not a non-zero number; vary "
                               "the parameters it is computed from")
        nominal[pname] = value
    lines = device.definition.splitlines()
    sub = next(i for i, ln in enumerate(lines) if ln.lower().startswith(".subckt "))
    mod = next(i for i, ln in enumerate(lines) if ln.lower().startswith(".model "))
    lines[sub] += " params: " + " ".join(f"{p}={number(v, p)}" for p, v in nominal.items())
    lines[mod] += " " + " ".join(f"{p}={{{p}}}" for p in nominal)
    import dataclasses
    return dataclasses.replace(device, definition="\n".join(lines), params=tuple(nominal)), nominal
