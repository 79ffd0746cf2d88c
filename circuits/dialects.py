"""Device files written for LTspice, PSpice or HSPICE, run in ngspice.

Published compact models come as subcircuits written for another simulator. ngspice has
compatibility modes of its own (``set ngbehavior=...``, read every time a deck is
loaded), and rramsim uses them first:

=========  ===========  ================================================================
dialect    ngbehavior   what the mode does for a device file (ngspice 46)
=========  ===========  ================================================================
ngspice    (none)       the file is native ngspice
ltspice    ``ltpsa``    PSpice functions ``if()``, ``stp()``, ``limit()``, ``pwr()``,
                        ``pwrs()``, ``int()``; ``params:`` with commas; ``uplim()``,
                        ``dnlim()``; LTspice's ``**``/``^`` on negative bases; LTspice
                        diode models
pspice     ``psa``      the PSpice functions above, ``TEMP``/``VT``/``GMIN``, ``TABLE``
                        in E sources, ``VSWITCH`` models, PSpice's clamped ``exp()``
hspice     ``hsa``      HSPICE parameter and power semantics
=========  ===========  ================================================================

What no mode covers is translated here, on the logical lines of the file (each keeps
its own line number for messages):

* ``sdt(x)`` / ``idt(x[, ic])`` (time integral): a state node per integral, charged by a
  B source ``I = x`` on a 1 F capacitor (so ``V(node) = ∫x dt``) with ``.ic`` at ``ic``
  (default 0) and a 1e15 Ω leak for a DC path; the call becomes ``V(node)``.
* ``table(x, x1, y1, ...)`` with numeric breakpoints: ngspice's ``pwl()`` of ``x``
  clamped to the first and last breakpoint (``pwl`` alone extrapolates; ``table`` holds
  the end values).
* ``limit(x, a, b)`` in ngspice/HSPICE files: ``min(max(x, min(a,b)), max(a,b))``
  (ngspice's own two-argument ``limit`` is a *random* Monte Carlo function).
* ``if(c, a, b)`` and ``stp(x)`` in ngspice/HSPICE files: ``ternary_fcn()`` and ``u()``.
* constants ``boltz``, ``echarge``, ``planck`` (ngspice knows them only in its control
  language): ``.param`` lines with their SI values, unless the file defines them.
* HSPICE ``E.. vol='expr'`` and ``G.. cur='expr'``: B sources ``V=`` / ``I=``.
* ``E.. value={expr}`` and ``G.. value={expr}`` (any dialect): B sources ``V=`` / ``I=``, the
  same equation without the internal node ngspice adds for a ``value=`` source (that node
  can stall the time step where a state meets a hard bound); kept where the file reads the
  source's current ``I(name)``.
* HSPICE range annotations ``name=value from[lo, hi]``: removed from the line and kept
  as the parameter's range (a varied value is checked against it).
* LTspice/PSpice files that define a parameter ``vt``, ``temp`` or ``gmin``: the PSpice
  mode defines these itself and silently overrides the file's value, so the file's
  parameter is renamed (``vt`` -> ``vt_dev``) everywhere in the file.

* LTspice files with a line that leaves parentheses open: LTspice closes them at the end of
  the line, and so does rramsim (noted in the table's translation record).

Refused, with the construct and ``file:line``: lines with unbalanced parentheses in files
of other dialects or with a ')' that closes nothing; random functions (``gauss``, ``agauss``,
``unif``, ``aunif``, ``rand``, ``random``, ``white``, ``mc``, ngspice's two-argument
``limit``) — use ``--vary``; ``delay()``/``absdelay()``; ``idt``/``sdt`` with a reset
argument or inside a ``.func``; ``table()`` with non-numeric breakpoints; Spectre files
(``simulator lang=spectre``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

DIALECTS = ("auto", "ngspice", "ltspice", "pspice", "hspice")

#: ngspice compatibility mode used for each dialect ("a": the whole netlist, not only
#: included files — the device is embedded in the deck).
NGBEHAVIOR = {"ngspice": "", "ltspice": "ltpsa", "pspice": "psa", "hspice": "hsa"}

#: Comment line that carries the mode inside a device definition (and so inside every
#: deck that embeds it); the ngspice session reads it before loading the deck.
MARKER = "* ngbehavior: "

#: Constants of ngspice's control language that netlists do not know (SI values).
CONSTANTS = {"boltz": 1.380649e-23, "echarge": 1.602176634e-19, "planck": 6.62607015e-34}

#: Parameter names the PSpice compatibility mode defines itself (and overrides).
PSPICE_RESERVED = ("vt", "temp", "gmin")

_RANDOM = ("agauss", "gauss", "aunif", "unif", "rand", "random", "white", "mc")
_SUFFIX = {
    "t": 1e12,
    "g": 1e9,
    "meg": 1e6,
    "k": 1e3,
    "mil": 25.4e-6,
    "m": 1e-3,
    "u": 1e-6,
    "n": 1e-9,
    "p": 1e-12,
    "f": 1e-15,
    "a": 1e-18,
}
_NUM = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(meg|mil|[tgkmunpfa])?[a-z]*$", re.IGNORECASE)


class NetlistError(ValueError):
    """A device file cannot be characterized; the message says why and what to do."""


def compat_mode(deck: str) -> str:
    """The ngspice compatibility mode a deck's device asks for ('' for none)."""
    m = re.search(r"^\* ngbehavior: (\w+)\s*$", deck, re.MULTILINE)
    return m.group(1) if m and m.group(1) in NGBEHAVIOR.values() else ""


