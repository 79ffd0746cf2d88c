"""A user's own device: a ``.subckt`` from their netlist file, in the dialect it was written.

The file is checked before anything is simulated: it must exist, be text, define the
named subcircuit, and hold only netlist lines — no ``.control`` blocks or analysis cards,
since ngspice's control language can run shell commands. ``.include FILE`` and ``.lib FILE
SECTION`` are read by rramsim itself, only by a path relative to the file (an absolute
path or shell characters are refused), and what they hold is checked like the file.
Files written for LTspice, PSpice or HSPICE are run through ngspice's compatibility mode
and what it does not cover is translated (:mod:`rramsim.circuits.dialects`). The
subcircuit and model cards are then embedded in the benches, which only drive and read
two terminals.

Whole decks: models are often published as a complete ngspice deck — the subcircuit, the
top-level ``.param`` lines it depends on, an instance, sources, analyses and a ``.control``
block that runs and plots them. Such a file is used as it is: rramsim keeps the named
subcircuit (or the file's only one), the subcircuits it instantiates and the top-level
``.param``/``.func``/``.model``/``.global`` definitions they use, and leaves everything
else out, listing each ignored line by number and kind (:func:`extract_device`). The
rule that a device file never runs commands in rramsim's ngspice session still holds
because nothing of the deck is executed: the ``.control`` block, analyses, sources and
instances never reach ngspice; what is kept is definitions only, and it passes the same
checks as a device file. A parameter the subcircuit needs but the deck only set from its
control block (or never) is named with its line.

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

__all__ = [
    "ALLOWED_CARDS",
    "NetlistError",
    "UserDevice",
    "extract_device",
    "is_deck",
    "load_user_device",
    "load_user_netlist",
    "subckt_ports",
]

#: Dot-cards a device file may hold (everything else is refused).
ALLOWED_CARDS = {".subckt", ".ends", ".model", ".param", ".params", ".func", ".global", ".ic", ".end", ".backanno"}

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
    ports: list[str]  # all ports of the subcircuit, in order
    terminals: tuple[str, str]  # the two driven ports
    nominal: dict[str, float]  # varied parameter -> its nominal (default) value
    c2c: dict[str, float] = field(default_factory=dict)  # cycle-to-cycle parameter -> sigma of ln
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    name: str = ""  # the subcircuit used
    ignored: list[tuple[str, str]] = field(default_factory=list)  # a whole deck's lines left out: (where, what)
    kept: list[str] = field(default_factory=list)  # a whole deck's top-level definitions kept

    def record(self) -> dict:
        """What the table's model record keeps about the file's handling."""
        return {
            "dialect": self.dialect,
            "ports": " ".join(self.ports),
            "terminals": " ".join(self.terminals),
            "translation": "; ".join(self.notes) or "none",
        }

    def deck_report(self, path: str | Path) -> str:
        """For a whole deck: what was used and every line left out ('' for a device file)."""
        if not self.ignored:
            return ""
        head = (
            f"{path} is a whole deck: only subcircuit {self.name}"
            + (f" and {', '.join(self.kept)}" if self.kept else "")
            + " go to ngspice; ignored, never sent to ngspice:"
        )
        return "\n".join([head] + [f"  {where}: {what}" for where, what in self.ignored])


def _check_cards(lines: list[tuple[int, str]], path: Path) -> None:
    depth = 0
    refused, level, control = [], 0, False
    for n, ln in lines:
        card = ln.split()[0].lower()
        level += (card == ".subckt") - (card == ".ends")
        if card == ".endc" and control:  # the end of a refused .control block
            control = False
            continue
        control = control or card == ".control"
        if card.startswith(".") and card not in ALLOWED_CARDS:
            refused.append((n, f"'{card}'"))
        elif not card.startswith(".") and level == 0 and not control and card != "simulator":
            refused.append((n, f"the element '{ln.split()[0]}' outside the subcircuit"))
    if refused:  # all of them at once, so that one edit of the file fixes them
        one = len(refused) == 1
        where = (
            refused[0][1]
            if one
            else (", ".join(f"{what} (line {n})" for n, what in refused[:8]) + (", ..." if len(refused) > 8 else ""))
        )
        raise NetlistError(
            f"{path}:{refused[0][0]}: {where} {'is' if one else 'are'} not allowed in a device file; "
            f"keep only the subcircuit and its "
            f"{', '.join(sorted(ALLOWED_CARDS - {'.end', '.backanno'}))} cards "
            "(rramsim writes the test circuit and the analyses itself)"
        )
    for number_, line in lines:
        card = line.split()[0].lower()
        if card == ".subckt":
            depth += 1
        elif card == ".ends":
            depth -= 1
        if card in (".ic",) and depth == 0:
            raise NetlistError(
                f"{path}:{number_}: '.ic' outside the subcircuit names nodes of a circuit rramsim "
                "builds itself; move it inside the .subckt (it then sets that device's initial state)"
            )
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


def load_user_netlist(
    path: str | Path,
    subckt: str | None,
    cell: str = "1R",
    dialect: str = "auto",
    ports: Sequence[str] | None = None,
    vary: Iterable[str] = (),
    c2c: Mapping[str, float] | None = None,
) -> UserDevice:
    """Check, translate and wrap subcircuit ``subckt`` of ``path`` (see the module doc).

    ``c2c`` maps parameters to the sigma of a cycle-to-cycle log-normal factor (see
    :func:`_cycle_to_cycle`). ``subckt`` None: the file's only subcircuit."""
    path = Path(path)
    if subckt is not None:
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
    title = (
        lines[0][1]
        if (
            lines
            and lines[0][0] == 1
            and not lines[0][1].startswith(".")
            and not re.match(r"simulator\s+lang", lines[0][1], re.IGNORECASE)
        )
        else ""
    )
    if title:  # a whole deck's first line is its title, not a card
        lines = lines[1:]
    lines = _expand_includes(lines, path)
    subckt = subckt if subckt is not None else only_subckt(lines, path)
    deck = extract_device(lines, subckt, path) if is_deck(lines) else None
    if deck:
        lines = deck.lines
    _check_cards(lines, path)
    span = _subckt_span(lines, subckt)
    if span is None:
        found = [h[0] for _, ln in lines if (h := _subckt_header(ln))]
        raise NetlistError(
            f"{path} defines no subcircuit {subckt!r}"
            + (f"; it defines {', '.join(found)}" if found else "; it defines none")
        )
    name, all_ports, _ = _subckt_header(lines[span[0]][1])
    terminals = _terminals(all_ports, ports, subckt)

    why = [f"given as --dialect {dialect}"]
    if dialect == "auto":
        dialect, why = detect(lines, text, path)
    tr = translate(lines, dialect, path)
    if title:
        tr.notes.insert(0, f"line 1 read as the file's title: {title[:60]!r}")
    if deck and deck.ignored:
        tr.notes.insert(
            1 if title else 0,
            f"whole deck: subcircuit {name}"
            + (f" with {', '.join(deck.kept)}" if deck.kept else "")
            + "; ignored "
            + ", ".join(f"{what} ({where})" for where, what in deck.ignored),
        )
    lines = tr.lines
    span = _subckt_span(lines, subckt)
    params = _parameters(lines, *span)

    nominal: dict[str, float] = {}
    moved: list[str] = []
    for want in vary:
        key = want.lower()
        if key not in params:
            raise NetlistError(
                f"--vary {want}: subcircuit {name} has no parameter {want!r}"
                + (
                    f"; its parameters: {', '.join(p[0] for p in params.values())}"
                    if params
                    else "; it declares none (.param/.params or params: on the .subckt line)"
                )
            )
        pname, default, where = params[key]
        value = spice_value(default)
        if value is None:
            raise NetlistError(
                f"{path}:{lines[where][0]}: --vary {pname}: its default {default!r} is an "
                "expression, not a number; vary the parameters it is computed from"
            )
        if value == 0:
            raise NetlistError(
                f"{path}:{lines[where][0]}: --vary {pname}: its nominal value is 0, which a "
                "log-normal spread cannot change"
            )
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
        tr.notes.append(
            "cycle-to-cycle factor exp(sigma*z) on "
            + ", ".join(f"{k} (sigma {v:g})" for k, v in c2c.items())
            + f", z the bench's per-period draw on the added port {C2C_PORT}"
        )
    tr.lines = lines
    definition = tr.definition()
    dev_name, varied = name, tuple(nominal)
    if list(terminals) != all_ports[:2] or len(all_ports) != 2 or c2c:
        dev_name, wrapper = _wrapper(name, inner_ports, terminals, nominal, bool(c2c))
        definition += "\n" + wrapper
        if list(terminals) != all_ports[:2] or len(all_ports) != 2:
            tr.notes.append(
                f"ports {' '.join(all_ports)}: {terminals[0]}, {terminals[1]} driven"
                + (
                    f", {', '.join(p for p in all_ports if p not in terminals)} open through {R_OPEN:.0e} ohm"
                    if len(all_ports) > 2
                    else ""
                )
            )
    shown = path.name if re.fullmatch(r"[\w.+-]{1,128}", path.name) else "(device file)"
    record = [f"* rramsim: subcircuit {name} of {shown}, dialect {dialect} ({'; '.join(why)})"]
    record += [f"* rramsim translated: {note}" for note in tr.notes if "\n" not in note]
    definition = "\n".join(record) + "\n" + definition
    device = Device(check_identifier(dev_name, "subcircuit name"), definition, varied, cell, controls=bool(c2c))
    return UserDevice(
        device,
        dialect,
        why,
        all_ports,
        terminals,
        nominal,
        dict(c2c or {}),
        dict(tr.ranges),
        tr.notes,
        name,
        deck.ignored if deck else [],
        deck.kept if deck else [],
    )


