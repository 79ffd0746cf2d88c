"""IR-drop solvers against scipy's sparse LU and against ngspice on the crossbar deck."""

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch

from rramsim.circuits.crossbar import column_vectors, crossbar_deck
from rramsim.models.irdrop import (
    TileSolver,
    apply_model,
    approx_transfer,
    nodal_matrix,
    programmed_model,
    truncate,
)


def _random(n, m, seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(5e-6, 150e-6, (n, m)), rng.uniform(-0.2, 0.2, n)


def _ngspice(g, v, r, cell="1R"):
    from rramsim.cosim.ngspice import Session

    out = Session.get().simulate(crossbar_deck(g, v, r, cell=cell), "op", column_vectors(g.shape[1]), name="crossbar")
    return np.array([out[k][0] for k in column_vectors(g.shape[1])])


@pytest.mark.parametrize("n,m", [(1, 1), (1, 5), (6, 1), (7, 9), (101, 3)])
def test_block_solver_equals_sparse_lu(n, m):
    g, v = _random(n, m, seed=n * 10 + m)
    T = TileSolver(g, 2.0).transfer()
    A, drive, sense = nodal_matrix(g, 2.0)
    b = np.zeros((A.shape[0], n))
    b[drive, np.arange(n)] = 1 / 2.0
    ref = spla.splu(A).solve(b)[sense] / 2.0
    assert np.allclose(T, ref, rtol=1e-10, atol=1e-18)


@pytest.mark.parametrize("gw,gc", [(1.0, 1e-4), (100.0, 1e-4), (1.0, 5.0)])
def test_chain_inverse_in_closed_form(gw, gc):
    from rramsim.models.irdrop import _chain_inverse

    C, R = 3, 64
    cells = torch.rand(C, R, dtype=torch.float64) * gc
    diag = cells + 2 * gw
    diag[:, 0] -= gw
    diag[:, -1] += gw / 5 - gw  # five segments to the sense node
    off = torch.ones(C, R - 1, dtype=torch.float64)
    K = torch.diag_embed(diag) - gw * (torch.diag_embed(off, 1) + torch.diag_embed(off, -1))
    ref = torch.linalg.inv(K)  # (gc = 5 S: a strongly damped chain, the exponentials' branch)
    assert float((_chain_inverse(diag, gw) - ref).abs().max() / ref.abs().max()) < 1e-12


def test_sense_injections_by_reciprocity():
    # column k's current per unit current across cell (i, j), against a sparse LU of the nodal matrix
    g, _ = _random(5, 4, seed=11)
    solver = TileSolver(g, 2.0)
    ur, uc = solver.sense_solve()
    U = (solver.gs * (uc - ur)).numpy()  # [C(j), C(k), R(i)]
    A, _, sense = nodal_matrix(g, 2.0)
    lu = spla.splu(A)
    R, C = g.shape
    for i, j in [(0, 0), (2, 3), (4, 1)]:
        b = np.zeros(A.shape[0])
        b[i * C + j], b[R * C + i * C + j] = -1.0, 1.0  # out of the row node, into the column node
        ref = lu.solve(b)[sense] / 2.0
        assert np.allclose(U[j, :, i], ref, rtol=1e-10, atol=1e-16)


def test_empty_bottom_rows_are_series_segments():
    # a tile whose last rows have no cells is its used rows with the column wires' segments lumped
    g, v = _random(12, 5, seed=4)
    g[7:] = 0.0
    full = TileSolver(g, 1.5).transfer()
    lumped = TileSolver(g[:7], 1.5, sense_segments=6).transfer()
    assert np.allclose(full[:, :7], lumped, rtol=1e-12, atol=1e-18) and not full[:, 7:].any()
    with pytest.raises(ValueError, match="sense_segments"):
        TileSolver(g, 1.5, sense_segments=0)


@pytest.mark.parametrize("size,r", [(32, 1.0), (64, 2.5)])
def test_exact_solver_matches_ngspice(size, r):
    g, v = _random(size, size, seed=size)
    spice = _ngspice(g, v, r)
    ours = TileSolver(g, r).currents(v[:, None])[:, 0]
    big = np.abs(spice) > 0.01 * np.abs(spice).max()
    assert np.all(np.abs(ours - spice)[big] / np.abs(spice)[big] < 5e-3)  # each column within 0.5%
    assert np.abs(ours - spice).max() / np.abs(spice).max() < 5e-3
    ideal = v @ g  # the wires matter at this size
    assert np.abs(ideal - spice).max() / np.abs(spice).max() > 5e-3


def test_zero_wire_limit_and_approximation():
    g, v = _random(16, 16, seed=1)
    ideal = v @ g
    exact = TileSolver(g, 1e-6).currents(v[:, None])[:, 0]
    assert np.allclose(exact, ideal, rtol=1e-6, atol=1e-15)
    r = 0.5
    exact = TileSolver(g, r).currents(v[:, None])[:, 0]
    approx = v @ approx_transfer(torch.tensor(g), r).numpy()
    err_approx = np.abs(approx - exact).max() / np.abs(exact).max()
    err_ideal = np.abs(ideal - exact).max() / np.abs(exact).max()
    assert err_approx < 0.2 * err_ideal


def test_nonlinear_iteration():
    g, v = _random(12, 10, seed=4)
    solver = TileSolver(g, 2.0)
    lin = np.zeros((12, 10, 3))
    lin[..., 0] = 1.0
    cur, it = solver.currents_nonlinear(v[:, None], lin)
    assert np.allclose(cur[:, 0], solver.currents(v[:, None])[:, 0], rtol=1e-9)
    nl = lin.copy()
    nl[..., 2] = 5.0  # superlinear cells carry more current
    cur_nl, it = solver.currents_nonlinear(np.abs(v)[:, None], nl, method="fixed-point")
    assert it > 1
    assert np.all(cur_nl[:, 0] > solver.currents(np.abs(v)[:, None])[:, 0])


def test_deck_rejects_bad_numbers():
    g, v = _random(3, 3, seed=0)
    bad = g.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="conductances"):
        crossbar_deck(bad, v, 1.0)
    with pytest.raises(ValueError, match="conductances"):
        crossbar_deck(-g, v, 1.0)
    with pytest.raises(ValueError, match="inputs"):
        crossbar_deck(g, v[:2], 1.0)
    with pytest.raises(ValueError, match="wire_resistance"):
        crossbar_deck(g, v, "1; shell rm -rf /")
    with pytest.raises(ValueError, match="wire_resistance"):
        crossbar_deck(g, v, float("inf"))
    with pytest.raises(ValueError, match="cell"):
        crossbar_deck(g, v, 1.0, cell="2R")


