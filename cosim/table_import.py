"""Measured device data -> :class:`~rramsim.devices.DeviceTable` (``rramsim table import``).

A measured table holds what a chip's characterization gives: per-cell programming outcomes
and, where measured, read noise, retention and I-V. Files are CSV (a header row; lines
starting with ``#`` are comments) or NumPy ``.npz`` (one 1-D array per column). SI units.

Programming file, one row per programmed cell:

=============  ==========================================================================
``target``     S, the level's target conductance (rows with equal targets form a level)
``level``      instead of ``target``: 0-based index into ``--targets`` (or the ``targets``
               array of an ``.npz``), which must be strictly increasing
``g``          S, the conductance the cell reached (> 0)
``pulses``     optional, programming pulses used (whole number >= 0)
``energy``     optional, J (>= 0)
``time``       optional, s (>= 0)
``converged``  optional, 0/1: the cell ended inside the write-verify tolerance
=============  ==========================================================================

Other columns are ignored. Read noise (``--read``): rows ``g, sigma`` (S; the standard
deviation of a read at conductance g), or repeated reads ``g, read`` where rows sharing a
``g`` are one cell read again and again (>= 2 reads per cell; sigma is their sample
standard deviation, and with more than :data:`READ_BINS` cells they are pooled in
equal-count bins of g). Retention (``--retention``): ``target``/``level``, ``t`` (s > 0)
and ``ratio`` = G(t)/G(0), one row per cell and time (the table keeps the per-level mean
and standard deviation of the ratio), or already aggregated with a ``sigma`` column (one
row per level and time). I-V (``--iv``): ``target``/``level``, ``v`` (V), ``i`` (A), the
same voltages for every level; it needs ``--read-voltage`` (the voltage g was read at).

What was not measured is recorded as such, never made up: missing ``pulses``/``energy``/
``time``/``converged`` (absent, or blank in every row; blank in some rows only is an error)
become the table's ``unmeasured`` provenance entry (costs computed
from them are then unknown), a missing I-V is an empty ``/iv`` group, an unknown
write-verify tolerance is NaN. Read noise is needed by inference: without ``--read`` the
import stops unless ``--read-sigma-rel`` states an assumption, which is then written in
the table's ``assumptions`` provenance. Levels with different cell counts are cut to the
smallest count by keeping evenly spaced ranks of the sorted outcomes (real cells only; the
provenance says so).
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rramsim.devices import DeviceTable

#: Above this many read-noise cells, sigma(G) is pooled into this many equal-count bins.
READ_BINS = 16
#: Conductances at or above this are taken to be in the wrong unit (uS given for S).
G_UNIT_LIMIT = 1.0


class MeasurementError(ValueError):
    """A measurement file is malformed; the message names the file, row and column."""


@dataclass
class Columns:
    """The columns of one measurement file, as read (text for CSV, arrays for .npz)."""

    path: Path
    data: dict[str, np.ndarray]
    rows: np.ndarray  # what to call each row in a message (CSV line numbers / npz entries)
    extra: dict[str, np.ndarray]  # .npz arrays that are not per-row (e.g. ``targets``)

    @property
    def n(self) -> int:
        return int(self.rows.size)

    def where(self, i: int) -> str:
        return f"line {self.rows[i]}" if self.path.suffix.lower() != ".npz" else f"entry {self.rows[i]}"

    def empty(self, name: str) -> bool:
        """Whether every entry of text column ``name`` is blank (a column left unfilled)."""
        raw = self.data[name]
        return raw.dtype.kind not in "biuf" and all(not str(x).strip() for x in raw)

    def require(self, *names: str, hint: str = "") -> None:
        missing = [n for n in names if n not in self.data]
        if missing and len(self.data) == 1 and any(c in next(iter(self.data)) for c in ";\t"):
            hint = "; the header looks separated by ';' or tabs: rramsim reads comma-separated files" + hint
        if missing:
            raise MeasurementError(
                f"{self.path}: missing column(s) {', '.join(repr(m) for m in missing)}"
                f" (columns found: {', '.join(self.data) or 'none'}){hint}"
            )

    def numbers(
        self,
        name: str,
        *,
        positive: bool = False,
        nonnegative: bool = False,
        whole: bool = False,
        binary: bool = False,
        unit_s: bool = False,
    ) -> np.ndarray:
        """Column ``name`` as float64, every entry checked; the first bad one is an error."""
        raw = self.data[name]
        if raw.dtype.kind in "biuf":
            values = raw.astype(np.float64)
            text = None
        else:
            text = [str(x) for x in raw]
            values = np.full(len(text), np.nan)
            for i, s in enumerate(text):
                try:
                    values[i] = float(s)
                except ValueError:
                    self._bad(
                        name,
                        i,
                        f"{s!r} is not a number" if s.strip() else "is empty",
                        int(sum(1 for t in text if not _is_float(t))) - 1,
                    )
        checks = [(~np.isfinite(values), "is not a finite number (NaN or inf): fix or drop the row")]
        if positive:
            checks.append((values <= 0, "must be > 0"))
        if nonnegative:
            checks.append((values < 0, "must be >= 0"))
        if whole:
            checks.append((values != np.round(values), "must be a whole number"))
        if binary:
            checks.append((~np.isin(values, (0.0, 1.0)), "must be 0 or 1"))
        if unit_s:
            checks.append((values >= G_UNIT_LIMIT, "is >= 1 S: conductances are in siemens (write 25e-6 for 25 uS)"))
        for bad, why in checks:
            if np.any(bad):
                i = int(np.argmax(bad))
                shown = text[i] if text is not None else f"{values[i]:g}"
                self._bad(name, i, f"{shown} {why}", int(bad.sum()) - 1)
        return values

    def _bad(self, name: str, i: int, what: str, more: int) -> None:
        tail = f" ({more} more bad value{'s' if more != 1 else ''} in this column)" if more > 0 else ""
        raise MeasurementError(f"{self.path}: {self.where(i)}, column {name!r}: {what}{tail}")


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def read_columns(path: str | Path) -> Columns:
    """Read a CSV or .npz measurement file into :class:`Columns` (structure checked here,
    values when a column is used)."""
    path = Path(path)
    if not path.is_file():
        raise MeasurementError(f"{path}: no such file")
    if path.suffix.lower() == ".npz":
        return _read_npz(path)
    return _read_csv(path)


def _read_csv(path: Path) -> Columns:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            lines = [
                (n, row)
                for n, row in enumerate(csv.reader(fh), start=1)
                if row and not (len(row) == 1 and not row[0].strip()) and not row[0].lstrip().startswith("#")
            ]
    except UnicodeDecodeError:
        raise MeasurementError(f"{path}: not a text CSV file (use .npz for NumPy arrays)") from None
    except csv.Error as exc:
        raise MeasurementError(f"{path}: not a readable CSV file: {exc}") from None
    if not lines:
        raise MeasurementError(f"{path}: empty file (expected a header row such as 'target,g')")
    header_line, header = lines[0]
    names = [h.strip() for h in header]
    for k, name in enumerate(names):
        if not name:
            raise MeasurementError(f"{path}: line {header_line}: header column {k + 1} has no name")
        if names.index(name) != k:
            raise MeasurementError(
                f"{path}: line {header_line}: column {name!r} appears twice in the header "
                f"(columns {names.index(name) + 1} and {k + 1}); rename or drop one"
            )
    body = lines[1:]
    if not body:
        raise MeasurementError(f"{path}: header only, no data rows")
    for n, row in body:
        if len(row) != len(names):
            raise MeasurementError(f"{path}: line {n} has {len(row)} fields, the header has {len(names)}")
    data = {name: np.array([row[k].strip() for _, row in body], dtype=object) for k, name in enumerate(names)}
    return Columns(path, data, np.array([n for n, _ in body]), {})


def _read_npz(path: Path) -> Columns:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k]) for k in z.files}
    except Exception as exc:  # numpy raises many kinds for a damaged archive
        raise MeasurementError(f"{path}: not a readable .npz archive ({type(exc).__name__}: {exc})") from None
    extra = {k: arrays.pop(k) for k in ("targets",) if k in arrays}
    if not arrays:
        raise MeasurementError(f"{path}: no arrays (expected one 1-D array per column, e.g. target and g)")
    lengths = {}
    for k, a in arrays.items():
        if a.ndim != 1:
            raise MeasurementError(f"{path}: array {k!r} has shape {a.shape}; every column must be 1-D")
        lengths[k] = a.size
    if len(set(lengths.values())) != 1:
        raise MeasurementError(
            f"{path}: columns differ in length: " + ", ".join(f"{k}={n}" for k, n in lengths.items())
        )
    n = next(iter(lengths.values()))
    if n == 0:
        raise MeasurementError(f"{path}: the columns are empty")
    return Columns(path, arrays, np.arange(n), extra)


# ---------------------------------------------------------------------------- levels


def _level_index(cols: Columns, targets: np.ndarray | None, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(level index per row, targets) from a ``target`` or ``level`` column."""
    if "target" in cols.data and "level" in cols.data:
        raise MeasurementError(f"{cols.path}: has both 'target' and 'level' columns; keep one")
    if "target" in cols.data:
        t = cols.numbers("target", positive=True, unit_s=True)
        if targets is None:
            targets = np.unique(t)
        idx = np.searchsorted(targets, t)
        idx_c = np.clip(idx, 0, targets.size - 1)
        off = ~np.isclose(targets[idx_c], t, rtol=1e-9, atol=0)
        if np.any(off):
            i = int(np.argmax(off))
            raise MeasurementError(
                f"{cols.path}: {cols.where(i)}, column 'target': {t[i]:g} S is not one of the "
                f"programming targets ({', '.join(f'{x:g}' for x in targets)})"
            )
        return idx_c, targets
    if "level" not in cols.data:
        cols.require("target", hint=f"; {what} needs a 'target' (S) or 'level' column")
    if targets is None:
        raise MeasurementError(
            f"{cols.path}: a 'level' column indexes into the targets: pass --targets "
            "(e.g. 10u:80u:8) or give a 'target' column instead"
        )
    lv = cols.numbers("level", nonnegative=True, whole=True)
    out = lv >= targets.size
    if np.any(out):
        i = int(np.argmax(out))
        raise MeasurementError(
            f"{cols.path}: {cols.where(i)}, column 'level': {int(lv[i])} is beyond the "
            f"{targets.size} targets (levels are 0..{targets.size - 1})"
        )
    return lv.astype(np.int64), targets


