import math

import pytest

from rramsim.circuits.compact_model import rram_subckt
from rramsim.circuits.render import instance_params, parse_number, render
from rramsim.devices import CompactModel


@pytest.mark.parametrize(
    "text,value",
    [
        ("50n", 50e-9),
        ("1.2u", 1.2e-6),
        ("3meg", 3e6),
        ("-0.5", -0.5),
        ("2.5e-3", 2.5e-3),
        (" 7K ", 7e3),
        (4, 4.0),
        (1.5, 1.5),
    ],
)
def test_numbers_and_suffixes(text, value):
    assert math.isclose(parse_number(text, "x"), value, rel_tol=1e-12)


@pytest.mark.parametrize(
    "bad",
    [
        "1\n.control",
        "1 ; shell rm -rf /",
        "abc",
        "",
        "1.2.3",
        "1e5x",
        "nan",
        "inf",
        float("nan"),
        float("inf"),
        True,
        None,
        [1.0],
        "{x}",
        "1)\n.endc",
    ],
)
def test_rejects_non_numbers(bad):
    with pytest.raises(ValueError, match="'pw'"):
        parse_number(bad, "pw")


def test_render_rejects_unknown_and_missing_names():
    with pytest.raises(ValueError, match="unknown parameter.*'evil'"):
        render("R1 a b {r}", {"r": 1e3, "evil": 1})
    with pytest.raises(ValueError, match="not set"):
        render("R1 a b {r} {c}", {"r": 1e3})
    with pytest.raises(ValueError, match="'v'"):
        render("V1 a 0 dc {v}", {"v": "1\n.control\nshell echo pwned\n.endc"})
    assert render("R1 a b {r}", {"r": "2k"}) == "R1 a b 2000.0"


def test_instance_params_and_model_reject_injection():
    with pytest.raises(ValueError, match="unknown parameter 'i0 x'"):
        instance_params({"i0 x": 1.0}, ["i0"])
    with pytest.raises(ValueError, match="i0"):
        rram_subckt(dict(CompactModel().params(), i0="1e-4\n.control"))
    with pytest.raises(ValueError, match="finite positive"):
        CompactModel(i0=float("nan"))
    deck = rram_subckt(CompactModel().params())
    assert ".control" not in deck and "shell" not in deck