def test_deck_text_is_stable():
    deck = crossbar_deck([[1e-5, 2e-5]], [0.1], 2.0)
    assert deck.splitlines() == [
        "* rramsim crossbar 1x2 (1R)",
        ".options klu",
        "Vrow0 d0 0 dc 0.1",
        "Rd0 d0 r0_0 2.0",
        "Rr0_1 r0_0 r0_1 2.0",
        "Rs0 c0_0 s0 2.0",
        "Vcol0 s0 0 dc 0",
        "Rs1 c0_1 s1 2.0",
        "Vcol1 s1 0 dc 0",
        f"Rx0_0 r0_0 c0_0 {1 / 1e-5!r}",
        f"Rx0_1 r0_1 c0_1 {1 / 2e-5!r}",
        ".end",
    ]


def test_1t1r_deck_runs_and_limits_current():
    g, v = _random(4, 4, seed=2)
    v = np.abs(v)
    i_1r = _ngspice(g, v, 1.0)
    i_1t1r = _ngspice(g, v, 1.0, cell="1T1R")
    assert np.all(i_1t1r > 0) and np.all(i_1t1r < i_1r)


def test_approximation_accuracy_at_32x32():
    g, v = _random(32, 32, seed=8)
    v = np.abs(v)
    exact = TileSolver(g, 1.0).currents(v[:, None])[:, 0]
    approx = v @ approx_transfer(torch.tensor(g), 1.0).numpy()
    assert np.abs(approx - exact).max() / np.abs(exact).max() < 0.005
    assert np.abs(v @ g - exact).max() / np.abs(exact).max() > 0.03  # while the ideal model is off