def check_targets(targets, source: str) -> np.ndarray:
    """Targets given apart from the data: finite, positive, in S, strictly increasing."""
    t = np.asarray(targets, dtype=np.float64).reshape(-1)
    if t.size < 1 or not np.all(np.isfinite(t)) or np.any(t <= 0):
        raise MeasurementError(f"{source}: targets must be finite positive conductances (S)")
    if np.any(t >= G_UNIT_LIMIT):
        raise MeasurementError(f"{source}: targets are in siemens (write 25e-6 for 25 uS)")
    bad = np.flatnonzero(np.diff(t) <= 0)
    if bad.size:
        k = int(bad[0])
        raise MeasurementError(
            f"{source}: targets must be strictly increasing; target {k + 2} ({t[k + 1]:g} S) follows {t[k]:g} S"
        )
    return t


# ---------------------------------------------------------------------------- the import

OPTIONAL = {
    "pulses": dict(nonnegative=True, whole=True),
    "energy": dict(nonnegative=True),
    "time": dict(nonnegative=True),
    "converged": dict(binary=True),
}


def import_table(
    programming: str | Path,
    targets=None,
    read: str | Path | None = None,
    read_sigma_rel: float | None = None,
    retention: str | Path | None = None,
    iv: str | Path | None = None,
    read_voltage: float | None = None,
    tolerance: float | None = None,
    command: str | None = None,
) -> DeviceTable:
    """Build a DeviceTable from measurement files (see the module doc for the schema)."""
    cols = read_columns(programming)
    cols.require("g", hint="; the programming file needs 'g' (S, reached) and 'target' (S) or 'level'")
    if targets is not None and "target" in cols.data:
        raise MeasurementError(
            f"{cols.path}: --targets is for a 'level' column; this file has 'target' (drop --targets or use 'level')"
        )
    if targets is None and "targets" in cols.extra:
        targets = check_targets(cols.extra["targets"], f"{cols.path}: array 'targets'")
    elif targets is not None:
        targets = check_targets(targets, "--targets")
    level, targets = _level_index(cols, targets, "the programming file")
    g = cols.numbers("g", positive=True, unit_s=True)
    outcome = {"g_final": g}
    unmeasured, notes = [], []
    for name, checks in OPTIONAL.items():
        if name in cols.data and cols.empty(name):
            notes.append(f"column {name!r} is blank in every row: not measured")
            unmeasured.append(name)
        elif name in cols.data:
            outcome[name] = cols.numbers(name, **checks)
        else:
            unmeasured.append(name)
    counts = np.bincount(level, minlength=targets.size)
    few = np.flatnonzero(counts < 2)
    if few.size:
        k = int(few[0])
        raise MeasurementError(
            f"{cols.path}: level {k} (target {targets[k]:g} S) has {counts[k]} cell(s); "
            "every level needs at least 2 measured cells"
        )
    n = int(counts.min())
    arrays = {name: np.empty((targets.size, n)) for name in outcome}
    for k in range(targets.size):
        rows = np.flatnonzero(level == k)
        rows = rows[np.argsort(g[rows], kind="stable")]
        if rows.size > n:
            rows = rows[np.round(np.linspace(0, rows.size - 1, n)).astype(np.int64)]
            notes.append(f"level {k}: {counts[k]} cells kept as {n} evenly spaced ranks")
        for name, values in outcome.items():
            arrays[name][k] = values[rows]
    shape = arrays["g_final"].shape
    table_kw = dict(
        targets=targets,
        g_final=arrays["g_final"],
        pulses=arrays["pulses"].astype(np.int64) if "pulses" in arrays else np.zeros(shape, np.int32),
        energy=arrays.get("energy", np.full(shape, np.nan)),
        time=arrays.get("time", np.full(shape, np.nan)),
        converged=arrays["converged"].astype(bool) if "converged" in arrays else np.ones(shape, bool),
    )
    assumptions = []
    sources = {"programming": _fingerprint(cols.path)}
    if read is not None and read_sigma_rel is not None:
        raise MeasurementError(
            "give either --read FILE (measured read noise) or --read-sigma-rel (an assumption), not both"
        )
    if read is not None:
        read_g, read_sigma, note = read_noise(read_columns(read))
        sources["read"] = _fingerprint(Path(read))
        notes.extend([note] if note else [])
    elif read_sigma_rel is not None:
        if not (np.isfinite(read_sigma_rel) and 0 <= read_sigma_rel < 1):
            raise MeasurementError(f"--read-sigma-rel must be in [0, 1), got {read_sigma_rel}")
        read_g = targets.copy()
        read_sigma = read_sigma_rel * targets
        assumptions.append(f"read noise not measured: sigma = {read_sigma_rel:g} x G (--read-sigma-rel)")
    else:
        raise MeasurementError(
            "no read-noise data: pass --read FILE (columns g,sigma or g,read) or state an "
            "assumption with --read-sigma-rel 0.01 (sigma = 1% of G; 0 for none)"
        )
    ret = {}
    if retention is not None:
        ret = retention_group(read_columns(retention), targets)
        sources["retention"] = _fingerprint(Path(retention))
    if iv is not None:
        if read_voltage is None:
            raise MeasurementError("--iv needs --read-voltage (the voltage the conductances g were read at, V)")
        iv_v, iv_current = iv_group(read_columns(iv), targets)
        sources["iv"] = _fingerprint(Path(iv))
    else:
        iv_v, iv_current = np.zeros(0), np.zeros((targets.size, 0))
    if read_voltage is not None and not (np.isfinite(read_voltage) and read_voltage > 0):
        raise MeasurementError(f"--read-voltage must be a positive voltage, got {read_voltage}")
    if tolerance is not None and not (np.isfinite(tolerance) and 0 < tolerance < 1):
        raise MeasurementError(f"--tolerance must be a relative tolerance in (0, 1), got {tolerance}")
    nan = float("nan")
    scheme = {
        "scheme": "measured",
        "read_voltage": nan if read_voltage is None else float(read_voltage),
        "tolerance": nan if tolerance is None else float(tolerance),
        "max_pulses": nan,
    }
    from rramsim import __version__

    provenance = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "rramsim_version": __version__,
        "command": command or " ".join(shlex.quote(a) for a in sys.argv),
        "source": "measured",
        "source_files": json.dumps(sources, sort_keys=True),
    }
    if unmeasured:
        provenance["unmeasured"] = ",".join(unmeasured)
    if assumptions:
        provenance["assumptions"] = json.dumps(assumptions)
    if notes:
        provenance["import_notes"] = json.dumps(notes)
    return DeviceTable(
        **table_kw,
        scheme=scheme,
        read_g=read_g,
        read_sigma=read_sigma,
        iv_v=iv_v,
        iv_current=iv_current,
        **ret,
        model={"name": "measured"},
        provenance=provenance,
    )


