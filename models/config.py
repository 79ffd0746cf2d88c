"""CrossbarConfig: every knob of the simulated crossbar hardware, with defaults.

A plain dataclass: override field by field (``CrossbarConfig(adc_bits=6)``) or with
:meth:`CrossbarConfig.replace`. Every field is validated on construction; a bad value is
a ``ValueError`` that names the field and says what is allowed.

Defaults follow the ISAAC baseline (docs/DESIGN.md, "Reference numbers") where it gives one (128 x 128 tiles,
100 ns cycles, ADC 1.67 pJ per 8-bit conversion, 1-bit DAC 0.42 pJ).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

from .energy import ADC_ENERGY_8BIT, DAC_ENERGY_1BIT

MAPPINGS = ("differential", "offset", "bit_sliced")
IR_DROP_MODES = ("off", "exact", "approx")
IR_DROP_SOLVERS = ("per_vector", "per_programming")
WEIGHT_SCALINGS = ("layer", "column")
PARALLELISM = ("row", "cell")
READ_NOISE_MODES = ("per_read", "per_forward", "off")


@dataclass
class CrossbarConfig:
    """Hardware of the crossbars an analog layer runs on.

    Tiles and mapping
        ``tile_rows`` x ``tile_cols``: physical cells of one crossbar (inputs x columns).
        ``mapping``: how a weight becomes conductances: ``"differential"`` (a pair of cells,
        G+ - G-), ``"offset"`` (one cell around a mid-range offset subtracted before the
        ADC), ``"bit_sliced"`` (``cells_per_weight`` differential slices of
        ``bits_per_cell`` bits each), or a :class:`~rramsim.models.mapping.WeightMapping`
        subclass of one's own (the class or its ``name``; the config keeps the name).
        ``weight_scaling``: ``"layer"`` (one max|w| per layer) or ``"column"`` (one per output).
    Periphery
        ``dac_bits`` input resolution (``None``: ideal), ``bit_serial``: stream the input
        bits one per cycle (1-bit DAC, ISAAC style) instead of one multi-bit DAC cycle.
        ``adc_bits`` (``None``: ideal), ``adc_range``: full scale of each tile column's ADC
        as a fraction of that column's worst-case current (all rows at full voltage);
        signals beyond it clip.
    Physics
        ``read_voltage`` (V) at full-scale input; ``wire_resistance`` (ohm per segment
        between neighbouring cells, rows and columns); ``ir_drop``: ``"exact"`` (default: the
        nodal solution of the tile network), ``"approx"`` (first-order correction) or ``"off"``;
        ``nonlinear_iv``: the table's I-V curves (default) instead of Ohm's law at each cell's
        read conductance (a table without I-V data has Ohmic cells either way, with a warning).
        ``ir_drop_solver`` (exact IR drop with nonlinear cells): ``"per_programming"``
        (default: a model fixed at programming, a polynomial of each input plus a cross term of
        one input form per column for the drop the other rows cause, two where one is over
        0.1%; LeNet-5's forward costs ~4x the forward without IR drop) or ``"per_vector"``
        (every input vector's cell voltages from the chord network, ~0.01% of the converged
        nodal solution, slow for convolutions: 55-100x). The per-programming model's error
        against the exact solve is measured on probe vectors when it is built (uniform, sparse,
        all rows at plus and minus full scale, full scale in two blocks of opposite sign) and
        kept in ``TileEngine.ir_drop_error`` (of the tile's full-scale current; ~0.01-0.05% at
        32x32 and 64x64, up to ~0.1% at 128 rows with 1 ohm/segment); a tile over 0.1% is built again with two input forms
        per column, and a layer still over it warns and uses the per-vector solve. The
        per-vector solve draws ``read_noise="per_forward"`` per read (per input vector),
        which ``rramsim evaluate`` names. Building it costs ~0.4-0.5 s of CPU per 128x128
        tile, again for a rebuild (LeNet-5: ~4.6 s).
        A layer that fills part of a tile uses the rows nearest the sense amplifiers and the
        columns nearest the drivers (the wire beyond is open-ended). The defaults are the
        realistic case, checked against ngspice of whole arrays (``rramsim validate array``);
        :meth:`CrossbarConfig.ohmic` gives the fast idealization (Ohmic cells, no IR drop:
        6-23% off ngspice at 8x8-64x64).
        ``stuck_on``/``stuck_off``: extra stuck-at-fault rates (probability per cell) on
        top of the cells the table says did not converge. ``ideal_programming``: every cell
        gets exactly its level's target conductance (no programming spread, no stuck cells,
        ``stuck_on``/``stuck_off`` ignored; the programming cost is still sampled from the
        table): with an ideal periphery this isolates the mapping's own error. ``drift_time`` (s after
        programming; 0 = none). Without a retention group in the table drift follows
        G(t) = G(t0) (t/t0)^-nu with ``drift_nu`` +- ``drift_nu_std`` and t0 = ``drift_t0``.
        ``read_noise``: the table's read noise, drawn on every forward: ``"per_forward"``
        (default: one draw per cell per forward pass, shared by the samples of the batch,
        like a weight-noise model; same statistics per sample, ~2x cheaper) or
        ``"per_read"`` (an independent draw per cell and per input vector, added as its
        exact Gaussian sum at each output; the most faithful) or ``"off"``.
    System and cost
        ``n_crossbars`` available (``None``: as many as needed); ``cycle_time`` of one MVM
        cycle (s); ``dac_energy`` (J per 1-bit conversion, multi-bit scales with bits);
        ``adc_energy`` (J per 8-bit conversion, scales by 2^(bits-8));
        ``program_parallelism``: how the cells of one tile are written: ``"row"`` (all cells
        of a row together, each column with its own write-verify loop; the row takes its
        slowest cell) or ``"cell"`` (one cell at a time: one write-verify circuit per tile,
        the conventional 1T1R scheme). ``parallel_tile_writes``: tiles are written at the
        same time, each by its own periphery (``True``) or one after another (``False``).
    """

    tile_rows: int = 128
    tile_cols: int = 128
    mapping: str | type = "differential"
    cells_per_weight: int = 4
    bits_per_cell: int = 2
    weight_scaling: str = "column"
    dac_bits: int | None = 8
    bit_serial: bool = False
    adc_bits: int | None = 8
    adc_range: float = 0.5
    read_voltage: float = 0.2
    wire_resistance: float = 1.0
    ir_drop: str = "exact"
    nonlinear_iv: bool = True
    ir_drop_solver: str = "per_programming"
    read_noise: str = "per_forward"
    stuck_on: float = 0.0
    stuck_off: float = 0.0
    ideal_programming: bool = False
    drift_time: float = 0.0
    drift_nu: float = 0.005
    drift_nu_std: float = 0.002
    drift_t0: float = 1.0
    n_crossbars: int | None = None
    cycle_time: float = 100e-9
    dac_energy: float = DAC_ENERGY_1BIT
    adc_energy: float = ADC_ENERGY_8BIT
    program_parallelism: str = "row"
    parallel_tile_writes: bool = True

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        for name in ("tile_rows", "tile_cols", "cells_per_weight", "bits_per_cell"):
            _positive_int(self, name)
        for name in ("dac_bits", "adc_bits"):
            if getattr(self, name) is not None:
                _positive_int(self, name, upper=24)
        if self.n_crossbars is not None:
            _positive_int(self, "n_crossbars")
        from rramsim.models.mapping import mapping_class

        mapping = mapping_class(self.mapping)  # a mapping class, or the name of one: kept as its name
        if self.mapping != mapping.name:
            self.mapping = mapping.name
        _choice(self, "ir_drop", IR_DROP_MODES)
        _choice(self, "ir_drop_solver", IR_DROP_SOLVERS)
        _choice(self, "weight_scaling", WEIGHT_SCALINGS)
        _choice(self, "program_parallelism", PARALLELISM)
        _choice(self, "read_noise", READ_NOISE_MODES)
        for name in ("bit_serial", "nonlinear_iv", "parallel_tile_writes", "ideal_programming"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"CrossbarConfig.{name} must be True or False, got {getattr(self, name)!r}")
        for name in ("adc_range", "read_voltage", "cycle_time", "drift_t0"):
            _finite(self, name, low=0.0, strict=True)
        for name in ("wire_resistance", "drift_time", "drift_nu", "drift_nu_std", "dac_energy", "adc_energy"):
            _finite(self, name, low=0.0)
        for name in ("stuck_on", "stuck_off"):
            _finite(self, name, low=0.0)
            if getattr(self, name) > 1:
                raise ValueError(f"CrossbarConfig.{name} is a probability in [0, 1], got {getattr(self, name)!r}")
        if self.stuck_on + self.stuck_off > 1:
            raise ValueError("CrossbarConfig.stuck_on + stuck_off must not exceed 1")
        if self.ir_drop != "off" and self.wire_resistance <= 0:
            raise ValueError(
                f"CrossbarConfig.wire_resistance must be > 0 when ir_drop={self.ir_drop!r} (or set ir_drop='off')"
            )
        if self.bit_serial and self.dac_bits is None:
            raise ValueError("CrossbarConfig.bit_serial needs dac_bits (the number of streamed input bits)")
        mapping.check_config(self)  # the mapping class's own limits (bit slicing: 24 bits)
        per_weight = self.columns_per_weight
        if self.tile_cols % per_weight:
            raise ValueError(
                f"CrossbarConfig.tile_cols={self.tile_cols} must be a multiple of the "
                f"{per_weight} cells each weight takes with mapping={self.mapping!r}"
            )

    @property
    def columns_per_weight(self) -> int:
        """Physical columns one logical output column takes (cells per weight)."""
        if self.mapping == "differential":
            return 2
        if self.mapping == "offset":
            return 1
        if self.mapping == "bit_sliced":
            return 2 * self.cells_per_weight
        from rramsim.models.mapping import mapping_class

        return mapping_class(self.mapping).columns_per_weight(self)

    # ------------------------------------------------------------------ helpers
    @classmethod
    def ohmic(cls, **fields: Any) -> "CrossbarConfig":
        """The fast idealization: Ohmic cells at their read conductance and no IR drop
        (``nonlinear_iv=False, ir_drop="off"``), other fields as given. A forward is then one
        matmul per tile and programming needs no circuit solve; against ngspice of the same
        array it is 6-23% off at 8x8-64x64 (1 ohm/segment), so use it where the wires and
        the cells' I-V are not what is studied (the published methods' own assumptions, unit
        tests of other effects)."""
        clash = sorted(set(fields) & {"ir_drop", "nonlinear_iv", "ir_drop_solver", "wire_resistance"})
        if clash:
            raise ValueError(
                f"CrossbarConfig.ohmic() has no IR drop and Ohmic cells, so {clash} would not apply; "
                "use CrossbarConfig(...) to choose the wires and the cells' I-V"
            )
        return cls(**{"ir_drop": "off", "nonlinear_iv": False, **fields})

    def replace(self, **changes: Any) -> "CrossbarConfig":
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CrossbarConfig":
        """Rebuild from :meth:`to_dict` output; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown CrossbarConfig field(s) {unknown}; known: {sorted(known)}")
        return cls(**data)