@pytest.mark.slow
def test_exact_solver_matches_ngspice_128():
    g, v = _random(128, 128, seed=128)
    spice = _ngspice(g, v, 1.0)
    ours = TileSolver(g, 1.0).currents(v[:, None])[:, 0]
    assert np.abs(ours - spice).max() / np.abs(spice).max() < 5e-3


def _cubic_cells(n, seed):
    rng = np.random.default_rng(seed)
    g = rng.uniform(5e-6, 150e-6, (n, n))
    coef = np.stack(
        [rng.uniform(0.9, 0.95, (n, n)), rng.uniform(-0.02, 0.0, (n, n)), rng.uniform(1.4, 2.4, (n, n))], axis=-1
    )  # the default table's I-V spread
    return g, coef


def _probes(R, seed):
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [
            rng.uniform(0, 0.2, (R, 12)),
            rng.uniform(-0.2, 0.2, (R, 12)),
            rng.uniform(0, 0.2, (R, 12)) * (rng.random((R, 12)) < 0.2),
        ],
        axis=1,
    )


def test_per_programming_model_reports_an_honest_error():
    g, coef = _cubic_cells(32, seed=3)
    solver = TileSolver(g, 1.0)
    model = programmed_model(g, 1.0, coef, 0.2)
    bound = model["error"]
    assert 1e-6 < bound < 1e-3  # measured at build time, small, not zero
    assert bound == pytest.approx(solver.model_error(model, coef, 0.2), rel=1e-3)  # the same on the full network
    v = _probes(32, seed=7)  # fresh inputs, not the probes
    ref, it = solver.currents_nonlinear(v, coef, tol=1e-11, method="fixed-point")
    assert it > 1
    full, _ = solver.currents_nonlinear(np.full((32, 1), 0.2), coef, tol=1e-11, method="fixed-point")
    err = np.abs(apply_model(model, v) - ref).max() / np.abs(full).max()
    assert err <= 1.5 * bound  # the reported figure holds on other inputs
    plain = programmed_model(g, 1.0, coef, 0.2, rank=0)  # without the cross term
    err0 = np.abs(apply_model(plain, v) - ref).max() / np.abs(full).max()
    assert err < 0.2 * err0 and plain["error"] > 5 * bound  # the cross term matters and its error is seen
    ohmic = np.abs(solver.currents(v) - ref).max() / np.abs(full).max()
    assert err < 0.01 * ohmic  # the cubic matters and is captured
    off = dict(model, W=model["W"] * np.array([1.002, 1.0, 1.0])[:, None, None])  # a model 0.2% off
    assert 1.5e-3 < solver.model_error(off, coef, 0.2) < 2.5e-3  # is seen as such


def test_per_programming_model_on_a_tile_with_empty_rows():
    # built on the used rows with lumped segments; its error holds on the full (padded) network
    g, coef = _cubic_cells(40, seed=8)
    g[25:] = 0.0
    coef[25:] = [1.0, 0.0, 0.0]
    model = programmed_model(g, 1.0, coef, 0.2)
    assert model["W"].shape == (3, 40, 40) and not model["W"][:, :, 25:].any() and not model["B"][:, :, 25:].any()
    assert model["error"] == pytest.approx(TileSolver(g, 1.0).model_error(model, coef, 0.2), rel=1e-3)
    assert 1e-6 < model["error"] < 1e-3


def test_per_programming_build_in_float32_matches_float64(monkeypatch):
    import rramsim.models.irdrop as irdrop

    g, coef = _cubic_cells(48, seed=9)
    fast = programmed_model(g, 1.0, coef, 0.2, probes=0)
    monkeypatch.setattr(irdrop, "BUILD_DTYPE", torch.float64)
    ref = programmed_model(g, 1.0, coef, 0.2, probes=0)
    v = np.concatenate([_probes(48, seed=2), np.full((48, 1), 0.2)], axis=1)
    full = np.abs(apply_model(ref, v)[:, -1]).max()
    assert np.abs(apply_model(fast, v) - apply_model(ref, v)).max() < 1e-6 * full  # far below the model's error