def _fingerprint(path: Path) -> str:
    return f"{path.name} sha256:{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"


def read_noise(cols: Columns) -> tuple[np.ndarray, np.ndarray, str]:
    """(g, sigma, note) of a read-noise file: ``g,sigma`` points or ``g,read`` repeated reads."""
    cols.require("g", hint="; the read-noise file needs 'g' and 'sigma', or 'g' and 'read'")
    if "sigma" in cols.data and "read" in cols.data:
        raise MeasurementError(
            f"{cols.path}: has both 'sigma' and 'read'; give points (g,sigma) or repeated reads (g,read), not both"
        )
    g = cols.numbers("g", positive=True, unit_s=True)
    if "sigma" in cols.data:
        sigma = cols.numbers("sigma", nonnegative=True, unit_s=True)
        order = np.argsort(g, kind="stable")
        dup = np.flatnonzero(np.diff(g[order]) == 0)
        if dup.size:
            i = int(order[dup[0] + 1])
            raise MeasurementError(
                f"{cols.path}: {cols.where(i)}, column 'g': {g[i]:g} S appears twice; one "
                "sigma per conductance (or use repeated reads: columns g,read)"
            )
        return g[order], sigma[order], ""
    if "read" not in cols.data:
        cols.require("sigma", hint="; or a 'read' column of repeated reads")
    reads = cols.numbers("read", positive=True, unit_s=True)
    cells, inverse, counts = np.unique(g, return_inverse=True, return_counts=True)
    if np.any(counts < 2):
        k = int(np.argmax(counts < 2))
        i = int(np.flatnonzero(inverse == k)[0])
        raise MeasurementError(
            f"{cols.path}: {cols.where(i)}: the cell at g = {cells[k]:g} S has 1 read; "
            "repeated reads need at least 2 per cell"
        )
    var = np.array([np.var(reads[inverse == k], ddof=1) for k in range(cells.size)])
    mean = np.array([np.mean(reads[inverse == k]) for k in range(cells.size)])
    if cells.size <= READ_BINS:
        return cells, np.sqrt(var), ""
    bins = np.array_split(np.arange(cells.size), READ_BINS)  # cells are sorted by g
    bg = np.array([mean[b].mean() for b in bins])
    bs = np.array([np.sqrt(var[b].mean()) for b in bins])
    order = np.argsort(bg)
    return bg[order], bs[order], f"read noise: {cells.size} cells pooled into {READ_BINS} equal-count bins of g"