#: Port added to a subcircuit whose parameters vary from cycle to cycle: the bench drives
#: it with a fresh unit Gaussian every pulse period (the built-in model's c2c port).
C2C_PORT = "rr_c2c"


def _cycle_to_cycle(
    lines: list[tuple[int, str]], span: tuple[int, int], params: dict, c2c: dict[str, float], path: Path, name: str
) -> tuple[list[tuple[int, str]], dict[str, float]]:
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
            raise NetlistError(
                f"--c2c-vary {want}: subcircuit {name} has no parameter {want!r}; its parameters: "
                + (", ".join(p[0] for p in params.values()) or "(none)")
            )
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
                raise NetlistError(
                    f"{path}:{num}: --c2c-vary {pname}: it enters the derived parameter(s) "
                    f"{', '.join(users)}, computed once before the transient; vary a parameter "
                    "used directly in a source expression"
                )
            if card == ".ic" or re.search(r"\bic\s*=", line, re.IGNORECASE) and card[0] in "cl":
                continue
            if card == ".func":  # an argument named V or I would swallow the V(node) inserted below
                m = re.match(r"^\.func\s+\w+\s*\(([^)]*)\)", line, re.IGNORECASE)
                for arg in (a.strip() for a in (m.group(1).split(",") if m else [])):
                    if arg.lower() in ("v", "i"):
                        line = re.sub(rf"(?<![\w.]){arg}(?![\w(])", f"rr_arg_{arg}", line)
            if card == ".func" or card[0] in "beg":
                head, _, expr = line.partition(")") if card == ".func" else line.partition("=")
                lines[i] = (num, head + (")" if card == ".func" else "=") + word.sub(factor, expr))
                dynamic += 1
                continue
            raise NetlistError(
                f"{path}:{num}: --c2c-vary {pname}: it sets the value of element "
                f"{line.split()[0]}, which stays fixed during a transient; only parameters of "
                "behavioural expressions (B/E/G sources, .func) can vary from cycle to cycle"
            )
        if not dynamic:
            raise NetlistError(
                f"--c2c-vary {pname}: no source expression of subcircuit {name} uses it, so a "
                "per-cycle factor would change nothing"
            )
    num, header = lines[start]
    head = _subckt_header(header)
    tokens = header.split()
    at = 2 + len(head[1])
    lines[start] = (num, " ".join(tokens[:at] + [C2C_PORT] + tokens[at:]))
    return lines, named