def test_converged_reference_is_the_float64_fixed_point():
    g, coef = _cubic_cells(32, seed=6)
    solver = TileSolver(g, 1.0)
    v = _probes(32, seed=3)
    ref, _ = solver.currents_nonlinear(v, coef, tol=1e-12, method="fixed-point")
    steps: list = []
    ours = solver.converged_currents(v, coef, history=steps)
    assert 2 <= len(steps) <= 5 and steps[-1] < steps[0]  # float32 solves, float64 residual: it converges
    assert np.abs(ours - ref).max() < 1e-7 * np.abs(ref).max()
    tight = solver.converged_currents(v, coef, tol=1e-12)
    assert np.abs(tight - ref).max() < 1e-11 * np.abs(ref).max()  # float64 accuracy, not float32's


def test_per_programming_model_is_exact_for_linear_cells():
    g, _ = _cubic_cells(24, seed=5)
    solver = TileSolver(g, 2.0)
    lin = np.zeros((24, 24, 3))
    lin[..., 0] = 1.0
    model = solver.programmed_model(lin, 0.2)
    v = np.random.default_rng(1).uniform(-0.2, 0.2, (24, 6))
    assert np.allclose(apply_model(model, v), solver.currents(v), rtol=1e-9, atol=1e-18)
    assert np.allclose(model["W"][0], solver.transfer(), rtol=1e-9, atol=1e-18)
    assert not model["W"][1:].any() and not model["Mv2"].any() and not model["cubic"].any()
    assert model["error"] < 1e-9
    with pytest.raises(ValueError, match="coef"):
        solver.programmed_model(lin[:, :3], 0.2)
    with pytest.raises(ValueError, match="rank"):
        solver.programmed_model(lin, 0.2, rank=-1)


def _engine_nets(kws, **extra):
    from rramsim.devices import DeviceTable
    from rramsim.models import convert_to_analog
    from pathlib import Path

    table = DeviceTable.load(Path(__file__).resolve().parents[1] / "devices" / "data" / "default.h5")
    torch.manual_seed(0)
    lin = torch.nn.Linear(40, 6)
    from rramsim.models import CrossbarConfig

    base = dict(
        tile_rows=32,
        tile_cols=32,
        nonlinear_iv=True,
        read_noise="off",
        dac_bits=None,
        adc_bits=None,
        ideal_programming=True,
        wire_resistance=2.0,
        **extra,
    )
    return {k: convert_to_analog(lin, table, CrossbarConfig(**base, **kw), seed=1).eval() for k, kw in kws}


PER_PROGRAMMING = {"ir_drop": "exact", "ir_drop_solver": "per_programming"}
PER_VECTOR = {"ir_drop": "exact", "ir_drop_solver": "per_vector"}


def test_engine_per_programming_solver_follows_the_exact_one():
    nets = _engine_nets((("off", {"ir_drop": "off"}), ("per_vector", PER_VECTOR), ("per_programming", PER_PROGRAMMING)))
    x = torch.rand(16, 40)
    with torch.no_grad():
        y = {k: m(x) for k, m in nets.items()}
    engine = nets["per_programming"].engine
    bound = engine.ir_drop_error
    assert bound is not None and 0 < bound < 1e-3 and not engine.ir_drop_fallback
    assert set(engine.ir_drop_tile_errors) == {0, 1} and max(engine.ir_drop_tile_errors.values()) == bound
    assert not engine.compiled.solvers and engine.compiled.cross is not None  # no per-vector solve
    assert nets["per_vector"].engine.ir_drop_error is None
    scale = y["per_vector"].abs().max()
    err = float((y["per_programming"] - y["per_vector"]).abs().max() / scale)
    assert err < 0.02 * float((y["off"] - y["per_vector"]).abs().max() / scale)  # the IR drop is modelled
    assert err < 1e-3
    from rramsim.models import CrossbarConfig

    with pytest.raises(ValueError, match="ir_drop_solver"):
        CrossbarConfig(ir_drop_solver="newton")


def test_engine_builds_tiles_on_threads_with_the_same_result(monkeypatch):
    import rramsim.models.tile as tile

    nets = {}
    for n in (1, 2):
        monkeypatch.setattr(tile, "_block_threads", lambda n=n: n)
        nets[n] = _engine_nets((("pp", PER_PROGRAMMING),))["pp"].engine
    a, b = nets[1], nets[2]
    assert a.ir_drop_tile_errors == b.ir_drop_tile_errors
    assert all(torch.equal(x, y) for x, y in zip(a.compiled.mats, b.compiled.mats))
    assert all(torch.equal(a.compiled.cross[k], b.compiled.cross[k]) for k in ("zv", "mv2", "poly"))


