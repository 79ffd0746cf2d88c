"""DeviceTable -> files other tools read (``rramsim table export``).

``csv``: the measurement schema of :mod:`rramsim.cosim.table_import` (a folder with
``programming.csv``, ``read.csv`` and, where the table has them, ``retention.csv`` and
``iv.csv``), so a table can be edited, shared and imported again. ``neurosim``: the states
file of NeuroSim (``mem_states.csv``: header ``state,mean,std``, one row per level,
conductances in S: the mean and standard deviation of the conductance each level reached).

Every export records which table made it (SHA-256 fingerprint of the file) and the rramsim
version: as ``#`` comment lines on top of the CSV files of ``csv``, and in a JSON file beside
``neurosim``'s states file (``mem_states.csv.json``), whose header must stay exactly
``state,mean,std``. ``aihwkit``: a NumPy archive for
``rramsim.models.aihwkit_noise.TableNoiseModel`` (see there), fingerprint inside. Files are
written atomically.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from rramsim.cosim.files import atomic_write
from rramsim.devices import DeviceTable


def fingerprint(path: str | Path) -> str:
    """SHA-256 of a table file (hex, first 16 digits)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _csv(header: list[str], columns: list[np.ndarray], comments: list[str]) -> str:
    buf = io.StringIO()
    for c in comments:
        buf.write(f"# {c}\n")
    buf.write(",".join(header) + "\n")
    for row in zip(*columns):
        buf.write(",".join(repr(float(x)) if isinstance(x, (float, np.floating)) else str(int(x)) for x in row) + "\n")
    return buf.getvalue()


def export_csv(table: DeviceTable, source: str | Path, folder: str | Path) -> list[Path]:
    """Write the table as measurement CSV files into ``folder`` (created if absent)."""
    folder = Path(folder)
    if not folder.parent.exists():
        raise ValueError(f"cannot write {folder}: folder {folder.parent} does not exist")
    folder.mkdir(exist_ok=True)
    from rramsim import __version__

    head = [f"exported by rramsim {__version__} from {Path(source).name} (sha256:{fingerprint(source)})"]
    L, N = table.g_final.shape
    level = np.repeat(np.arange(L), N)
    cols = {"target": table.targets[level], "g": table.g_final.reshape(-1)}
    for name in ("pulses", "energy", "time", "converged"):
        if name not in table.unmeasured:
            cols[name] = getattr(table, name).reshape(-1)
    out = []
    files = {
        "programming.csv": (list(cols), list(cols.values())),
        "read.csv": (["g", "sigma"], [table.read_g, table.read_sigma]),
    }
    if table.has_retention:
        T = table.retention_t.size
        files["retention.csv"] = (
            ["target", "t", "ratio", "sigma"],
            [
                np.repeat(table.targets, T),
                np.tile(table.retention_t, L),
                table.retention_ratio.reshape(-1),
                table.retention_sigma.reshape(-1),
            ],
        )
    if table.has_iv:
        M = table.iv_v.size
        files["iv.csv"] = (
            ["target", "v", "i"],
            [np.repeat(table.targets, M), np.tile(table.iv_v, L), table.iv_current.reshape(-1)],
        )
    for name, (header, columns) in files.items():
        path = folder / name
        columns = [c.astype(np.int64) if c.dtype.kind in "bi" else c for c in columns]
        atomic_write(path, _csv(header, columns, head))
        out.append(path)
    return out


def export_neurosim(table: DeviceTable, source: str | Path, path: str | Path) -> list[Path]:
    """NeuroSim's ``mem_states.csv`` (state,mean,std in S) and its provenance JSON beside it."""
    path = Path(path)
    if not path.parent.exists():
        raise ValueError(f"cannot write {path}: folder {path.parent} does not exist")
    s = table.level_stats()
    rows = [f"{k},{float(s['g_mean'][k])!r},{float(s['g_std'][k])!r}" for k in range(table.n_levels)]
    from rramsim import __version__

    meta = {
        "made_by": f"rramsim {__version__}",
        "table": str(Path(source).name),
        "table_sha256": fingerprint(source),
        "units": "S",
        "state": "level index (targets in 'targets')",
        "targets": [float(t) for t in table.targets],
        "std": "standard deviation of the conductance reached after programming (population, ddof=0)",
    }
    atomic_write(path, "state,mean,std\n" + "\n".join(str(r) for r in rows) + "\n")
    side = path.with_name(path.name + ".json")
    atomic_write(side, json.dumps(meta, indent=1) + "\n")
    return [path, side]


def export_aihwkit(table: DeviceTable, source: str | Path, path: str | Path) -> list[Path]:
    """The arrays ``rramsim.models.aihwkit_noise.TableNoiseModel.from_file`` reads (.npz, uS),
    with the table's fingerprint and the rramsim version inside."""
    from rramsim import __version__
    from rramsim.models.aihwkit_noise import export_arrays

    path = Path(path)
    if not path.parent.exists():
        raise ValueError(f"cannot write {path}: folder {path.parent} does not exist")
    if path.suffix != ".npz":
        raise ValueError(f"the aihwkit export is a NumPy archive: name it *.npz, not {path.name}")
    arrays = export_arrays(table)
    arrays.update(
        made_by=np.array(f"rramsim {__version__}"),
        table=np.array(Path(source).name),
        table_sha256=np.array(fingerprint(source)),
    )
    atomic_write(path, lambda tmp: np.savez(tmp, **arrays))
    return [path]


FORMATS = {"csv": export_csv, "neurosim": export_neurosim, "aihwkit": export_aihwkit}