def load_user_device(
    path: str | Path,
    subckt: str,
    cell: str = "1R",
    dialect: str = "auto",
    ports: Sequence[str] | None = None,
    vary: Iterable[str] = (),
) -> Device:
    """Check ``path`` and return the :class:`Device` that instantiates ``subckt`` from it."""
    return load_user_netlist(path, subckt, cell, dialect, ports, vary).device


def _terminals(all_ports: list[str], ports: Sequence[str] | None, subckt: str) -> tuple[str, str]:
    if ports is None:
        if len(all_ports) == 2:
            return all_ports[0], all_ports[1]
        raise NetlistError(
            f"subcircuit {subckt} has {len(all_ports)} ports ({' '.join(all_ports) or 'none'}); "
            "a device for rramsim has two terminals: pick them with --ports A,B (top electrode "
            "first; the other ports are left open)"
            if len(all_ports) > 2
            else f"subcircuit {subckt} has {len(all_ports)} ports ({' '.join(all_ports) or 'none'}); "
            "a device for rramsim must have two (top electrode, bottom electrode)"
        )
    ports = [p.strip() for p in ports]
    if len(ports) != 2 or ports[0].lower() == ports[1].lower():
        raise NetlistError(f"--ports takes two different port names A,B, got {','.join(ports)!r}")
    lower = [p.lower() for p in all_ports]
    for p in ports:
        if p.lower() not in lower:
            raise NetlistError(f"--ports: subcircuit {subckt} has no port {p!r}; its ports: {' '.join(all_ports)}")
    return tuple(all_ports[lower.index(p.lower())] for p in ports)