def test_engine_falls_back_to_the_per_vector_solve_over_the_tolerance(monkeypatch):
    import rramsim.models.tile as tile

    monkeypatch.setattr(tile, "MODEL_TOL", 1e-7)  # every tile's measured error is above it
    with pytest.warns(RuntimeWarning, match="per-programming IR-drop model is .* off"):
        nets = _engine_nets((("per_vector", PER_VECTOR), ("per_programming", PER_PROGRAMMING)))
    engine = nets["per_programming"].engine
    assert engine.ir_drop_fallback and engine.ir_drop_error > 1e-7
    assert engine.compiled.solvers and engine.compiled.cross is None
    x = torch.rand(8, 40)
    with torch.no_grad():
        assert torch.equal(nets["per_programming"](x), nets["per_vector"](x))


def test_a_higher_rank_writes_the_same_model():
    rng = np.random.default_rng(3)
    g = rng.uniform(10e-6, 80e-6, (24, 12))
    coef = np.zeros((24, 12, 3))
    coef[..., 0], coef[..., 1], coef[..., 2] = 0.93, -0.01, 1.8
    model = programmed_model(g, 4.0, coef, 0.2, probes=0)
    v = rng.uniform(-0.2, 0.2, (24, 5))
    from rramsim.models import irdrop

    wide = irdrop.raise_rank(model, 3)
    assert wide["rank"] == 3 and wide["Mv2"].shape[0] == 3 and wide["cubic"].shape[:3] == (3, 3, 3)
    np.testing.assert_allclose(apply_model(wide, v), apply_model(model, v), rtol=0, atol=1e-18)
    with pytest.raises(ValueError, match="below"):
        irdrop.raise_rank(wide, 1)


