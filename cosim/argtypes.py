"""argparse types shared by the ``rramsim`` commands: clear messages, validated numbers."""

from __future__ import annotations

import argparse

import numpy as np


def targets(text: str) -> np.ndarray:
    from rramsim.circuits.render import parse_number

    try:
        if ":" in text:  # lo:hi:count, e.g. 10u:80u:8
            lo, hi, count = text.split(":")
            return np.linspace(parse_number(lo, "targets"), parse_number(hi, "targets"), int(count))
        return np.array([parse_number(t, "targets") for t in text.split(",")])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (use LO:HI:COUNT such as 10u:80u:8, or a comma list)") from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def number(text: str) -> float:
    from rramsim.circuits.render import parse_number

    try:
        return parse_number(text, "value")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
