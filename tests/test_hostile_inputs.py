"""Property-based tests: no input smuggles anything into a deck; no file crashes the reader."""

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rramsim.circuits.render import SUFFIXES, parse_number, render
from rramsim.cosim.cli import build_parser
from rramsim.devices import DeviceTable, TableError

TEMPLATE = "Vx a 0 dc {v}\nR1 a 0 {r}"
SAFE = set("0123456789.eE+-")


@given(
    st.one_of(
        st.text(), st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.booleans(), st.none(), st.binary()
    )
)
@settings(max_examples=400, deadline=None)
def test_renderer_emits_only_plain_numbers(value):
    try:
        deck = render(TEMPLATE, {"v": value, "r": 1e3})
    except ValueError as exc:
        assert "'v'" in str(exc)
        return
    line = deck.splitlines()[0]
    number = line.removeprefix("Vx a 0 dc ")
    assert set(number) <= SAFE and np.isfinite(float(number))
    assert deck.count("\n") == 1


@given(st.text(alphabet=st.characters(), min_size=0, max_size=12), st.sampled_from(sorted(SUFFIXES) + [""]))
@settings(max_examples=300, deadline=None)
def test_parse_number_never_accepts_control_text(prefix, suffix):
    text = prefix + suffix
    try:
        value = parse_number(text, "x")
    except ValueError:
        return
    assert np.isfinite(value)
    assert not any(c in text for c in "\n\r;{}()$`|&<>")


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.floats(), max_size=3))
@settings(max_examples=200, deadline=None)
def test_unknown_names_never_pass(params):
    params = {k: v for k, v in params.items() if k not in ("v", "r")}
    if not params:
        return
    with pytest.raises(ValueError):
        render(TEMPLATE, {"v": 1.0, "r": 1.0, **params})


@pytest.fixture(scope="module")
def table_bytes(small_table, tmp_path_factory):
    return small_table.save(tmp_path_factory.mktemp("h") / "t.h5").read_bytes()


@given(data=st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_reader_on_random_damage_only_ever_raises_table_error(table_bytes, tmp_path, data):
    raw = bytearray(table_bytes)
    kind = data.draw(st.sampled_from(["flip", "truncate", "random"]))
    if kind == "flip":
        for pos in data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=8)):
            raw[pos] ^= data.draw(st.integers(1, 255))
    elif kind == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        raw = bytearray(data.draw(st.binary(min_size=0, max_size=4096)))
    path = tmp_path / f"d{data.draw(st.integers(0, 10**9))}.h5"
    path.write_bytes(bytes(raw))
    try:
        table = DeviceTable.load(path)
    except TableError:
        return
    table.validate()  # a flip in padding may leave a valid table: it must then be a valid one


@given(
    st.sampled_from(["programming/g_final", "programming/pulses", "read/g", "iv/current", "programming/targets"]),
    st.sampled_from(["scalar", "string", "shape", "nan"]),
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_wrong_types_and_shapes_are_table_errors(table_bytes, tmp_path, name, kind):
    path = tmp_path / f"{name.replace('/', '_')}_{kind}.h5"
    path.write_bytes(table_bytes)
    with h5py.File(path, "a") as f:
        old = f[name][()]
        del f[name]
        if kind == "scalar":
            f[name] = 1.0
        elif kind == "string":
            f[name] = "hello"
        elif kind == "shape":
            f[name] = np.zeros(tuple(s + 1 for s in np.shape(old)) or (2,))
        else:
            f[name] = np.full(np.shape(old), np.nan)
    with pytest.raises(TableError):
        DeviceTable.load(path)


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12), max_size=6))
@settings(max_examples=150, deadline=None)
def test_cli_argument_parsing_never_crashes(argv):
    parser = build_parser()
    try:
        parser.parse_args(["characterize", *argv, "-o", "x.h5"])
    except SystemExit as exc:  # argparse refuses with exit 2 and a message
        assert exc.code in (0, 2)
