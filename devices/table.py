"""The DeviceTable: fitted statistics of one characterized device under one scheme.

This is the contract between the SPICE side (``rramsim.cosim`` writes it) and the torch
side (``rramsim.models`` reads it). On disk it is plain HDF5, format version 2, laid out
as in docs/DESIGN.md ("The DeviceTable HDF5 format"); :meth:`DeviceTable.save` writes it atomically and :meth:`DeviceTable.load`
refuses anything malformed with a :class:`TableError` that says what is wrong. The
optional ``/array`` group (:class:`ArrayGroup`) records programming inside an array
(position-dependent cost, write disturb); tables without it load as before.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

FORMAT = "rramsim.device_table"
FORMAT_VERSION = 2
#: Versions this rramsim reads. Version 1 recorded only the ISPP scheme, under its own
#: attribute names; version 2 records any scheme generically (``scheme`` = its name, then
#: its parameters; see :mod:`rramsim.devices.schemes`) and may hold the probe's findings.
READ_VERSIONS = (1, 2)

#: Arrays of the /programming group and their dtypes, all shaped [L, N].
PROGRAMMING_ARRAYS = {
    "g_final": np.float64,
    "pulses": np.int32,
    "energy": np.float64,
    "time": np.float64,
    "converged": np.bool_,
}
#: Required attributes of /programming (the write-verify scheme).
#: Optional groups beyond the format's required ones (readers may ignore them).
OPTIONAL_GROUPS = {"sweep": ("v", "current"), "trace": ("amplitude", "g", "length")}
SCHEME_ATTRS = ("scheme", "read_voltage", "tolerance", "max_pulses")
#: Optional /trace datasets beyond the required trio (gate-controlled and pulse-width schemes).
TRACE_EXTRA = ("gate", "width")
_V1_SCHEME_ATTRS = ("scheme", "v_start", "v_step", "v_max", "pulse_width", "read_voltage", "tolerance", "max_pulses")
#: Programming outcomes a measured table may lack (named in the provenance attribute
#: ``unmeasured``); their arrays then hold NaN (energy, time), 0 (pulses) or True (converged).
UNMEASURABLE = ("pulses", "energy", "time", "converged")


class TableError(ValueError):
    """A device table file or object is malformed; the message says what and where."""


#: Per-position maps of the optional /array group, each [rows, cols].
ARRAY_MAPS = {
    "level": np.int32,
    "pulses_factor": np.float64,
    "energy_factor": np.float64,
    "time_factor": np.float64,
    "disturb": np.float64,
}
#: Per-level disturb statistics of /array, each [L].
ARRAY_STATS = (
    "disturb_half_mean",
    "disturb_half_std",
    "disturb_other_mean",
    "disturb_other_std",
    "disturb_array_mean",
    "disturb_array_std",
    "disturb_cells",
)
#: Required attributes of /array.
ARRAY_ATTRS = ("rows", "cols", "cell", "bias", "half_select", "wire_resistance", "scheme", "write_order")


@dataclass
class ArrayGroup:
    """Programming inside an array (optional ``/array``): what write-verify of the table's
    device cost and disturbed when done inside a ``rows x cols`` array in
    ngspice (``rramsim characterize-array``).

    Attributes (``attrs``): ``rows``, ``cols``, ``cell`` (1R/1T1R), ``bias`` (``V/2``,
    ``V/3``, ``word-line``), ``half_select`` (unselected-line voltage as a fraction of the
    pulse), ``wire_resistance`` (ohm per segment), ``scheme`` (the table's scheme name),
    ``write_order`` (``row-parallel``: a row's cells together; ``row-major``: cell by
    cell), and optional provenance (``seed``, ``command``, ...).

    Per position [rows, cols]: ``level`` (the level written there), ``pulses_factor``,
    ``energy_factor``, ``time_factor`` (cost of that write in the array over the cost of
    the same level in an isolated cell of the same device, cell and scheme; energy counts
    every line driver, so half-selected cells' currents are in it) and ``disturb`` (relative
    conductance change of the cell from the end of its own write to the end of the whole
    array's write).

    Per level [L]: write disturb per event, as ``ln(G_after / G_before)`` (= the relative
    change for small changes): ``disturb_half_mean/std`` per *half-select event* (a later
    write of a cell on the same row or column), ``disturb_other_mean/std`` per later write
    elsewhere in the array (the V/3 bias puts -V/3 there; a row-parallel write counts each
    later row as a half-select event and the rest of the cell's own row as its one other
    event), fitted over the array's cells of that level; ``disturb_array_mean/std``: the measured relative change per written array;
    ``disturb_cells``: how many cells of that level the array had (levels with none carry
    the pooled fit of all cells).
    """

    attrs: dict[str, Any]
    maps: dict[str, np.ndarray]
    stats: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        self.attrs = {k: _scalar(v) for k, v in self.attrs.items()}
        self.maps = {k: np.asarray(v, dtype=ARRAY_MAPS.get(k, np.float64)) for k, v in self.maps.items()}
        self.stats = {k: np.asarray(v, dtype=np.float64) for k, v in self.stats.items()}

    def validate(self, n_levels: int) -> None:
        missing = [k for k in ARRAY_ATTRS if k not in self.attrs]
        if missing:
            raise TableError(f"/array attrs lack {missing}")
        try:
            rows, cols = int(self.attrs["rows"]), int(self.attrs["cols"])
        except (TypeError, ValueError):
            raise TableError("/array rows and cols must be whole numbers") from None
        if rows < 1 or cols < 1:
            raise TableError(f"/array rows and cols must be >= 1, got {rows} x {cols}")
        if self.attrs["cell"] not in ("1R", "1T1R"):
            raise TableError(f"/array cell must be 1R or 1T1R, got {self.attrs['cell']!r}")
        for name in ARRAY_MAPS:
            a = self.maps.get(name)
            if a is None or a.shape != (rows, cols):
                raise TableError(f"/array/{name} must be [{rows}, {cols}], got {None if a is None else a.shape}")
            if not np.all(np.isfinite(a)):
                raise TableError(f"/array/{name} contains NaN or inf")
        if np.any(self.maps["level"] < 0) or np.any(self.maps["level"] >= n_levels):
            raise TableError(f"/array/level must hold level indices 0..{n_levels - 1}")
        for name in ("pulses_factor", "energy_factor", "time_factor"):
            if np.any(self.maps[name] <= 0):
                raise TableError(f"/array/{name} must be positive (a cost ratio)")
        for name in ARRAY_STATS:
            a = self.stats.get(name)
            if a is None or a.shape != (n_levels,) or not np.all(np.isfinite(a)):
                raise TableError(f"/array/{name} must be [L={n_levels}] finite values")
        if any(np.any(self.stats[n] < 0) for n in ARRAY_STATS if n.endswith("_std") or n == "disturb_cells"):
            raise TableError("/array standard deviations and counts must be >= 0")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ArrayGroup):
            return NotImplemented
        same = lambda x, y: x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)  # noqa: E731
        return self.attrs == other.attrs and same(self.maps, other.maps) and same(self.stats, other.stats)

    def describe(self) -> str:
        a, m, s = self.attrs, self.maps, self.stats
        near, far = (a["rows"] - 1, 0), (0, a["cols"] - 1)
        return (
            f"  array: {a['rows']}x{a['cols']} {a['cell']} {a['bias']} (half-select {float(a['half_select']):.3g}), "
            f"{float(a['wire_resistance']):g} ohm/segment, {a['scheme']}, {a['write_order']}; pulses x"
            f"{m['pulses_factor'].mean():.3f} (near corner {m['pulses_factor'][near]:.3f}, far "
            f"{m['pulses_factor'][far]:.3f}), energy x{m['energy_factor'].mean():.3f}; disturb per written "
            f"array {100 * np.mean(m['disturb']):+.3f}% (sigma {100 * np.std(m['disturb']):.3f}%), per "
            f"half-select event {100 * np.average(s['disturb_half_mean'], weights=s['disturb_cells'] + 1e-12):+.4f}%"
        )


@dataclass
class DeviceTable:
    """Fitted lookup tables of one RRAM device (SI units throughout).

    ``targets`` [L] are the write-verify target conductances; ``g_final``, ``pulses``,
    ``energy``, ``time`` and ``converged`` [L, N] hold the outcome of programming N
    simulated devices to each target. ``read_g``/``read_sigma`` [K] give the read-noise
    standard deviation versus conductance, ``iv_v`` [M] and ``iv_current`` [L, M] the I-V
    of each programmed level, and the optional ``retention_*`` arrays G(t)/G(0).
    """

    targets: np.ndarray
    g_final: np.ndarray
    pulses: np.ndarray
    energy: np.ndarray
    time: np.ndarray
    converged: np.ndarray
    scheme: dict[str, Any]
    read_g: np.ndarray
    read_sigma: np.ndarray
    iv_v: np.ndarray
    iv_current: np.ndarray
    retention_t: np.ndarray | None = None
    retention_ratio: np.ndarray | None = None
    retention_sigma: np.ndarray | None = None
    sweep_v: np.ndarray | None = None  # optional /sweep: quasi-static SET/RESET I-V
    sweep_current: np.ndarray | None = None
    trace_amplitude: np.ndarray | None = None  # optional /trace: write-verify trajectories
    trace_g: np.ndarray | None = None  # [D, P] zero-padded after trace_length
    trace_length: np.ndarray | None = None  # [D]
    trace_gate: np.ndarray | None = None  # [D, P] word-line voltage of every pulse (optional)
    trace_width: np.ndarray | None = None  # [D, P] width of every pulse (optional)
    model: dict[str, Any] = field(default_factory=dict)  # compact-model parameters
    variability: dict[str, Any] = field(default_factory=dict)
    model_netlist: str = ""
    programming_netlist: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)  # created, versions, seed, command
    probe: dict[str, Any] = field(default_factory=dict)  # what the probe found (optional /probe)
    array: ArrayGroup | None = None  # optional /array: programming inside an array
    #: Format version of the file it was read from (saving always writes FORMAT_VERSION).
    format_version: ClassVar[int] = FORMAT_VERSION

    def __post_init__(self) -> None:
        for name in (
            "targets",
            "g_final",
            "energy",
            "time",
            "read_g",
            "read_sigma",
            "iv_v",
            "iv_current",
            "retention_t",
            "retention_ratio",
            "retention_sigma",
            "sweep_v",
            "sweep_current",
            "trace_amplitude",
            "trace_g",
            "trace_gate",
            "trace_width",
        ):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, np.asarray(value, dtype=np.float64))
        if self.trace_length is not None:
            self.trace_length = np.asarray(self.trace_length, dtype=np.int32)
        pulses = np.asarray(self.pulses)
        if pulses.dtype.kind not in "iub" and not (
            pulses.dtype.kind == "f" and np.all(np.isfinite(pulses)) and np.all(pulses == np.round(pulses))
        ):
            raise TableError(f"/programming/pulses must hold whole pulse counts, got dtype {pulses.dtype}")
        self.pulses = pulses.astype(np.int32)
        self.converged = np.asarray(self.converged, dtype=bool)
        self.validate()

    # ------------------------------------------------------------------ properties
    @property
    def n_levels(self) -> int:
        return int(self.targets.shape[0])

    @property
    def n_devices(self) -> int:
        return int(self.g_final.shape[1])

    @property
    def g_min(self) -> float:
        return float(self.targets[0])

    @property
    def g_max(self) -> float:
        return float(self.targets[-1])

    @property
    def unmeasured(self) -> frozenset[str]:
        """Programming outcomes this table does not have (see :data:`UNMEASURABLE`): their
        arrays are placeholders, never data."""
        return frozenset(n for n in str(self.provenance.get("unmeasured", "")).split(",") if n)

    @property
    def has_retention(self) -> bool:
        return self.retention_t is not None

    @property
    def has_iv(self) -> bool:
        """Whether the table holds I-V data (a measured table imported without it has none)."""
        return self.iv_v.size > 0

    def read_sigma_at(self, g: np.ndarray) -> np.ndarray:
        """Read-noise standard deviation at conductance(s) ``g`` (linear interpolation)."""
        return np.interp(g, self.read_g, self.read_sigma)

    def level_stats(self) -> dict[str, np.ndarray]:
        """Per-level summary: mean/std of reached G, mean pulses/energy/time, convergence
        (NaN for what the table did not measure)."""
        stats = {
            "target": self.targets,
            "g_mean": self.g_final.mean(axis=1),
            "g_std": self.g_final.std(axis=1),
            "pulses_mean": self.pulses.mean(axis=1),
            "energy_mean": self.energy.mean(axis=1),
            "time_mean": self.time.mean(axis=1),
            "converged": self.converged.mean(axis=1),
        }
        for name in self.unmeasured:
            stats[f"{name}_mean" if name != "converged" else name] = np.full(self.n_levels, np.nan)
        return stats

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise :class:`TableError` unless every array has the right shape and values."""
        t = self.targets
        if t.ndim != 1 or t.size < 1:
            raise TableError(f"/programming/targets must be a 1-D array of levels, got shape {t.shape}")
        if not np.all(np.isfinite(t)) or np.any(t <= 0):
            raise TableError("/programming/targets must be finite positive conductances (S)")
        if t.size > 1 and np.any(np.diff(t) <= 0):
            raise TableError("/programming/targets must be strictly increasing")
        n_levels = t.size
        shape = self.g_final.shape
        if len(shape) != 2 or shape[0] != n_levels or shape[1] < 1:
            raise TableError(f"/programming/g_final must be [L={n_levels}, N] , got shape {shape}")
        for name in PROGRAMMING_ARRAYS:
            a = getattr(self, name)
            if a.shape != shape:
                raise TableError(f"/programming/{name} has shape {a.shape}, expected {shape}")
        odd = sorted(self.unmeasured - set(UNMEASURABLE))
        if odd:
            raise TableError(f"provenance 'unmeasured' names {odd}; only {list(UNMEASURABLE)} may be unmeasured")
        for name in ("g_final", "energy", "time"):
            a = getattr(self, name)
            if name in self.unmeasured and np.all(np.isnan(a)):
                continue
            if not np.all(np.isfinite(a)):
                raise TableError(f"/programming/{name} contains NaN or inf")
            if np.any(a < 0):
                raise TableError(f"/programming/{name} contains negative values")
        if np.any(self.pulses < 0):
            raise TableError("/programming/pulses contains negative counts")
        missing = [k for k in SCHEME_ATTRS if k not in self.scheme]
        if missing:
            raise TableError(f"/programming attrs lack the scheme entries {missing}")
        tol = float(self.scheme["tolerance"])
        if not (np.isnan(tol) or 0 < tol < 1):  # NaN: not known (a measured table)
            raise TableError(f"/programming tolerance must be in (0, 1) or NaN (unknown), got {tol}")
        if self.read_g.ndim != 1 or self.read_g.shape != self.read_sigma.shape or self.read_g.size < 1:
            raise TableError(
                f"/read/g and /read/sigma must be 1-D of equal length, got "
                f"{self.read_g.shape} and {self.read_sigma.shape}"
            )
        for name in ("read_g", "read_sigma", "iv_v", "iv_current"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise TableError(f"/{name.replace('_', '/', 1)} contains NaN or inf")
        if np.any(self.read_sigma < 0):
            raise TableError("/read/sigma contains negative standard deviations")
        if self.read_g.size > 1 and np.any(np.diff(self.read_g) <= 0):
            raise TableError("/read/g must be strictly increasing")
        if self.iv_v.ndim != 1 or self.iv_current.shape != (n_levels, self.iv_v.size):
            raise TableError(f"/iv/current must be [L={n_levels}, M={self.iv_v.size}], got {self.iv_current.shape}")
        ret = (self.retention_t, self.retention_ratio, self.retention_sigma)
        if any(r is not None for r in ret):
            if any(r is None for r in ret):
                raise TableError("/retention needs all of t, ratio and sigma")
            rt, rr, rs = ret
            if rt.ndim != 1 or rr.shape != (n_levels, rt.size) or rs.shape != rr.shape:
                raise TableError(
                    f"/retention arrays must be [T], [L, T], [L, T]; got {rt.shape}, {rr.shape}, {rs.shape}"
                )
            if not all(np.all(np.isfinite(r)) for r in ret):
                raise TableError("/retention contains NaN or inf")
        for group, names in OPTIONAL_GROUPS.items():
            arrays = [getattr(self, f"{group}_{n}") for n in names]
            if any(a is not None for a in arrays) and any(a is None for a in arrays):
                raise TableError(f"/{group} needs all of {', '.join(names)}")
            if arrays[0] is not None and not all(np.all(np.isfinite(a)) for a in arrays):
                raise TableError(f"/{group} contains NaN or inf")
        for n in TRACE_EXTRA:
            a = getattr(self, f"trace_{n}")
            if a is not None and (self.trace_g is None or a.shape != self.trace_g.shape or not np.all(np.isfinite(a))):
                raise TableError(f"/trace/{n} must be finite and shaped like /trace/g")
        if self.array is not None:
            if not isinstance(self.array, ArrayGroup):
                raise TableError(f"array must be an ArrayGroup, got {type(self.array).__name__}")
            self.array.validate(n_levels)

    # ------------------------------------------------------------------ equality
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DeviceTable):
            return NotImplemented
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                if a is None or b is None or a.shape != b.shape or not np.array_equal(a, b):
                    return False
            elif a != b:
                return False
        return True

    # ------------------------------------------------------------------ HDF5
    def save(self, path: str | os.PathLike) -> Path:
        """Write the table to ``path`` atomically (temporary file, then ``os.replace``)."""
        import h5py

        path = Path(path)
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir():
            raise TableError(f"cannot write {path}: folder {folder} does not exist")
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        except OSError as exc:
            raise TableError(f"cannot write {path}: {exc.strerror or exc}; nothing was changed") from None
        os.close(fd)
        try:
            with h5py.File(tmp, "w") as f:
                f.attrs["format"] = FORMAT
                f.attrs["format_version"] = FORMAT_VERSION
                for key, value in self.provenance.items():
                    f.attrs[key] = value
                m = f.create_group("model")
                for key, value in self.model.items():
                    m.attrs[key] = value
                m.attrs["variability"] = json.dumps(self.variability, sort_keys=True)
                m.create_dataset("netlist", data=self.model_netlist)
                p = f.create_group("programming")
                _array(p, "targets", self.targets)
                for name, dtype in PROGRAMMING_ARRAYS.items():
                    _array(p, name, getattr(self, name).astype(dtype))
                for key, value in self.scheme.items():
                    p.attrs[key] = value
                p.create_dataset("netlist", data=self.programming_netlist)
                r = f.create_group("read")
                _array(r, "g", self.read_g)
                _array(r, "sigma", self.read_sigma)
                iv = f.create_group("iv")
                _array(iv, "v", self.iv_v)
                _array(iv, "current", self.iv_current)
                for group, names in {"retention": ("t", "ratio", "sigma"), **OPTIONAL_GROUPS}.items():
                    if getattr(self, f"{group}_{names[0]}") is not None:
                        g = f.create_group(group)
                        for n in names:
                            _array(g, n, getattr(self, f"{group}_{n}"))
                for n in TRACE_EXTRA:
                    if getattr(self, f"trace_{n}") is not None:
                        _array(f["trace"], n, getattr(self, f"trace_{n}"))
                if self.array is not None:
                    ag = f.create_group("array")
                    for key, value in self.array.attrs.items():
                        ag.attrs[key] = value
                    for name, dtype in ARRAY_MAPS.items():
                        _array(ag, name, self.array.maps[name].astype(dtype))
                    for name in ARRAY_STATS:
                        _array(ag, name, self.array.stats[name])
                if self.probe:
                    pr = f.create_group("probe")
                    for key, value in self.probe.items():
                        pr.attrs[key] = value
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual mode
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            reason = exc.strerror or str(exc)
            raise TableError(
                f"cannot write {path}: {reason} (disk full or read-only?); "
                + ("the earlier file is untouched" if path.exists() else "no file was written")
            ) from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "DeviceTable":
        """Read and validate a table; any problem is a :class:`TableError`.

        The file is first read in a forked child process: the HDF5 C library can crash or
        hang on some kinds of damage, and that must not take the caller down with it.
        """
        path = Path(path)
        if not path.is_file():
            raise TableError(f"{path}: no such file (make one with `rramsim characterize -o {path}`)")
        trouble = _probe(path)
        if trouble:
            raise TableError(f"{path}: damaged device table ({trouble}); regenerate it with `rramsim characterize`")
        return cls._read(path)

    @classmethod
    def _read(cls, path: Path) -> "DeviceTable":
        import h5py

        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            raise TableError(f"{path} is not a readable HDF5 file (truncated or not a table): {exc}") from None
        try:
            with f:
                return cls._from_h5(f, path)
        except TableError:
            raise
        except (OSError, KeyError, ValueError, TypeError, AttributeError, RuntimeError) as exc:
            raise TableError(
                f"{path}: damaged device table ({type(exc).__name__}: {exc}); regenerate it with `rramsim characterize`"
            ) from None

    @classmethod
    def _from_h5(cls, f, path: Path) -> "DeviceTable":
        fmt = _text(f.attrs.get("format", ""))
        if fmt != FORMAT:
            raise TableError(f"{path} is not an rramsim device table (format attribute {fmt!r})")
        version = f.attrs.get("format_version")
        if version is None or int(version) not in READ_VERSIONS:
            raise TableError(
                f"{path} has format_version {_scalar(version)!r}; this rramsim reads versions "
                f"{', '.join(map(str, READ_VERSIONS))} (upgrade rramsim or regenerate the table)"
            )
        for group in ("model", "programming", "read", "iv"):
            if group not in f:
                raise TableError(f"{path} lacks the required group /{group}")
        p = f["programming"]
        scheme = {k: _scalar(v) for k, v in p.attrs.items()}
        if int(version) == 1:
            scheme = _scheme_from_v1(scheme, path)
        model = {k: _scalar(v) for k, v in f["model"].attrs.items() if k != "variability"}
        variability = json.loads(_text(f["model"].attrs.get("variability", "{}")))
        retention = {}
        for group, names in {"retention": ("t", "ratio", "sigma"), **OPTIONAL_GROUPS}.items():
            if group in f:
                retention.update({f"{group}_{k}": _read(f, f"{group}/{k}", path) for k in names})
        if "trace" in f:
            retention.update({f"trace_{k}": _read(f, f"trace/{k}", path) for k in TRACE_EXTRA if k in f["trace"]})
        probe = {k: _scalar(v) for k, v in f["probe"].attrs.items()} if "probe" in f else {}
        array = None
        if "array" in f:
            ag = f["array"]
            array = ArrayGroup(
                {k: _scalar(v) for k, v in ag.attrs.items()},
                {n: _read(f, f"array/{n}", path) for n in ARRAY_MAPS},
                {n: _read(f, f"array/{n}", path) for n in ARRAY_STATS},
            )
        provenance = {k: _scalar(v) for k, v in f.attrs.items() if k not in ("format", "format_version")}
        table = cls(
            targets=_read(f, "programming/targets", path),
            **{name: _read(f, f"programming/{name}", path) for name in PROGRAMMING_ARRAYS},
            scheme=scheme,
            read_g=_read(f, "read/g", path),
            read_sigma=_read(f, "read/sigma", path),
            iv_v=_read(f, "iv/v", path),
            iv_current=_read(f, "iv/current", path),
            **retention,
            model=model,
            variability=variability,
            model_netlist=_text(f["model"]["netlist"][()]) if "netlist" in f["model"] else "",
            programming_netlist=_text(p["netlist"][()]) if "netlist" in p else "",
            provenance=provenance,
            probe=probe,
            array=array,
        )
        table.format_version = int(version)
        return table

    def summary(self) -> str:
        """A readable multi-line summary (what ``rramsim table show`` prints)."""
        s = self.level_stats()
        lines = [
            f"rramsim device table: {self.n_levels} levels x {self.n_devices} devices",
            f"  model: {self.model.get('name', '?')}   scheme: {self.scheme.get('scheme')}  "
            f"tolerance {100 * float(self.scheme['tolerance']):.1f}%  max pulses {self.scheme['max_pulses']}",
            "  scheme parameters: "
            + " ".join(
                f"{k}={_short(v)}" for k, v in self.scheme.items() if k not in ("scheme", "tolerance", "max_pulses")
            ),
        ]
        if self.probe:
            lines.append("  probed: " + " ".join(f"{k}={_short(v)}" for k, v in self.probe.items()))
        for k in ("command", "created", "seed", "ngspice_version", "rramsim_version"):
            if k in self.provenance:
                lines.append(f"  {k}: {self.provenance[k]}")
        if self.provenance.get("source_rewrites"):  # a Verilog-A source rewritten before it was compiled
            lines.append("  source rewritten before compiling:")
            lines += [f"    {note}" for note in str(self.provenance["source_rewrites"]).splitlines()]
        lines.append("  level  target[uS]  G mean[uS]  G std[uS]  pulses  energy[pJ]  time[ns]  converged")
        for i in range(self.n_levels):
            lines.append(
                f"  {i:5d}  {s['target'][i] * 1e6:10.2f}  {s['g_mean'][i] * 1e6:10.2f}  {s['g_std'][i] * 1e6:9.3f}"
                f"  {s['pulses_mean'][i]:6.2f}  {s['energy_mean'][i] * 1e12:10.2f}  {s['time_mean'][i] * 1e9:8.1f}"
                f"  {100 * s['converged'][i]:8.1f}%"
            )
        if np.all(self.read_sigma == 0):
            lines.append(
                "  read noise: none (sigma 0 at every level: the device simulated has no read-noise "
                "source, so inference with this table reads noiselessly)"
            )
        else:
            lines.append(
                f"  read noise: sigma/G {100 * np.median(self.read_sigma / self.read_g):.2f}% (median over "
                f"{self.read_g.size} points, {self.read_g[0] * 1e6:.1f}-{self.read_g[-1] * 1e6:.1f} uS)"
            )
        lines.append(
            f"  I-V: {self.iv_v.size} points, {self.iv_v[0]:.2f} V to {self.iv_v[-1]:.2f} V"
            if self.iv_v.size
            else "  I-V: not measured"
        )
        if self.unmeasured:
            lines.append(f"  not measured: {', '.join(sorted(self.unmeasured))}")
        if self.array is not None:
            lines.append(self.array.describe())
        if self.has_retention:
            lines.append(
                f"  retention: G(t)/G(0) at t = {self.retention_t[-1]:.3g} s: "
                + ", ".join(f"{r:.3f}" for r in self.retention_ratio[:, -1])
            )
        return "\n".join(lines)


def _scheme_from_v1(scheme: dict, path: Path) -> dict:
    """A version-1 scheme record (ISPP under its own names) in the generic form."""
    missing = [k for k in _V1_SCHEME_ATTRS if k not in scheme]
    if missing:
        raise TableError(f"{path}: /programming attrs lack the scheme entries {missing}")
    if scheme.get("scheme") != "ispp":
        return scheme  # e.g. a measured table: kept as recorded
    from rramsim.devices.schemes import scheme_from_attrs

    try:
        return scheme_from_attrs(scheme).attrs()
    except ValueError as exc:
        raise TableError(f"{path}: the recorded write-verify scheme is invalid: {exc}") from None


def _probe(path: Path, timeout: float = 60.0) -> str | None:
    """Read ``path`` in a forked child; say why if the child crashed or hung, else None."""
    if not hasattr(os, "fork"):
        return None
    pid = os.fork()
    if pid == 0:  # child: read, report only by exit status
        import faulthandler

        faulthandler.disable()  # a crash here is expected news, not a report
        code = 0
        try:
            DeviceTable._read(path)
        except BaseException:
            code = 1
        os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return f"reading it did not finish in {timeout:.0f} s"
        time.sleep(0.002)
    if os.WIFSIGNALED(status):
        return f"the HDF5 library crashed reading it (signal {signal.Signals(os.WTERMSIG(status)).name})"
    return None


def _array(group, name: str, data: np.ndarray) -> None:
    group.create_dataset(name, data=data, fletcher32=True)


def _read(f, name: str, path: Path) -> np.ndarray:
    if name not in f:
        raise TableError(f"{path} lacks the required dataset /{name}")
    try:
        return f[name][()]
    except OSError as exc:
        raise TableError(f"{path}: dataset /{name} is damaged (checksum or truncation: {exc})") from None


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _scalar(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value