class ReadOnlyCrossbarConfig(CrossbarConfig):
    """A :class:`CrossbarConfig` whose fields cannot be set once it is built: a
    module-level default that every reader sees unchanged (no later assignment can move
    the prices or geometry of code that uses it afterwards). ``replace`` returns a plain,
    changeable copy; it equals a plain config with the same fields."""

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "_read_only", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if self.__dict__.get("_read_only"):
            raise dataclasses.FrozenInstanceError(
                f"this CrossbarConfig is read-only (a shared default): cannot set "
                f"{name}; make a copy with .replace({name}=...)"
            )
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(
            f"this CrossbarConfig is read-only (a shared default): cannot delete {name}"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CrossbarConfig):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None

    def replace(self, **changes: Any) -> CrossbarConfig:
        """A plain (changeable) copy with some fields changed (validated)."""
        return CrossbarConfig(**{**self.to_dict(), **changes})


def _positive_int(cfg: CrossbarConfig, name: str, upper: int | None = None) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"CrossbarConfig.{name} must be a positive integer, got {value!r}")
    if upper is not None and value > upper:
        raise ValueError(f"CrossbarConfig.{name} must be at most {upper}, got {value!r}")


def _choice(cfg: CrossbarConfig, name: str, allowed: tuple[str, ...]) -> None:
    value = getattr(cfg, name)
    if value not in allowed:
        raise ValueError(f"CrossbarConfig.{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")


def _finite(cfg: CrossbarConfig, name: str, low: float, strict: bool = False) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"CrossbarConfig.{name} must be a finite number, got {value!r}")
    if value < low or (strict and value == low):
        raise ValueError(f"CrossbarConfig.{name} must be {'>' if strict else '>='} {low}, got {value!r}")
