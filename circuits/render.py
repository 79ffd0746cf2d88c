"""The one renderer that puts parameters into decks.

Every number that reaches a netlist passes through :func:`render` (or :func:`number`):
it must be a known name and a finite real number — a Python int/float or a string such as
``"50n"`` or ``"1.2e-6"`` with an optional SPICE scale suffix. Strings of any other form,
NaN, inf, booleans and unknown names raise a ``ValueError`` naming the parameter, so no
user text ever reaches a deck verbatim (ngspice's control language can run shell commands).
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterable, Mapping

#: SPICE scale suffixes (case-insensitive, as ngspice reads them).
SUFFIXES = {
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
_NUMBER = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(meg|mil|[tgkmunpfa])?\s*$", re.IGNORECASE)


def parse_number(value: object, name: str) -> float:
    """``value`` as a finite float, or a ValueError naming ``name``."""
    if isinstance(value, bool):
        raise ValueError(f"parameter {name!r}: expected a number, got the boolean {value!r}")
    if isinstance(value, (int, float)):
        out = float(value)
    elif isinstance(value, str):
        m = _NUMBER.match(value)
        if not m:
            raise ValueError(
                f"parameter {name!r}: {value!r} is not a number (digits with an optional "
                f"SPICE suffix such as 50n, 1.2u, 3meg)"
            )
        out = float(m.group(1)) * SUFFIXES.get((m.group(2) or "").lower(), 1.0)
    else:
        try:
            out = float(value)  # numpy scalars
        except (TypeError, ValueError):
            raise ValueError(f"parameter {name!r}: expected a number, got {type(value).__name__}") from None
        if isinstance(value, (list, tuple, dict)):
            raise ValueError(f"parameter {name!r}: expected a number, got {type(value).__name__}")
    if not math.isfinite(out):
        raise ValueError(f"parameter {name!r} must be finite, got {value!r}")
    return out


def number(value: object, name: str) -> str:
    """Format a validated number for a deck (full precision, no suffix)."""
    return repr(parse_number(value, name))


def check_identifier(value: str, what: str) -> str:
    """A SPICE name (subcircuit, node): letters, digits and ``_``, starting with a letter."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,63}", value):
        raise ValueError(
            f"{what} must be a name of letters, digits and '_' starting with a letter "
            f"(at most 64 characters), got {value!r}"
        )
    return value


def render(template: str, params: Mapping[str, object], allowed: Iterable[str] | None = None) -> str:
    """Fill ``{name}`` fields of ``template`` with validated numbers.

    ``allowed`` lists the names a caller may set (default: the template's fields); a name
    outside it, or a field left unset, is a ValueError.
    """
    fields = {f for _, f, _, _ in string.Formatter().parse(template) if f}
    allowed = set(fields if allowed is None else allowed)
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(allowed))}")
    missing = sorted(fields - set(params))
    if missing:
        raise ValueError(f"parameter(s) {', '.join(missing)} not set")
    return template.format(**{k: number(v, k) for k, v in params.items() if k in fields})


def instance_params(params: Mapping[str, object], allowed: Iterable[str]) -> str:
    """``name=value`` pairs for a subcircuit instance line, validated."""
    allowed = set(allowed)
    out = []
    for key, value in params.items():
        if key not in allowed:
            raise ValueError(f"unknown parameter {key!r}; known: {', '.join(sorted(allowed))}")
        out.append(f"{key}={number(value, key)}")
    return " ".join(out)
