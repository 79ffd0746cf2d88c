"""Rewrites of a Verilog-A module that let OpenVAF compile and simulate it as written.

Published RRAM compact models were written for simulators that keep a module's
variables from one evaluation to the next. Their state is typically integrated into a
variable and clamped afterwards, and read earlier in the block as the previous
evaluation's (clamped) value::

    rate = f(gap, V);                 // gap read: the last value
    gap = idt(rate, gap0);
    if (gap < gap_min) gap = gap_min;
    else if (gap > gap_max) gap = gap_max;

OpenVAF evaluates every variable afresh, so that early read returns 0 and the device
never switches. The integral itself is fine, the variable is not: :func:`lift` moves
the integral onto an internal node ("lifting"), which the simulator does keep::

    I(gap_lifted) <+ V(gap_lifted) - idt(rate / S, 0) - gap0 / S;   // node voltage = integral / S
    gap = V(gap_lifted) * S;          // followed by the same clamps, where they were

and, where the analog block begins, ``gap = V(gap_lifted) * S`` followed by a copy of
the clamp statements, so every read before the integration sees the clamped state of
the present solution — the value the published simulator converges to at each time
point (the integrator keeps the unclamped integral in both). ``S`` is the largest
magnitude of the initial value and the clamp bounds, so the node voltage is of order 1
and the simulator's voltage tolerances (~1e-6 V) resolve the state (a gap of 2e-10 m
would be lost in volts).

A variable is lifted only when this is faithful: its one assignment outside the clamps
is ``VAR = idt(EXPR, IC);`` at the top level of the analog block, with a constant
``IC`` (parameters and numbers), followed directly by clamp statements that assign
only lifted variables and read only lifted variables, parameters and numbers. A state
kept any other way (``x = x + rate*dt`` with a time step kept by hand, a state held by
``@(cross)`` events) is left as written, for the caller to refuse.

Other rewrites, each reported:

- ``idt(EXPR, IC)`` with ``IC`` not 0 becomes ``(idt(EXPR, 0) + (IC))``: measured with
  OpenVAF and ngspice 46, an integral starts from ``IC`` at the operating point but
  from 0 on the first time step (and from 0 throughout under ``uic``).
- HSPICE parameter ranges ``from[a, b]`` are read as the standard ``from[a:b]``.
- ``$rdist_normal(seed, mean, sd)`` reads its mean, ``$rdist_uniform(seed, lo, hi)``
  the middle of its range and ``$random`` 0: OpenVAF has no random numbers, so the
  module's own random variation is off (rramsim's ``--vary`` spreads parameters).

Line numbers are kept (nothing inserted holds a line break), so the compiler's messages
point at the user's lines. Pure text: this module imports nothing of rramsim.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["LiftError", "Lifted", "Rewrite", "code_only", "lift"]


class LiftError(ValueError):
    """A construct that cannot be compiled faithfully; the message names it and its line."""


@dataclass(frozen=True)
class Rewrite:
    """One rewrite: its rule, what it applied to, the (first) line, and what it did."""

    rule: str  # "lift-state", "idt-initial-condition", "range", "random"
    name: str
    line: int
    detail: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.detail}"


@dataclass(frozen=True)
class Lifted:
    """The rewritten source (what is compiled) and the rewrites made."""

    source: str
    rewrites: tuple[Rewrite, ...]

    @property
    def lifted_variables(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.rewrites if r.rule == "lift-state")


_TOKENS = re.compile(r'"(?:\\.|[^"\\\n])*"|//[^\n]*|/\*.*?\*/', re.DOTALL)

#: Names a clamp statement may use besides parameters and lifted variables.
_PURE = {
    "if",
    "else",
    "begin",
    "end",
    "min",
    "max",
    "abs",
    "exp",
    "ln",
    "log",
    "sqrt",
    "pow",
    "limexp",
    "floor",
    "ceil",
    "sin",
    "cos",
    "tan",
    "asin",
    "acos",
    "atan",
    "atan2",
    "sinh",
    "cosh",
    "tanh",
    "hypot",
}
_IDENT = re.compile(r"(?<![\w`$.])([A-Za-z_]\w*)")


def code_only(source: str) -> str:
    """``source`` with comments and string literals blanked (offsets and lines kept)."""
    return _TOKENS.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), source)


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def closing(text: str, pos: int) -> int:
    """Offset of the bracket closing the one at ``pos`` (``(`` or ``[``)."""
    depth = 0
    for i in range(pos, len(text)):
        c = text[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return i
    return len(text)


def split_top(text: str, sep: str = ",") -> list[str]:
    """``text`` split at ``sep`` outside brackets."""
    parts, depth, last = [], 0, 0
    for i, c in enumerate(text):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == sep and depth == 0:
            parts.append(text[last:i])
            last = i + 1
    return parts + [text[last:]]


def statement_end(code: str, pos: int) -> int:
    """End offset of the statement starting at (or after blanks from) ``pos``."""
    m = re.compile(r"\s*").match(code, pos)
    pos = m.end()
    word = re.compile(r"[A-Za-z_]\w*|@|;").match(code, pos)
    w = word.group() if word else ""
    if w == ";":
        return pos + 1
    if w == "begin":
        depth = 0
        for tok in re.compile(r"\b(begin|end)\b").finditer(code, pos):
            depth += 1 if tok.group(1) == "begin" else -1
            if depth == 0:
                return tok.end()
        return len(code)
    if w in ("case", "casex", "casez"):
        depth = 0
        for tok in re.compile(r"\b(case|casex|casez|endcase)\b").finditer(code, pos):
            depth += -1 if tok.group(1) == "endcase" else 1
            if depth == 0:
                return tok.end()
        return len(code)
    if w in ("if", "for", "while", "repeat", "@"):
        paren = code.find("(", word.end())
        if paren < 0:
            return len(code)
        end = statement_end(code, closing(code, paren) + 1)
        if w == "if":
            other = re.compile(r"\s*else\b").match(code, end)
            if other:
                end = statement_end(code, other.end())
        return end
    depth = 0
    for i in range(pos, len(code)):
        c = code[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == ";" and depth == 0:
            return i + 1
    return len(code)


def statements(code: str, start: int, end: int) -> list[tuple[int, int]]:
    """Spans of the statements between ``start`` and ``end`` (one level, not nested)."""
    out = []
    pos = start
    while True:
        m = re.compile(r"\s*").match(code, pos)
        if m.end() >= end:
            return out
        stop = min(statement_end(code, m.end()), end)
        out.append((m.end(), stop))
        pos = stop


def _declared(body: str, kinds: str) -> dict[str, str]:
    """Names declared with ``kinds`` (a regex alternative) in ``body`` -> initializer text."""
    out: dict[str, str] = {}
    for decl in re.finditer(rf"(?<![\w.])(?:{kinds})\b([^;]*);", body):
        text = re.sub(r"^\s*(?:real|integer|string)\b", "", decl.group(1))
        for item in split_top(text):
            m = re.match(
                r"\s*([A-Za-z_]\w*)\s*(?:\[[^\]]*\])?\s*(?:=\s*(.*?))?\s*(?:\b(?:from|exclude)\b.*)?$", item, re.DOTALL
            )
            if m:
                out[m.group(1)] = (m.group(2) or "").strip()
    return out


def _identifiers(text: str) -> set[str]:
    return set(_IDENT.findall(text))


def _keep_lines(old: str, new: str) -> str:
    """``new`` (one line) followed by as many line breaks as ``old`` held."""
    return new + "\n" * old.count("\n")


def _flat(text: str) -> str:
    """``text`` on one line."""
    return re.sub(r"\s*\n\s*", " ", text).strip()


def _assigned(code: str, start: int, end: int) -> list[tuple[str, int]]:
    """(name, offset) of every assignment target between ``start`` and ``end``."""
    return [
        (m.group(1), m.start(1))
        for m in re.compile(r"(?<![\w.<>!=$`])([A-Za-z_]\w*)\s*(?:\[[^\]]*\])?\s*=(?!=)").finditer(code, start, end)
    ]


def _unique(name: str, taken: set[str]) -> str:
    out, k = name, 1
    while out in taken:
        k += 1
        out = f"{name}{k}"
    taken.add(out)
    return out


def _constant(expr: str, params: set[str]) -> bool:
    """Whether ``expr`` is made of numbers, parameters, macros and math functions only."""
    return "$" not in expr and _identifiers(expr) <= params | _PURE


def lift(source: str) -> Lifted:
    """``source`` rewritten for OpenVAF (see the module docstring) and the rewrites made.

    Raises :class:`LiftError` for a construct the rewrites cannot make faithful."""
    rewrites: list[Rewrite] = []
    for rewrite in (_ranges, _random, _lift_states, _idt_initial_conditions):  # each on the last one's text
        code = code_only(source)
        out, last = [], 0
        for start, end, text in sorted(rewrite(code, rewrites)):
            out += [source[last:start], text]
            last = end
        source = "".join(out) + source[last:]
    return Lifted(source, tuple(sorted(rewrites, key=lambda r: (r.line, r.rule))))


def _modules(code: str):
    """(start, end) of each module's body."""
    return [(m.start(1), m.end(1)) for m in re.finditer(r"\bmodule\b(.*?)\bendmodule\b", code, re.DOTALL)]


def _parameters(code: str, start: int, end: int) -> set[str]:
    return set(_declared(code[start:end], "parameter|localparam"))


def _lift_states(code: str, rewrites: list) -> list:
    edits: list = []
    taken = _identifiers(code)
    for start, end in _modules(code):
        _lift_module(code, start, end, edits, rewrites, taken)
    return edits


def _lift_module(code: str, start: int, end: int, edits, rewrites, taken: set[str]) -> None:
    body = code[start:end]
    params = set(_declared(body, "parameter|localparam"))
    variables = _declared(re.sub(r"\b(?:parameter|localparam)\b[^;]*;", lambda m: " " * len(m.group()), body), "real")
    head = re.search(r"\banalog\b(?!\s+function)", body)
    if head is None:
        return
    block = re.compile(r"\s*begin\b(\s*:\s*\w+)?").match(code, start + head.end())
    if block is None:
        return
    inner_start = block.end()
    inner_end = statement_end(code, start + head.end()) - len("end")
    tops = statements(code, inner_start, inner_end)
    events = [(a, b) for a, b in tops if code[a] == "@"]
    # candidates: top-level 'VAR = idt(EXPR, IC);' of a real variable, IC constant
    candidates: dict[str, tuple[int, str, str, int]] = {}
    for k, (a, b) in enumerate(tops):
        m = re.compile(r"([A-Za-z_]\w*)\s*=\s*idt\s*\(").match(code, a)
        if not m or m.group(1) not in variables:
            continue
        paren = m.end() - 1
        close = closing(code, paren)
        if code[close + 1 : b].strip() != ";":
            continue
        args = split_top(code[paren + 1 : close])
        if len(args) != 2 or not _constant(args[1], params):
            continue
        name = m.group(1)
        reads = [p.start() for p in re.compile(rf"(?<![\w`$.]){re.escape(name)}\b").finditer(code, inner_start, close)]
        writes = {off for n, off in _assigned(code, inner_start, close) if n == name}
        early = [p for p in reads if p not in writes and not any(ea <= p < eb for ea, eb in events)]
        if early and name not in candidates:
            candidates[name] = (k, args[0], args[1], early[0])
    lifted = set(candidates)
    while lifted:
        runs = _clamp_runs(code, tops, candidates, lifted, params)
        bad = {n for n in lifted if not _only_assigned_in(code, inner_start, inner_end, n, tops, runs[n])}
        if not bad:
            break
        lifted -= bad
    if not lifted:
        return
    runs = _clamp_runs(code, tops, candidates, lifted, params)
    prelude, decl = [], []
    copied: list[int] = []
    idt_statements = {candidates[n][0] for n in lifted}
    for name in sorted(lifted, key=lambda n: candidates[n][0]):
        k, expr, ic, first_read = candidates[name]
        node, scale = _unique(f"{name}_lifted", taken), _unique(f"{name}_lifted_scale", taken)
        others = [i for i in runs[name] if i not in idt_statements]  # the clamps in its run
        copied += [i for i in others if i not in copied]
        clamps = [i for i in others if name in {n for n, _ in _assigned(code, *tops[i])}]
        bounds = [
            rhs for i in clamps for lhs, rhs in _assignments(code, *tops[i]) if lhs == name and _constant(rhs, params)
        ]
        magnitudes = [f"abs({_flat(e)})" for e in [ic, *bounds]]
        s = magnitudes[0]
        for e in magnitudes[1:]:
            s = f"max({s}, {e})"
        decl.append(f" electrical {node}; real {scale};")
        prelude.append(f" {scale} = {s}; if ({scale} == 0) {scale} = 1; {name} = V({node}) * {scale};")
        a, b = tops[k]
        edits.append(
            (
                a,
                b,
                _keep_lines(
                    code[a:b],
                    f"I({node}) <+ V({node}) - idt(({_flat(expr)}) / {scale}, 0)"
                    f" - ({_flat(ic)}) / {scale}; {name} = V({node}) * {scale};",
                ),
            )
        )
        where = (
            (
                f", and the {len(clamps)} clamp statement{'s' * (len(clamps) != 1)} after it (line"
                f"{'s' * (len(clamps) != 1)} {', '.join(str(line_of(code, tops[i][0])) for i in clamps)}) "
                "also where the analog block begins"
            )
            if clamps
            else ""
        )
        rewrites.append(
            Rewrite(
                "lift-state",
                name,
                line_of(code, a),
                (
                    f"'{name} = idt(...)' with '{name}' read before it (line {line_of(code, first_read)}) keeps a state "
                    f"in a variable, which OpenVAF does not keep between evaluations: lifted to the internal node "
                    f"'{node}' ({name} = V({node}) * S, S = max |initial value, clamp bounds| = {_flat(s)}){where}, "
                    f"so reads before the integration see the clamped state"
                ),
            )
        )
    prelude += [" " + _flat(code[tops[i][0] : tops[i][1]]) for i in sorted(copied)]
    edits.append((inner_start, inner_start, "".join(prelude)))
    header = re.compile(r"[^;]*;").match(code, start)  # the module header: 'NAME(ports);'
    edits.append((header.end(), header.end(), "".join(decl)))


def _assignments(code: str, a: int, b: int) -> list[tuple[str, str]]:
    """(target, right-hand side) of the assignments in code[a:b]."""
    out = []
    for name, off in _assigned(code, a, b):
        eq = code.index("=", off)
        semi = code.find(";", eq, b)
        out.append((name, code[eq + 1 : semi if semi >= 0 else b].strip()))
    return out


def _clamp_runs(code: str, tops, candidates, lifted: set[str], params: set[str]) -> dict[str, list[int]]:
    """For each lifted variable: the top-level statements of its run (its idt statement and
    the clamp statements right after it, idt statements of other lifted variables between)."""
    idt_index = {candidates[n][0] for n in lifted}
    allowed = params | _PURE | lifted
    runs = {}
    for name in lifted:
        k = candidates[name][0]
        run = [k]
        for i in range(k + 1, len(tops)):
            a, b = tops[i]
            if i in idt_index:
                run.append(i)
                continue
            targets = {n for n, _ in _assigned(code, a, b)}
            if not targets or not targets <= lifted or "<+" in code[a:b] or not _identifiers(code[a:b]) <= allowed:
                break
            run.append(i)
        runs[name] = run
    return runs


def _only_assigned_in(code: str, start: int, end: int, name: str, tops, run: list[int]) -> bool:
    """Whether every assignment to ``name`` lies in the statements ``run``."""
    spans = [tops[i] for i in run]
    return all(any(a <= off < b for a, b in spans) for n, off in _assigned(code, start, end) if n == name)


def _lines(lines: list[int]) -> str:
    return f"line{'s' * (len(lines) > 1)} {', '.join(map(str, lines))}"


def _ranges(code: str, rewrites: list) -> list:
    edits, lines = [], []
    for decl in re.finditer(r"\bparameter\b[^;]*;", code):
        for m in re.finditer(r"\b(?:from|exclude)\s*([\[(])", decl.group()):
            open_ = decl.start() + m.end() - 1
            inside = code[open_ + 1 : closing(code, open_)]
            parts = split_top(inside)
            if ":" not in inside and len(parts) == 2:
                comma = open_ + 1 + len(parts[0])
                edits.append((comma, comma + 1, ":"))
                lines.append(line_of(code, comma))
    if lines:
        rewrites.append(
            Rewrite(
                "range",
                "from[a, b]",
                lines[0],
                (
                    f"HSPICE parameter range{'s' * (len(lines) > 1)} 'from[a, b]' ({_lines(lines)}) read as the standard "
                    "'from[a:b]'"
                ),
            )
        )
    return edits


def _random(code: str, rewrites: list) -> list:
    edits, found = [], {}
    for m in re.finditer(r"\$(rdist_normal|rdist_uniform|random)\b", code):
        what, line = m.group(1), line_of(code, m.start())
        paren = re.compile(r"\s*\(").match(code, m.end())
        end, value = m.end(), "0"
        if paren is not None:
            close = closing(code, paren.end() - 1)
            args = split_top(code[paren.end() : close])
            end = close + 1
            if what != "random":
                if len(args) != 3:
                    raise LiftError(
                        f"line {line}: ${what} takes (seed, a, b), here {len(args)} argument"
                        f"{'s' * (len(args) != 1)}: rramsim replaces it by a constant (OpenVAF has no "
                        "random numbers) and cannot here"
                    )
                value = (
                    f"({_flat(args[1])})"
                    if what == "rdist_normal"
                    else f"((({_flat(args[1])}) + ({_flat(args[2])})) / 2)"
                )
        elif what != "random":
            raise LiftError(f"line {line}: ${what} without arguments")
        edits.append((m.start(), end, _keep_lines(code[m.start() : end], value)))
        found.setdefault(what, []).append(line)
    reads = {"rdist_normal": "its mean", "rdist_uniform": "the middle of its range", "random": "0"}
    for what, lines in found.items():
        rewrites.append(
            Rewrite(
                "random",
                f"${what}",
                lines[0],
                (
                    f"${what} ({_lines(lines)}) reads {reads[what]}: OpenVAF has no random numbers, so the module's own "
                    "random variation is off (--vary spreads module parameters from device to device)"
                ),
            )
        )
    return edits


def _idt_initial_conditions(code: str, rewrites: list) -> list:
    edits, lines = [], []
    for start, end in _modules(code):
        params = _parameters(code, start, end)
        for m in re.compile(r"(?<![\w$`])idt\s*\(").finditer(code, start, end):
            paren = m.end() - 1
            close = closing(code, paren)
            args = split_top(code[paren + 1 : close])
            if len(args) < 2 or re.fullmatch(r"\s*0*\.?0*(?:[eE][+-]?\d+)?\s*", args[1]):
                continue
            line = line_of(code, m.start())
            if len(args) > 2:
                raise LiftError(
                    f"line {line}: idt with {len(args)} arguments (an assert or a tolerance) and an "
                    "initial condition: OpenVAF with ngspice drops an integral's initial condition "
                    "after the operating point, and rramsim rewrites only idt(EXPR, IC); write "
                    "idt(EXPR, 0) + IC"
                )
            if not _constant(args[1], params):
                raise LiftError(
                    f"line {line}: idt(..., {_flat(args[1])}) has an initial condition that is not "
                    "constant (only parameters and numbers are): OpenVAF with ngspice drops an "
                    "integral's initial condition after the operating point, and rramsim can rewrite "
                    "only a constant one as idt(EXPR, 0) + IC"
                )
            comma = paren + 1 + len(args[0])
            edits.append((m.start(), m.start(), "("))
            edits.append((comma + 1, close + 1, _keep_lines(code[comma + 1 : close + 1], f" 0) + ({_flat(args[1])}))")))
            lines.append(line)
    if lines:
        rewrites.append(
            Rewrite(
                "idt-initial-condition",
                "idt",
                lines[0],
                (
                    f"idt(EXPR, IC) ({_lines(lines)}) written (idt(EXPR, 0) + (IC)): OpenVAF with ngspice starts an "
                    "integral from its initial condition at the operating point, but from 0 from the first time step on "
                    "(and throughout under uic)"
                ),
            )
        )
    return edits