def spice_value(text: str) -> float | None:
    """A SPICE literal such as ``16N``, ``.076``, ``4.6V``, ``1kOhm`` as a float (None if
    it is not a plain literal: an expression, a name)."""
    m = _NUM.match(text.strip().strip("{}'\"").strip())
    if not m:
        return None
    return float(m.group(1)) * _SUFFIX.get((m.group(2) or "").lower(), 1.0)


# ---------------------------------------------------------------------------- expressions
def find_calls(text: str, name: str) -> list[tuple[int, int, list[str]]]:
    """Calls ``name(...)`` in ``text`` (case-insensitive, whole word): (start, end, args)."""
    out = []
    for m in re.finditer(rf"(?<![\w.]){re.escape(name)}\s*\(", text, re.IGNORECASE):
        depth, args, start = 0, [], m.end()
        for i in range(m.end() - 1, len(text)):
            c = text[i]
            if c in "({[":
                depth += 1
            elif c in ")}]":
                depth -= 1
                if depth == 0:
                    args.append(text[start:i].strip())
                    out.append((m.start(), i + 1, args))
                    break
            elif c == "," and depth == 1:
                args.append(text[start:i].strip())
                start = i + 1
    return out


def replace_calls(text: str, name: str, fn) -> str:
    """Replace every call ``name(...)`` by ``fn(args)`` (innermost calls first)."""
    while True:
        calls = find_calls(text, name)
        if not calls:
            return text
        # innermost: a call containing no other call of the same name
        start, end, args = min(calls, key=lambda c: c[1] - c[0])
        text = text[:start] + fn(args) + text[end:]


def split_assignments(text: str) -> list[tuple[str, str]]:
    """``a=1 b={x + y} c='p*q'`` -> [(a, 1), (b, {x + y}), (c, 'p*q')] (brackets and
    quotes respected, spaces around ``=`` allowed, commas between pairs allowed)."""
    text = re.sub(r"\s*=\s*", "=", text.strip())
    items, depth, quote, cur = [], 0, False, ""
    for c in text:
        if c == "'":
            quote = not quote
        elif not quote and c in "({[":
            depth += 1
        elif not quote and c in ")}]":
            depth -= 1
        if not quote and depth == 0 and (c.isspace() or c == ","):
            if cur:
                items.append(cur)
            cur = ""
        else:
            cur += c
    if cur:
        items.append(cur)
    out = []
    for item in items:
        if "=" in item:
            key, value = item.split("=", 1)
            out.append((key, value))
    return out