def _wrapper(
    name: str, all_ports: list[str], terminals: tuple[str, str], nominal: dict[str, float], controls: bool = False
) -> tuple[str, str]:
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
    lines = [
        f".subckt {wname} te be{' c n' if controls else ''}" + (f" params: {params}" if params else ""),
        f"X0 {' '.join(nodes)} {name}" + (f" {passed}" if passed else ""),
        *opens,
        f".ends {wname}",
    ]
    return wname, "\n".join(lines)


# ---------------------------------------------------------------------------- whole decks
#: Top-level cards of a whole deck (the test circuit around a device), by kind. Their
#: presence, or an element outside every subcircuit, makes a file a deck.
DECK_CARDS = {
    **dict.fromkeys(
        (".tran", ".ac", ".dc", ".op", ".noise", ".tf", ".sens", ".pz", ".disto", ".four", ".pss", ".sp"), "analysis"
    ),
    **dict.fromkeys((".print", ".plot", ".probe", ".save", ".width"), "output"),
    **dict.fromkeys((".meas", ".measure"), "measurement"),
    ".step": "parameter sweep",
    **dict.fromkeys((".options", ".option", ".opt", ".temp"), "simulator option"),
    ".nodeset": "initial guess",
    ".ic": "initial condition of the deck's nodes",
    ".csparam": "control-language parameter",
    ".control": "control block",
}
#: Names an expression may use without defining them (ngspice's, or added by the dialects).
_BUILTIN_NAMES = {
    "pi",
    "e",
    "temper",
    "hertz",
    "time",
    "boltz",
    "echarge",
    "planck",
    "vt",
    "temp",
    "gmin",
    "true",
    "false",
}
#: A name in a parameter expression that is not a function call.
_IDENT = re.compile(r"(?<![\w.$])([A-Za-z_]\w*)(?!\w|\s*\()")
#: Characters of an include path that a shell would read (the path is refused).
_SHELL_CHARS = re.compile(r"[|`$~;&<>*?!]")


@dataclass
class DeckParts:
    """What was taken from a whole deck, and every line left out."""

    lines: list[tuple]  # logical lines kept: the subcircuits and the definitions they use
    kept: list[str]  # the top-level definitions kept, with their lines
    ignored: list[tuple[str, str]]  # (which lines, what) of everything left out


def _where(first, last=None) -> str:
    return f"line {first}" if last is None or last == first else f"lines {first}-{last}"


def _card(line: str) -> str:
    return line.split()[0].lower()