def retention_group(cols: Columns, targets: np.ndarray) -> dict[str, np.ndarray]:
    """/retention arrays (t [T], ratio [L, T], sigma [L, T]) from a retention file."""
    cols.require("t", "ratio", hint="; the retention file needs 't' (s), 'ratio' (G(t)/G(0)) and 'target' or 'level'")
    level, _ = _level_index(cols, targets, "the retention file")
    t = cols.numbers("t", positive=True)
    ratio = cols.numbers("ratio", nonnegative=True)
    sigma = cols.numbers("sigma", nonnegative=True) if "sigma" in cols.data else None
    times = np.unique(t)
    ratio_out = np.empty((targets.size, times.size))
    sigma_out = np.empty_like(ratio_out)
    for k in range(targets.size):
        for j, tj in enumerate(times):
            rows = np.flatnonzero((level == k) & (t == tj))
            if rows.size == 0:
                raise MeasurementError(
                    f"{cols.path}: no retention data for level {k} (target {targets[k]:g} S) at "
                    f"t = {tj:g} s; every level needs every time"
                )
            if sigma is not None:
                if rows.size > 1:
                    raise MeasurementError(
                        f"{cols.path}: {cols.where(int(rows[1]))}: a second row for level {k} at "
                        f"t = {tj:g} s; with a 'sigma' column give one row per level and time"
                    )
                ratio_out[k, j], sigma_out[k, j] = ratio[rows[0]], sigma[rows[0]]
            else:
                if rows.size < 2:
                    raise MeasurementError(
                        f"{cols.path}: {cols.where(int(rows[0]))}: level {k} at t = {tj:g} s has 1 "
                        "cell; per-cell retention needs at least 2 (or give a 'sigma' column)"
                    )
                ratio_out[k, j], sigma_out[k, j] = ratio[rows].mean(), ratio[rows].std()
    return {"retention_t": times, "retention_ratio": ratio_out, "retention_sigma": sigma_out}


def iv_group(cols: Columns, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(v [M], current [L, M]) of an I-V file; every level measured at the same voltages."""
    cols.require("v", "i", hint="; the I-V file needs 'v' (V), 'i' (A) and 'target' or 'level'")
    level, _ = _level_index(cols, targets, "the I-V file")
    v = cols.numbers("v")
    i = cols.numbers("i")
    grid = np.unique(v[level == 0])
    cur = np.empty((targets.size, grid.size))
    for k in range(targets.size):
        rows = np.flatnonzero(level == k)
        vk = v[rows]
        if rows.size != grid.size or not np.array_equal(np.sort(vk), grid):
            raise MeasurementError(
                f"{cols.path}: level {k} (target {targets[k]:g} S) is measured at other "
                f"voltages than level 0 ({rows.size} points vs {grid.size}, each voltage once); "
                "every level needs the same voltages"
            )
        cur[k] = i[rows][np.argsort(vk)]
    if grid.size < 3:
        raise MeasurementError(f"{cols.path}: {grid.size} voltages per level; an I-V needs at least 3")
    return grid, cur