# ---------------------------------------------------------------------------- detection
_FEATURES = {
    "hspice": [
        (r"^\s*[eg]\w*\s.*\b(vol|cur)\s*=", "HSPICE vol=/cur= sources"),
        (r"^\.param\s+\w+\s*\([^)]*\)\s*=", "HSPICE .param functions"),
        (r"\bfrom\s*[\[(]", "HSPICE parameter ranges"),
        (r"^\.(option|options)\s+(post|ingold|runlvl)", "HSPICE options"),
    ],
    "pspice": [
        (r"\bparams:.*=\s*[^\s,]+\s*,", "PSpice params: with commas"),
        (r"(?<![\w.])stp\s*\(", "PSpice stp()"),
        (r"(?<![\w.])sdt\s*\(", "PSpice sdt()"),
        (r"(?<![\w.])(pwrs?|limit)\s*\(", "PSpice pwr()/pwrs()/limit()"),
    ],
    "ltspice": [
        (r"(?<![\w.])(table|idt|uplim|dnlim)\s*\(", "LTspice table()/idt()/uplim()"),
        (r"(?<![\w.])if\s*\(", "if()"),
        (r"^\.params\b", ".params"),
        (r"^\.backanno\b", "LTspice .backanno"),
        (r"\brser\s*=", "LTspice Rser="),
    ],
}


def detect(lines: list[tuple[int, str]], text: str, path: Path) -> tuple[str, list[str]]:
    """The dialect of a device file and the features that decided it.

    Comments naming a simulator weigh most, then the constructs only one simulator
    reads; a file with none of them is ngspice, and so is a whole deck with a
    ``.control`` block or ``.csparam`` cards (ngspice's control language) unless a
    comment names another simulator. ``if()`` and ``.params`` are read by
    LTspice and PSpice alike; LTspice wins a tie (its mode, ``ltpsa``, includes PSpice's).
    """
    score = {d: 0 for d in _FEATURES}
    why: dict[str, list[str]] = {d: [] for d in _FEATURES}
    for d, word in (("ltspice", "ltspice"), ("pspice", "pspice"), ("hspice", "hspice")):
        if re.search(rf"^\s*\*.*\b{word}\b", text, re.IGNORECASE | re.MULTILINE):
            score[d] += 3
            why[d].append(f"a comment names {word}")
    if path.suffix.lower() in (".sp", ".hsp"):
        score["hspice"] += 1
        why["hspice"].append(f"file suffix {path.suffix}")
    for _, line in lines:
        for d, feats in _FEATURES.items():
            for pattern, label in feats:
                if re.search(pattern, line, re.IGNORECASE) and label not in why[d]:
                    score[d] += 1
                    why[d].append(label)
    best = max(score, key=lambda d: (score[d], d == "ltspice", d == "pspice"))
    control = re.search(r"^\s*\.(control|csparam)\b", text, re.IGNORECASE | re.MULTILINE)
    if control and score[best] < 3:  # a whole ngspice deck: only ngspice has a control language
        return "ngspice", [f"a {control.group(1).lower()} card (ngspice's control language)"]
    if score[best] == 0:
        return "ngspice", ["no LTspice, PSpice or HSPICE construct found"]
    return best, why[best]


# ---------------------------------------------------------------------------- translation
@dataclass
class Translation:
    """A device file's logical lines after translation, with what was done to them."""

    dialect: str
    lines: list[tuple[int, str]]
    notes: list[str] = field(default_factory=list)  # what was translated, for the record
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # declared ranges (lower-case)

    @property
    def ngbehavior(self) -> str:
        return NGBEHAVIOR[self.dialect]

    def definition(self) -> str:
        head = [MARKER + self.ngbehavior] if self.ngbehavior else []
        return "\n".join(head + [ln for _, ln in self.lines])


def _refuse(path: Path, number: int, what: str, advice: str) -> NetlistError:
    return NetlistError(f"{path}:{number}: {what} is not supported in a device file: {advice}")


def _missing_closers(line: str) -> int:
    """How many ')' a line lacks at its end: the '(' left open after a left-to-right scan,
    0 if the line is balanced or closes a parenthesis it never opened (no LTspice rule fixes that)."""
    depth = 0
    for c in line:
        depth += (c == "(") - (c == ")")
        if depth < 0:
            return 0
    return depth