def test_a_model_cut_to_fewer_forms_is_the_model_built_with_them():
    """One build with two input forms gives the one-form model too (the forms are the leading
    singular vectors either way) and the models with the leading form's functionals projected
    onto the forms, each with its error measured against the same reference."""
    g, coef = _cubic_cells(24, seed=7)
    v = np.random.default_rng(2).uniform(-0.2, 0.2, (24, 5))
    two = programmed_model(g, 3.0, coef, 0.2, rank=2)
    one = programmed_model(g, 3.0, coef, 0.2, rank=1)
    cut = truncate(two, 1)
    assert cut["rank"] == 1 and cut["error"] == two["errors"][(1, False)]
    np.testing.assert_allclose(cut["error"], one["error"], rtol=1e-6)
    scale = np.abs(apply_model(one, v)).max()
    np.testing.assert_allclose(apply_model(cut, v), apply_model(one, v), rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(apply_model(truncate(two, 2), v), apply_model(two, v), rtol=0, atol=1e-12 * scale)
    assert set(two["errors"]) == {(k, p) for k in range(3) for p in (False, True)}
    assert two["errors"][(0, False)] > two["errors"][(1, False)] > two["errors"][(2, False)]
    flat = truncate(two, 2, projected=True)  # no functionals of v beyond the forms
    assert flat["Mv"].shape[0] == 0 and flat["error"] == two["errors"][(2, True)]
    assert set(flat["errors"]) == {(k, True) for k in range(3)}  # the cuts still reachable from it
    assert two["errors"][(2, True)] < two["errors"][(1, True)]
    with pytest.raises(ValueError, match="truncate"):
        truncate(one, 2)
    # two fits of the forms (column k's own drop; blended with its row's mean): each cut runs the better
    assert len(two["fits"]) == 2
    for kp, e in two["errors"].items():
        assert e == min(f["errors"][kp] for f in two["fits"]) == truncate(two, *kp)["error"]


def test_a_layer_over_the_tolerance_with_one_input_form_gets_two_before_falling_back():
    """8 ohm wires on 48x24 tiles: one input form per column leaves 0.14-0.15% of full scale on
    the probes, two 0.05-0.06%; the layer keeps the per-programming model at rank 2 (no
    fallback) and follows the per-vector solve. At 12 ohm the projected two-form cut leaves
    0.12% and the one with the leading form's functionals kept 0.08%: the layer runs that."""
    from rramsim.devices import load_default_table
    from rramsim.models import CrossbarConfig, irdrop
    from rramsim.models.layers import AnalogLinear

    table = load_default_table()
    torch.manual_seed(2)
    lin = torch.nn.Linear(48, 12)
    kw = dict(tile_rows=48, tile_cols=24, wire_resistance=8.0, read_noise="off", dac_bits=None, adc_bits=None)
    x = torch.rand(6, 48)
    with torch.no_grad():
        model = AnalogLinear.from_linear(lin, table, CrossbarConfig(**kw), seed=4)
        per_vector = AnalogLinear.from_linear(lin, table, CrossbarConfig(ir_drop_solver="per_vector", **kw), seed=4)
        y, ref = model(x), per_vector(x)
    engine = model.engine
    assert engine.compiled.cross["rank"] == irdrop.ESCALATED_RANK and not engine.ir_drop_fallback
    assert engine.ir_drop_error < irdrop.MODEL_TOL
    assert float((y - ref).abs().max() / ref.abs().max()) < 2e-3
    kw["wire_resistance"] = 12.0
    with torch.no_grad():
        model = AnalogLinear.from_linear(lin, table, CrossbarConfig(**kw), seed=4)
        per_vector = AnalogLinear.from_linear(lin, table, CrossbarConfig(ir_drop_solver="per_vector", **kw), seed=4)
        y, ref = model(x), per_vector(x)
    cross = model.engine.compiled.cross
    assert (cross["rank"], cross["nv"]) == (2, 2) and model.engine.ir_drop_error < irdrop.MODEL_TOL
    assert float((y - ref).abs().max() / ref.abs().max()) < 2e-3


def test_a_tile_of_one_row_is_not_rebuilt_with_more_forms_than_rows(monkeypatch):
    """With a tolerance nothing meets, every tile is built with two input forms except a one-row
    tile (one form is all it has), and the layer falls back to the per-vector solve, loudly."""
    import rramsim.models.tile as tile
    from rramsim.devices import load_default_table
    from rramsim.models import CrossbarConfig
    from rramsim.models.layers import AnalogLinear

    monkeypatch.setattr(tile, "MODEL_TOL", 1e-12)
    torch.manual_seed(0)
    cfg = CrossbarConfig(tile_rows=48, tile_cols=8, read_noise="off", wire_resistance=5.0)  # 49 rows: 48 + 1
    with pytest.warns(RuntimeWarning, match="per-vector solve"):
        layer = AnalogLinear.from_linear(torch.nn.Linear(49, 4), load_default_table(), cfg, seed=0)
    assert layer.engine.ir_drop_fallback and layer.engine.compiled.cross is None
    with torch.no_grad():
        assert torch.isfinite(layer(torch.rand(3, 49))).all()


def test_a_converted_layer_that_falls_back_is_named_by_its_path(monkeypatch):
    import rramsim.models.tile as tile
    from rramsim.devices import load_default_table
    from rramsim.models import CrossbarConfig, convert_to_analog

    monkeypatch.setattr(tile, "MODEL_TOL", 1e-12)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(12, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
    cfg = CrossbarConfig(tile_rows=16, tile_cols=16, read_noise="off", wire_resistance=5.0)
    with pytest.warns(RuntimeWarning, match=r"^2 \(AnalogLinear\): the per-programming IR-drop model"):
        convert_to_analog(net, load_default_table(), cfg, seed=0)


def test_the_layer_runs_the_cheapest_cut_within_the_tolerance():
    from rramsim.models.irdrop import cheapest_cut

    def tile(errors, rank=2):
        return {"rank": rank, "errors": {(k, p): e for (k, p), e in errors.items()}}

    fine = tile({(1, True): 5e-4, (1, False): 4e-4, (2, True): 2e-4, (2, False): 1e-4})
    assert cheapest_cut([fine], 1e-3) == (1, True)  # two functionals per column
    kept = tile({(1, True): 2e-3, (1, False): 9e-4, (2, True): 8e-4, (2, False): 1e-4})
    assert cheapest_cut([kept], 1e-3) == (1, False)  # four, one form before two
    assert cheapest_cut([fine, kept], 1e-3) == (1, False)  # every tile within
    two = tile({(1, True): 2e-3, (1, False): 2e-3, (2, True): 1.5e-3, (2, False): 5e-4})
    assert cheapest_cut([fine, two], 1e-3) == (2, False)
    row = tile({(1, True): 1e-4, (1, False): 1e-4}, rank=1)  # a one-row tile: cut to its own form
    assert cheapest_cut([row, two], 1e-3) == (2, False)
    none = tile({(1, True): 3e-3, (1, False): 4e-3, (2, True): 2e-3, (2, False): 2.5e-3})
    assert cheapest_cut([none], 1e-3) == (2, True)  # over everywhere: the most accurate


@pytest.mark.parametrize("mapping", ["bit_sliced", "offset"])
@pytest.mark.parametrize("cut", [(1, True), (1, False), (2, True), (2, False)])
def test_every_cut_runs_a_grouped_convolution_like_the_exact_solve(monkeypatch, cut, mapping):
    """Each cut of the per-programming model in the engine's layout (groups, several row and
    column tiles, two slices of differential pairs or one offset cell, an ADC) follows the
    per-vector solve."""
    import rramsim.models.tile as tile
    from rramsim.devices import load_default_table
    from rramsim.models import CrossbarConfig
    from rramsim.models.layers import AnalogConv2d

    monkeypatch.setattr(tile, "cheapest_cut", lambda models, tol: cut)
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(6, 8, 3, groups=2, padding=1)
    kw = dict(
        tile_rows=16,
        tile_cols=8,
        mapping=mapping,
        cells_per_weight=2,
        read_noise="off",
        ideal_programming=True,
        dac_bits=None,
        adc_bits=12,
        wire_resistance=3.0,
    )
    table = load_default_table()
    x = torch.rand(3, 6, 5, 5)
    with torch.no_grad():
        model = AnalogConv2d.from_conv(conv, table, CrossbarConfig(**kw), seed=2)
        ref = AnalogConv2d.from_conv(conv, table, CrossbarConfig(ir_drop_solver="per_vector", **kw), seed=2)
        off = AnalogConv2d.from_conv(conv, table, CrossbarConfig(ir_drop="off", **kw), seed=2)
        y, y_ref, y_off = model(x), ref(x), off(x)
    cross = model.engine.compiled.cross
    assert cross["rank"] == cut[0] and cross["nv"] == (0 if cut[1] else 2)
    scale = float(y_ref.abs().max())
    err = float((y - y_ref).abs().max()) / scale
    assert err < 3e-3 and err < 0.1 * float((y_off - y_ref).abs().max()) / scale


def test_a_layer_may_run_without_a_cross_term_when_the_tolerance_allows(monkeypatch):
    """With CROSS_RANK = 0 and nearly ideal wires, the cheapest cut within the tolerance is the
    inputs' polynomial alone: the layer runs it (no cross term) and follows the exact solve."""
    from rramsim.devices import load_default_table
    from rramsim.models import CrossbarConfig, irdrop
    from rramsim.models.layers import AnalogLinear

    monkeypatch.setattr(irdrop, "CROSS_RANK", 0)
    torch.manual_seed(3)
    lin = torch.nn.Linear(8, 4)
    kw = dict(read_noise="off", dac_bits=None, adc_bits=None, ideal_programming=True, wire_resistance=0.01)
    x = torch.rand(5, 8)
    with torch.no_grad():
        model = AnalogLinear.from_linear(lin, load_default_table(), CrossbarConfig(**kw), seed=0)
        ref = AnalogLinear.from_linear(
            lin, load_default_table(), CrossbarConfig(ir_drop_solver="per_vector", **kw), seed=0
        )
        y, y_ref = model(x), ref(x)
    engine = model.engine
    assert engine.compiled.cross is None and not engine.compiled.solvers and engine.ir_drop_error < 1e-4
    assert float((y - y_ref).abs().max() / y_ref.abs().max()) < 1e-4
    with pytest.raises(ValueError, match="rank"):
        irdrop.cross_term(np.zeros((0, 1)), np.zeros((0, 1)), np.zeros((0, 1)), None, None, 0)