def _expand_includes(lines: list[tuple], path: Path, depth: int = 0) -> list[tuple]:
    """``.include FILE`` and ``.lib FILE SECTION`` replaced by the lines they name, read by
    rramsim itself (numbered ``N of FILE``). Only paths relative to the including file are
    read; an absolute path, a home directory or shell characters are refused, as is a
    missing file. A one-word ``.lib NAME`` (a library section's start) is left as it is."""
    out: list[tuple] = []
    for num, line in lines:
        tokens = line.split()
        card = tokens[0].lower()
        if card not in (".include", ".inc", ".lib") or (card == ".lib" and len(tokens) < 3):
            out.append((num, line))
            continue
        target = tokens[1].strip("'\"")
        if Path(target).is_absolute() or re.match(r"^[A-Za-z]:[\\/]", target) or _SHELL_CHARS.search(target):
            raise NetlistError(
                f"{path}:{num}: {card} {target!r}: a device file may include other files only by a "
                "path relative to it, without shell characters (rramsim reads them itself and "
                "checks them like the file); copy the definitions in, or give a relative path"
            )
        if depth >= 4:
            raise NetlistError(f"{path}:{num}: {card} {target!r}: files include each other more than 4 deep")
        inc = path.parent / target
        try:
            text = inc.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise NetlistError(
                f"{path}:{num}: {card} {target!r}: no such file next to {path.name} (looked for {inc})"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise NetlistError(f"{path}:{num}: {card} {target!r} cannot be read as a text netlist: {exc}") from None
        inner = [(f"{n} of {inc.name}", ln) for n, ln in _logical_lines(text) if _card(ln) != ".end"]
        if card == ".lib":  # only the named section: .lib SECTION ... .endl
            section = tokens[2].lower()
            start = next(
                (
                    i
                    for i, (_, ln) in enumerate(inner)
                    if _card(ln) == ".lib" and len(ln.split()) == 2 and ln.split()[1].lower() == section
                ),
                None,
            )
            if start is None:
                raise NetlistError(
                    f"{path}:{num}: .lib {target} {tokens[2]}: {inc.name} has no section '.lib {tokens[2]}'"
                )
            end = next((i for i in range(start + 1, len(inner)) if _card(inner[i][1]) == ".endl"), len(inner))
            inner = inner[start + 1 : end]
        out.extend(_expand_includes(inner, inc, depth + 1))
    return out


def _instance_target(line: str) -> str | None:
    """The subcircuit an ``X`` line instantiates (its last word before the parameters)."""
    words = []
    for tok in line.split()[1:]:
        if tok.lower().startswith("params:") or "=" in tok:
            break
        words.append(tok)
    return words[-1] if words else None


def _top_level_blocks(lines: list[tuple]) -> dict[str, tuple[int, int]]:
    """Index spans of the top-level ``.subckt`` blocks: lower-case name -> (start, end)."""
    blocks, depth, start = {}, 0, 0
    for i, (_, ln) in enumerate(lines):
        card = _card(ln)
        if card == ".subckt":
            start = start if depth else i
            depth += 1
        elif card == ".ends" and depth:
            depth -= 1
            if depth == 0:
                blocks[_subckt_header(lines[start][1])[0].lower()] = (start, i)
    if depth:
        blocks[_subckt_header(lines[start][1])[0].lower()] = (start, len(lines) - 1)
    return blocks


def is_deck(lines: list[tuple]) -> bool:
    """Whether logical ``lines`` are a whole deck: an analysis, output, option, control or
    ``.csparam`` card, or an element, outside every subcircuit."""
    depth = 0
    for _, ln in lines:
        card = _card(ln)
        depth += card == ".subckt"
        if card == ".ends" and depth:
            depth -= 1
        elif depth == 0 and (
            (card in DECK_CARDS and card != ".ic") or (not card.startswith(".") and card != "simulator")
        ):
            return True
    return False


def only_subckt(lines: list[tuple], path: Path) -> str:
    """The name of the file's one top-level subcircuit (an error naming them if not one)."""
    names = [_subckt_header(lines[s][1])[0] for s, _ in _top_level_blocks(lines).values()]
    if len(names) != 1:
        raise NetlistError(
            f"{path} defines {len(names)} subcircuits"
            + (
                f" ({', '.join(names)}): name the device's with --subckt"
                if names
                else ": a device is a .subckt ... .ends block"
            )
        )
    return names[0]


def extract_device(lines: list[tuple], subckt: str, path: Path) -> DeckParts:
    """The part of a whole deck that subcircuit ``subckt`` needs.

    Kept: the subcircuit, the subcircuits it instantiates (transitively), and the top-level
    ``.param``/``.func``/``.model``/``.global`` definitions their lines name, also through
    other definitions (a ``.param`` line keeps only the assignments used). Left out and
    listed by line: the ``.control`` block, analyses, outputs, options, sources and
    instances, unused definitions and subcircuits. What is kept then passes every check of
    a device file; rramsim builds its own test circuits around it.
    """
    blocks = _top_level_blocks(lines)
    if subckt.lower() not in blocks:
        return DeckParts(list(lines), [], [])  # the caller says what the file defines
    ignored: list[tuple[str, str]] = []
    defs: dict[str, list[tuple[int, str]]] = {}  # lower-case name -> [(line index, definition text)]
    inside = {k for s, e in blocks.values() for k in range(s, e + 1)}
    i = 0
    while i < len(lines):
        num, line = lines[i]
        tokens = line.split(None, 1)
        card, rest = tokens[0].lower(), (tokens[1] if len(tokens) > 1 else "")
        if i in inside or card in (".ends", ".backanno"):
            pass
        elif card == ".control":
            j = next((k for k in range(i + 1, len(lines)) if _card(lines[k][1]) == ".endc"), len(lines) - 1)
            ignored.append((_where(num, lines[j][0]), "the .control block (ngspice commands)"))
            i = j + 1
            continue
        elif card in (".param", ".params"):
            for key, value in split_assignments(rest):  # HSPICE: f(x)='...' defines a function
                defs.setdefault(re.match(r"\w*", key).group(0).lower(), []).append((i, value))
        elif card == ".func" and (m := re.match(r"(\w+)\s*\(", rest)):
            defs.setdefault(m.group(1).lower(), []).append((i, rest[m.end() :]))
        elif card == ".model" and rest:
            defs.setdefault(rest.split()[0].lower(), []).append((i, rest))
        elif card == ".global":
            for node in rest.split():
                defs.setdefault(node.lower(), []).append((i, ""))
        elif card in (".if", ".elseif", ".else", ".endif"):
            raise NetlistError(
                f"{path}:{num}: '{card}' outside the subcircuits: rramsim does not choose between "
                "the branches of a deck's .if; keep the branch your device uses"
            )
        elif card.startswith("."):
            ignored.append((_where(num), f"{DECK_CARDS.get(card, 'card')} {card}"))
        else:
            kind = {"x": "instance", "v": "source", "i": "source"}.get(card[0], "element")
            ignored.append((_where(num), f"{kind} {tokens[0]}"))
        i += 1
    # the subcircuits needed, then the definitions their lines name, to a fixed point
    needed, queue = [], [subckt.lower()]
    while queue:
        name = queue.pop()
        if name in needed:
            continue
        needed.append(name)
        start, end = blocks[name]
        nested = {h[0].lower() for _, ln in lines[start + 1 : end] if (h := _subckt_header(ln))}
        for num, ln in lines[start + 1 : end]:
            target = _instance_target(ln) if ln[0] in "xX" else None
            if target and target.lower() in blocks:
                queue.append(target.lower())
            elif target and target.lower() not in nested:
                raise NetlistError(
                    f"{path}:{num}: subcircuit {_subckt_header(lines[start][1])[0]} instantiates "
                    f"{target!r}, which the file does not define; add its .subckt (or the "
                    ".include that holds it)"
                )
    keep_idx = {k for n in needed for k in range(blocks[n][0], blocks[n][1] + 1)}
    words = {w.lower() for k in keep_idx for w in re.findall(r"[A-Za-z_]\w*", lines[k][1])}
    used: set[str] = set()
    while new := {w for w in words if w in defs} - used:
        used |= new
        words |= {t.lower() for w in new for _, text in defs[w] for t in re.findall(r"[A-Za-z_]\w*", text)}
    def_lines = sorted({k for entries in defs.values() for k, _ in entries})
    kept, out = [], []
    for k, (num, line) in enumerate(lines):
        if k in keep_idx:
            out.append((num, line))
        if k not in def_lines:
            continue
        card, rest = line.split(None, 1)
        lcard = card.lower()
        if lcard in (".param", ".params", ".global"):
            items = split_assignments(rest) if lcard != ".global" else [(n, "") for n in rest.split()]
            use = [(key, v) for key, v in items if re.match(r"\w*", key).group(0).lower() in used]
            unused = [key for key, _ in items if re.match(r"\w*", key).group(0).lower() not in used]
            if use:
                out.append((num, f"{card} " + " ".join(f"{key}={v}" if lcard != ".global" else key for key, v in use)))
                kept += [f"{lcard} {key} (line {num})" for key, _ in use]
            if unused:
                ignored.append((_where(num), f"{lcard} {', '.join(unused)} (not used by subcircuit {subckt})"))
            continue
        name = re.match(r"\w+", rest).group(0)
        if name.lower() in used:
            out.append((num, line))
            kept.append(f"{lcard} {name} (line {num})")
        else:
            ignored.append((_where(num), f"{lcard} {name} (not used by subcircuit {subckt})"))
    for name, (start, end) in blocks.items():
        if name not in needed:
            ignored.append(
                (
                    _where(lines[start][0], lines[end][0]),
                    f"subcircuit {_subckt_header(lines[start][1])[0]} (not used by {subckt})",
                )
            )
    position = {str(num): k for k, (num, _) in enumerate(lines)}
    ignored.sort(key=lambda item: position.get(item[0].split(" ", 1)[1].split("-")[0], 0))
    _check_parameters(out, needed, path)
    return DeckParts(out, kept, ignored)


def _check_parameters(lines: list[tuple], names: Iterable[str], path: Path) -> None:
    """Every name that a parameter of the kept subcircuits is computed from must be defined
    (by the subcircuit, a kept top-level ``.param`` or ngspice): a deck's value that only
    its ``.control`` block or its command line supplied is named here, not left to fail
    inside ngspice."""
    top = {
        re.match(r"\w*", k).group(0).lower()
        for _, ln in lines
        if _card(ln) in (".param", ".params")
        for k, _ in split_assignments(ln.split(None, 1)[1] if len(ln.split()) > 1 else "")
    }
    blocks = _top_level_blocks(lines)
    for name in names:
        start, end = blocks[name]
        funcs = {
            m.group(1).lower()
            for _, ln in lines[start : end + 1]
            if (m := re.match(r"\.func\s+(\w+)", ln, re.IGNORECASE))
        }
        funcs |= {
            re.match(r"\w*", k).group(0).lower()
            for _, ln in lines[start + 1 : end]
            if _card(ln) in (".param", ".params")
            for k, _ in split_assignments(ln.split(None, 1)[1])
            if "(" in k
        }
        known = set(_parameters(lines, start, end)) | top | funcs | _BUILTIN_NAMES
        head = _subckt_header(lines[start][1])
        checks = [(lines[start][0], k, v) for k, v in split_assignments(head[2])]
        checks += [
            (num, k, v)
            for num, ln in lines[start + 1 : end]
            if _card(ln) in (".param", ".params")
            for k, v in split_assignments(ln.split(None, 1)[1] if len(ln.split()) > 1 else "")
        ]
        for num, key, value in checks:
            if not re.fullmatch(r"\w+", key):  # a parameter function's body names its arguments
                continue
            for word in _IDENT.findall(value):
                if word.lower() not in known:
                    raise NetlistError(
                        f"{path}:{num}: subcircuit {head[0]}: parameter {key}={value} uses {word!r}, which the "
                        f"file does not define (no top-level '.param {word}=...'); a whole deck is used without "
                        f"its .control block and command line, so give {word} a top-level .param in the file"
                    )


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


def vary_module_parameters(
    device: Device, source: str, module: str, names: Iterable[str], path: str | Path = "module"
) -> tuple[Device, dict[str, float]]:
    """The Verilog-A ``device`` with module parameters ``names`` settable per cell.

    The wrapper subcircuit gets ``params: NAME=default`` and its ``.model`` card
    ``NAME={NAME}`` (ngspice makes one model per instance), so the benches set each cell's
    value on its instance line. Each parameter needs a numeric default (its nominal)."""
    declared = va_parameter_defaults(source, module)
    nominal: dict[str, float] = {}
    for want in names:
        if want.lower() not in declared:
            raise NetlistError(
                f"--vary {want}: module {module} of {path} has no parameter {want!r}"
                + (f"; its parameters: {', '.join(d[0] for d in declared.values())}" if declared else "")
            )
        pname, default = declared[want.lower()]
        value = spice_value(default)
        if value is None or value == 0:
            raise NetlistError(
                f"--vary {pname}: its default {default!r} in {path} is not a non-zero number; vary "
                "the parameters it is computed from"
            )
        nominal[pname] = value
    lines = device.definition.splitlines()
    sub = next(i for i, ln in enumerate(lines) if ln.lower().startswith(".subckt "))
    mod = next(i for i, ln in enumerate(lines) if ln.lower().startswith(".model "))
    lines[sub] += " params: " + " ".join(f"{p}={number(v, p)}" for p, v in nominal.items())
    lines[mod] += " " + " ".join(f"{p}={{{p}}}" for p in nominal)
    import dataclasses

    return dataclasses.replace(device, definition="\n".join(lines), params=tuple(nominal)), nominal