def translate(lines: list[tuple[int, str]], dialect: str, path: Path) -> Translation:
    """Translate the logical ``lines`` of a device file written in ``dialect``."""
    if dialect not in NGBEHAVIOR:
        raise NetlistError(f"unknown dialect {dialect!r}; choose from {', '.join(DIALECTS)}")
    tr = Translation(dialect, [])
    ps_mode = "ps" in NGBEHAVIOR[dialect]
    defined = {k.lower() for _, ln in lines for k in _defined_names(ln)}
    used_consts = set()
    renames = {n: f"{n}_dev" for n in PSPICE_RESERVED if ps_mode and n in defined}
    for name, new in renames.items():
        tr.notes.append(f"parameter '{name}' renamed '{new}' (the {NGBEHAVIOR[dialect]} mode defines '{name}' itself)")
    read_currents = {n.lower() for _, ln in lines for n in re.findall(r"\bi\(\s*(\w+)\s*\)", ln, re.IGNORECASE)}
    state_nodes = 0
    out: list[tuple[int, str]] = []
    for number, line in lines:
        low = line.lower()
        missing = _missing_closers(line)
        if missing and dialect == "ltspice":
            line = line.rstrip() + ")" * missing
            low = line.lower()
            tr.notes.append(f"line {number}: {missing} missing ')' closed at the end of the line, as LTspice does")
        elif line.count("(") != line.count(")"):
            raise _refuse(
                path,
                number,
                f"a line with unbalanced parentheses ({line.count('(')} '(' and {line.count(')')} ')')",
                "only an LTspice file gets missing ')' closed at the end of "
                "the line (as LTspice does; --dialect ltspice); ngspice does not, and rramsim does not "
                "guess where they belong: balance them in the file",
            )
        if re.match(r"^simulator\s+lang", low):
            raise _refuse(
                path,
                number,
                "'simulator lang' (a Spectre file)",
                "rramsim reads SPICE subcircuits; export the model as an LTspice/PSpice/HSPICE subcircuit",
            )
        for fn in _RANDOM:
            if find_calls(line, fn):
                raise _refuse(
                    path,
                    number,
                    f"the random function {fn}()",
                    "a device file must be deterministic; give device-to-device spread with "
                    "--vary NAME=SPREAD (seeded, recorded in the table)",
                )
        limits = find_calls(line, "limit")
        if any(len(a) == 2 for _, _, a in limits):
            raise _refuse(
                path,
                number,
                "ngspice's two-argument limit() (a random Monte Carlo value)",
                "use --vary NAME=SPREAD for spread, or limit(x, lo, hi) to clamp",
            )
        for fn in ("delay", "absdelay"):
            if find_calls(line, fn):
                raise _refuse(
                    path,
                    number,
                    f"{fn}()",
                    "ngspice B sources have no delay function; model the delay with a transmission line or an RC stage",
                )
        for name, new in renames.items():
            line = re.sub(rf"(?<![\w.]){name}(?![\w(])", new, line, flags=re.IGNORECASE)
        # HSPICE range annotations: name=value from[lo, hi]
        for m in list(
            re.finditer(r"(\w+)\s*=\s*(\S+)\s+from\s*[\[(]\s*([^,\])]+)\s*,\s*([^\])]+)\s*[\])]", line, re.IGNORECASE)
        ):
            lo, hi = spice_value(m.group(3)), spice_value(m.group(4))
            if lo is None or hi is None:
                raise _refuse(path, number, f"the range of {m.group(1)} ({m.group(0)})", "give its bounds as numbers")
            tr.ranges[m.group(1).lower()] = (lo, hi)
            line = line.replace(m.group(0), f"{m.group(1)}={m.group(2)}")
            tr.notes.append(f"line {number}: range [{lo:g}, {hi:g}] of {m.group(1)} kept as a check")
        # E/G value= sources -> B sources (ngspice builds value= sources from a B source on an
        # internal node driving a linear E/G; the extra node can stall the time step where a
        # state meets a hard bound). Kept where the file reads the source's current, I(name).
        m = re.match(r"^([eg])(\w*)\s+(\S+)\s+(\S+)\s+value\s*=\s*(.+)$", line, re.IGNORECASE)
        if m and (m.group(1) + m.group(2)).lower() not in read_currents:
            expr = m.group(5).strip()
            expr = expr if expr.startswith("{") and expr.endswith("}") else f"{{{expr}}}"
            kind = "V" if m.group(1).lower() == "e" else "I"
            line = f"B{m.group(1)}{m.group(2)} {m.group(3)} {m.group(4)} {kind}={expr}"
            tr.notes.append(f"line {number}: {m.group(1).upper()} value= source as a B source")
        # HSPICE vol=/cur= controlled sources -> B sources
        m = re.match(r"^([eg])(\w*)\s+(\S+)\s+(\S+)\s+(vol|cur)\s*=\s*(.+)$", line, re.IGNORECASE)
        if m:
            expr = m.group(6).strip()
            if expr.startswith("'") and expr.endswith("'"):
                expr = expr[1:-1]
            kind = "V" if m.group(5).lower() == "vol" else "I"
            line = f"B{m.group(1)}{m.group(2)} {m.group(3)} {m.group(4)} {kind}={{{expr}}}"
            tr.notes.append(f"line {number}: HSPICE {m.group(5).lower()}= source as a B source")
        if not ps_mode:
            if find_calls(line, "limit"):
                line = replace_calls(
                    line, "limit", lambda a: f"min(max({a[0]}, min({a[1]}, {a[2]})), max({a[1]}, {a[2]}))"
                )
                tr.notes.append(f"line {number}: limit(x, a, b) as min/max")
            if find_calls(line, "if"):
                line = replace_calls(line, "if", lambda a: f"ternary_fcn({', '.join(a)})")
                tr.notes.append(f"line {number}: if() as ternary_fcn()")
            if find_calls(line, "stp"):
                line = replace_calls(line, "stp", lambda a: f"u({', '.join(a)})")
                tr.notes.append(f"line {number}: stp() as u()")
        for _, _, args in find_calls(line, "table"):
            if len(args) < 5 or len(args) % 2 == 0 or any(spice_value(a) is None for a in args[1:]):
                raise _refuse(
                    path,
                    number,
                    "table() with non-numeric breakpoints or an odd count",
                    "give table(x, x1, y1, x2, y2, ...) with numbers, or write the curve as an expression",
                )
        if find_calls(line, "table"):

            def _table(a):
                xs = [spice_value(v) for v in a[1::2]]
                return f"pwl(min(max({a[0]}, {min(xs)!r}), {max(xs)!r}), {', '.join(a[1:])})"

            line = replace_calls(line, "table", _table)
            tr.notes.append(f"line {number}: table() as a clamped pwl()")
        extra: list[tuple[int, str]] = []
        for fn in ("sdt", "idt"):
            for _, _, args in find_calls(line, fn):
                if low.startswith(".func") or low.startswith(".param"):
                    raise _refuse(
                        path,
                        number,
                        f"{fn}() inside {low.split()[0]}",
                        "an integral needs its own state node; call it in the B/E/G source itself",
                    )
                if len(args) > 2:
                    raise _refuse(path, number, f"{fn}() with a reset argument", "reset integrals are not supported")

            def _integral(a, fn=fn):
                nonlocal state_nodes
                state_nodes += 1
                node = f"sdt_state{state_nodes}"
                extra.extend(
                    [
                        (number, f"B{node} 0 {node} I={{{a[0]}}}"),
                        (number, f"C{node} {node} 0 1"),
                        (number, f"R{node} {node} 0 1e15"),
                        (number, f".ic V({node})={{{a[1]}}}" if len(a) > 1 else f".ic V({node})=0"),
                    ]
                )
                tr.notes.append(f"line {number}: {fn}() as the state node {node} (1 F, B source, .ic)")
                return f"V({node})"

            line = replace_calls(line, fn, _integral)
        for const in CONSTANTS:
            if const not in defined and re.search(rf"(?<![\w.]){const}(?![\w(])", line, re.IGNORECASE):
                used_consts.add(const)
        out.append((number, line))
        out.extend(extra)
    if used_consts:
        params = " ".join(f"{c}={CONSTANTS[c]!r}" for c in sorted(used_consts))
        out.insert(0, (0, f".param {params}"))
        tr.notes.append(f"constants {', '.join(sorted(used_consts))} defined as .param (SI values)")
    tr.lines = out
    return tr


def _defined_names(line: str) -> list[str]:
    """Parameter names a ``.param``/``.params`` line or a ``.subckt`` line defines."""
    tokens = line.split(None, 1)
    if not tokens:
        return []
    card = tokens[0].lower()
    if card in (".param", ".params") and len(tokens) > 1:
        return [k for k, _ in split_assignments(tokens[1]) if re.fullmatch(r"\w+", k)]
    if card == ".subckt" and len(tokens) > 1:
        rest = re.sub(r"\bparams:", " ", tokens[1], flags=re.IGNORECASE)
        return [k for k, _ in split_assignments(rest) if re.fullmatch(r"\w+", k)]
    return []
