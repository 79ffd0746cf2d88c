"""ngspice through PySpice's shared-library mode: one session per process.

The session sends ``set num_threads=1`` at start, frees every run's vectors afterwards
(``destroy all``), and turns ngspice's complaints into :class:`SimulationError` with the
deck name, parameters and the end of ngspice's log. :func:`run_with_retries` walks the
documented ladder of solver options (:data:`RETRY_LADDER`) before giving up.

ngspice's shared library cannot recover from a deck it rejects while reading it (the next
deck may crash the process), so every new set of device definitions is first loaded in a
forked copy of the process; a rejection there becomes :class:`DeckLoadError`, one
paragraph with ngspice's own words and the lines they name, and this process's ngspice
never sees the bad deck.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")

#: Solver options tried in order when a run fails or does not converge. Each entry is
#: a line of ``.options`` appended to the deck: the first is the plain default, then
#: gear integration, then tighter tolerances with more iterations, then gmin stepping.
RETRY_LADDER: tuple[str, ...] = (
    "",
    ".options method=gear",
    ".options method=gear reltol=1e-5 itl1=500 itl4=100",
    ".options method=gear reltol=1e-5 gminsteps=20 srcsteps=20 itl1=1000 itl4=200 gmin=1e-10",
)

_FAILURE = re.compile(
    r"(timestep too small|singular matrix|simulation\(s\) aborted|"
    r"no convergence|error|cannot|could not find|unknown subckt|too few nodes|"
    r"doanalyses: iteration limit)",
    re.IGNORECASE,
)
_BENIGN = re.compile(
    r"(pause requested|simulation interrupted|condition met|"
    r"unsupported ngspice version|note: )",
    re.IGNORECASE,
)


class SimulationError(RuntimeError):
    """ngspice failed; the message names the deck, its parameters and the log's end."""

    def __init__(self, deck: str, message: str, log: Sequence[str] = (), params: dict | None = None):
        self.deck, self.message, self.log, self.params = deck, message, list(log), dict(params or {})
        tail = "\n    ".join(self.log[-15:]) or "(no output)"
        shown = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in list(self.params.items())[:12]
        )
        super().__init__(
            f"ngspice run of deck '{deck}' failed: {message}"
            + (f"\n  parameters: {shown}" if shown else "")
            + f"\n  end of ngspice log:\n    {tail}"
        )

    def __reduce__(self):  # picklable: errors travel back from worker processes
        return (type(self), (self.deck, self.message, self.log, self.params))


class DeckLoadError(SimulationError):
    """ngspice rejected a deck while reading it (a syntax or netlist error): retrying with
    other solver options cannot help, so :func:`run_with_retries` re-raises it at once.
    The message is one paragraph with ngspice's own words and the deck lines they name."""

    def __init__(self, deck: str, message: str, log: Sequence[str] = (), params: dict | None = None):
        self.deck, self.message, self.log, self.params = deck, message, list(log), dict(params or {})
        RuntimeError.__init__(self, message)


#: ngspice's lines that carry no information for the user when a deck does not load.
_LOAD_NOISE = re.compile(
    r"^(from file|circbyline|note: no compatibility mode|circuit: |"
    r"error: ngspice\.dll cannot recover|please check your input netlist|"
    r"there aren't any circuits loaded|error: circuit not parsed)",
    re.IGNORECASE,
)


def load_error(name: str, deck: str, log: Sequence[str], params: dict | None = None) -> DeckLoadError:
    """One paragraph from ngspice's complaints about ``deck`` and the lines they point at."""
    said = [ln.strip() for ln in log if ln.strip() and not _LOAD_NOISE.match(ln.strip())]
    said = list(dict.fromkeys(said))[:6] or ["(ngspice printed no reason)"]
    cited = []
    lines = [ln for ln in deck.splitlines() if ln]  # ngspice counts the non-empty lines
    for word in re.findall(r"(?:'([^']+)'|\[([^\]]+)\])", " ".join(said)):
        word = word[0] or word[1]
        hit = next(
            (
                ln
                for ln in lines[1:]
                if not ln.startswith("*") and re.search(rf"(?<![\w.]){re.escape(word)}(?!\w)", ln, re.IGNORECASE)
            ),
            None,
        )
        if hit and hit not in cited:
            cited.append(hit)
    where = "".join(f"; the line: {ln.strip()[:160]!r}" for ln in cited[:2])
    return DeckLoadError(
        name,
        f"ngspice rejected the netlist of deck '{name}' while loading it: "
        + " ".join(said).rstrip(".")
        + where
        + ". ngspice cannot simulate the device as written: rewrite the construct it names in "
        "ngspice syntax (see the ngspice manual, B sources and .param expressions).",
        log,
        params,
    )


class Session:
    """The process's ngspice shared-library session (use :meth:`get`)."""

    _instance: "Session | None" = None
    _pid: int | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        logging.getLogger("PySpice").setLevel(logging.CRITICAL)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from PySpice.Spice.NgSpice.Shared import NgSpiceShared, ffi
        self._ffi = ffi
        try:
            self._ng = NgSpiceShared.new_instance()
        except OSError as exc:  # library missing
            raise SimulationError(
                "(session)",
                f"cannot load libngspice ({exc}); run `make setup` "
                "or install libngspice0-dev, or set NGSPICE_LIBRARY_PATH",
            ) from None
        self._lib = _ngspice_library(self._ng)
        self._osdi: set[str] = set()
        self._checked: set[str] = set()
        self.runs = 0
        self.command("set num_threads=1")
        self.version = self._read_version()
        # ngspice crashes when an OSDI library is loaded after a circuit has run, so every
        # compiled Verilog-A model in the cache is loaded now, before any circuit. Each build
        # has its own module names (see rramsim.cosim.osdi), so none can shadow another.
        from rramsim.cosim.osdi import cached_libraries

        if self.has_osdi:
            for path in cached_libraries():
                try:
                    self.load_osdi(path)
                except SimulationError:  # removed meanwhile, or broken: loaded on demand or refused then
                    pass

    @classmethod
    def get(cls) -> "Session":
        """The session of this process (created on first use; a forked child makes its own)."""
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            elif cls._pid != os.getpid():
                # a forked child inherits the parent's ngspice as it is (its OSDI libraries and
                # whether it has run): keep the parent's record of both, so the guard against
                # loading OSDI after a run still holds in the child
                cls._instance._ng.clear_output()
            cls._pid = os.getpid()
            return cls._instance

    # ------------------------------------------------------------------ primitives
    def _read_version(self) -> str:
        self.command("version -s")
        for line in self._ng.stdout.splitlines():
            m = re.search(r"ngspice-(\d+(?:\.\d+)?)", line)
            if m:
                return m.group(1)
        return "unknown"

    def command(self, cmd: str) -> list[str]:
        """Send one control command; returns the lines ngspice printed for it.

        PySpice's ``exec_command`` also frees ngspice's history of past commands now and
        then (ngspice keeps every command it was sent). It raises a ``NameError`` subclass
        when ngspice printed an error or returned non-zero; the lines are returned all the
        same, and the callers judge them (:meth:`failures`).
        """
        try:
            self._ng.exec_command(cmd)
        except NameError:
            pass
        return self.output()

    def output(self) -> list[str]:
        return [line for line in (self._ng.stdout + "\n" + self._ng.stderr).splitlines() if line.strip()]

    def failures(self, lines: Sequence[str]) -> list[str]:
        return [ln for ln in lines if _FAILURE.search(ln) and not _BENIGN.search(ln)]

    @property
    def has_osdi(self) -> bool:
        """Whether this ngspice loads compiled Verilog-A (OSDI): version 41 and newer."""
        try:
            return float(self.version) >= 41
        except ValueError:
            return False

    def load_osdi(self, path: str) -> None:
        """Load a compiled Verilog-A (OSDI) library into this session, once."""
        if path in self._osdi:
            return
        if not self.has_osdi:
            raise SimulationError(
                "(osdi)",
                f"ngspice {self.version} cannot load Verilog-A (OSDI needs ngspice 41 "
                "or newer: `make ngspice` installs 46 from bookworm-backports)",
            )
        if self.runs:
            raise SimulationError(
                "(osdi)",
                f"{path} was compiled after this process ran its first simulation; "
                "ngspice can only load OSDI libraries before that: run again (the compiled "
                "model is cached and loads at start)",
            )
        if not re.fullmatch(r"[\w./+-]+\.osdi", path) or not os.path.isfile(path):
            raise SimulationError("(osdi)", f"not a loadable OSDI file path: {path!r}")
        log = self.command(f"osdi {path}")
        bad = self.failures(log)
        if bad:
            raise SimulationError(
                "(osdi)", f"ngspice could not load {path}: {bad[0]} (OSDI needs ngspice 41 or newer)", log
            )
        self._osdi.add(path)

    def load(self, deck: str, name: str = "deck", params: dict | None = None) -> None:
        """Load a deck (text); a parse error raises :class:`SimulationError`.

        ``* osdi: FILE`` comment lines name compiled Verilog-A libraries to load first.
        """
        for path in re.findall(r"^\* osdi: (\S+)$", deck, re.MULTILINE):
            self.load_osdi(path)
        if self.broken:
            raise SimulationError(
                name,
                f"this process's ngspice cannot run any more deck ({self.broken}); start a new Python process",
                [],
                params,
            )
        self.set_compat_mode(deck)
        self._check_loads(deck, name, params)
        self.command("destroy all")
        self.command("remcirc")
        self._ng.clear_output()
        try:
            self._ng.load_circuit(deck)
        except Exception:  # noqa: BLE001  PySpice: NameError('ngSpice_Circ returned 1') and others
            log = self.output()
            self.broken = f"it rejected deck '{name}' and awaits a reset"
            raise load_error(name, deck, log, params) from None
        log = self.output()
        bad = self.failures(log)
        if bad or self._lib.ngSpice_CurPlot() == self._ffi.NULL:
            raise SimulationError(name, "the deck did not load: " + (bad[0] if bad else "?"), log, params)

    broken: str = ""

    def set_compat_mode(self, deck: str) -> None:
        """ngspice's compatibility mode for ``deck`` (``set ngbehavior=...``, or none).

        ngspice reads ``ngbehavior`` every time it reads a deck, and its flags also act
        while the deck runs, so it is set (or unset) before every load. A device file of
        another simulator carries its mode in a ``* ngbehavior: MODE`` line
        (:mod:`rramsim.circuits.dialects`).
        """
        from rramsim.circuits.dialects import compat_mode

        mode = compat_mode(deck)
        self.command(f"set ngbehavior={mode}" if mode else "unset ngbehavior")

    def _check_loads(self, deck: str, name: str, params: dict | None) -> None:
        """Load ``deck`` first in a forked copy of this process when its definitions (the
        subcircuit and model cards) are new to this session.

        ngspice's shared library cannot recover from a deck it rejects while reading it
        (the next deck may crash the process), so a netlist error must never reach this
        process's ngspice: the copy reports ngspice's complaints, then exits.
        """
        if not hasattr(os, "fork"):
            return
        key = _definitions_key(deck)
        if key in self._checked:
            return
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the copy: load, report, exit
            code = 0
            try:
                os.close(read)
                self.command("destroy all")
                self.command("remcirc")
                self._ng.clear_output()
                try:
                    self._ng.load_circuit(deck)
                    ok = True
                except Exception:  # noqa: BLE001
                    ok = False
                report = pickle.dumps((ok, self.output()))
                with os.fdopen(write, "wb") as f:
                    f.write(report)
            except BaseException:  # noqa: BLE001
                code = 1
            finally:
                os._exit(code)
        os.close(write)
        with os.fdopen(read, "rb") as f:
            data = f.read()
        _, status = os.waitpid(pid, 0)
        if not data:
            raise DeckLoadError(
                name,
                f"ngspice crashed while loading the netlist of deck '{name}' (exit status "
                f"{status}); check the device netlist for constructs ngspice does not support",
                [],
                params,
            )
        ok, log = pickle.loads(data)
        if not ok:
            raise load_error(name, deck, log, params)
        self._checked.add(key)

    def vector(self, name: str) -> np.ndarray:
        """A copy of vector ``name`` of the current plot."""
        info = self._lib.ngGet_Vec_Info(name.encode("ascii"))
        if info == self._ffi.NULL or info.v_realdata == self._ffi.NULL:
            raise KeyError(f"ngspice has no real vector {name!r}")
        n = info.v_length
        return np.frombuffer(self._ffi.buffer(info.v_realdata, n * 8), dtype=np.float64).copy()

    def vector_tail(self, name: str, start: int) -> np.ndarray:
        """Elements ``start:`` of vector ``name`` (cheap: copies only the tail)."""
        info = self._lib.ngGet_Vec_Info(name.encode("ascii"))
        if info == self._ffi.NULL or info.v_realdata == self._ffi.NULL:
            raise KeyError(f"ngspice has no real vector {name!r}")
        n = info.v_length
        if start >= n:
            return np.empty(0)
        buf = self._ffi.buffer(info.v_realdata + start, (n - start) * 8)
        return np.frombuffer(buf, dtype=np.float64).copy()

    def vector_length(self, name: str) -> int:
        info = self._lib.ngGet_Vec_Info(name.encode("ascii"))
        return 0 if info == self._ffi.NULL else int(info.v_length)

    def run(self, analysis: str, name: str = "deck", params: dict | None = None) -> list[str]:
        """Run an analysis command (``op``, ``tran ...``, ``dc ...``, ``resume``) on the loaded deck."""
        self.runs += 1
        log = self.command(analysis)
        bad = self.failures(log)
        if bad:
            raise SimulationError(name, bad[0], log, params)
        return log

    def simulate(
        self, deck: str, analysis: str, vectors: Sequence[str], name: str = "deck", params: dict | None = None
    ) -> dict[str, np.ndarray]:
        """Load ``deck``, run ``analysis``, return the named vectors, free the results."""
        self.load(deck, name, params)
        log = self.run(analysis, name, params)
        try:
            out = {v: self.vector(v) for v in vectors}
        except KeyError as exc:
            raise SimulationError(name, f"missing result {exc}", log, params) from None
        finally:
            self.command("destroy all")
        for key, value in out.items():
            if not np.all(np.isfinite(value)):
                raise SimulationError(name, f"vector {key} contains NaN/inf", log, params)
        return out

    def alter(self, source: str, value: float, name: str = "deck") -> None:
        """Set the DC value of a source of the loaded deck (between pauses of a run)."""
        log = self.command(f"alter {source} dc={float(value)!r}")
        bad = self.failures(log)
        if bad:
            raise SimulationError(name, f"alter {source} failed: {bad[0]}", log)

    def free(self) -> None:
        self.command("destroy all")


def _ngspice_library(ng):
    """The C library handle (cffi) behind PySpice's ``NgSpiceShared`` ``ng``.

    PySpice 1.5 keeps it in a private attribute and has no public call for two C
    functions the session needs: ``ngSpice_CurPlot`` (whether loading a deck made a
    circuit), and ``ngGet_Vec_Info`` for one vector, read in place so that the
    write-verify engine copies only the new tail of a few vectors at every pause
    (PySpice's ``plot()`` copies every vector of the plot). This is the one place that
    reaches into PySpice; everything else goes through its public methods.
    """
    lib = getattr(ng, "_ngspice_shared", None)
    if lib is None:
        raise SimulationError(
            "(session)",
            "this PySpice keeps no ngspice library handle where rramsim expects "
            "it (tested with PySpice 1.5): install the version pinned in pyproject.toml",
        )
    return lib


def _definitions_key(deck: str) -> str:
    """A digest of a deck's definitions: its subcircuit bodies, its model, parameter and
    function cards and its compatibility mode (instance lines and sources of the benches
    change from deck to deck)."""
    keep, inside = [], 0
    for line in deck.splitlines():
        card = line.split(maxsplit=1)[0].lower() if line.strip() else ""
        inside += card == ".subckt"
        if (
            inside
            or card in (".model", ".param", ".func", ".global", ".include", ".lib")
            or line.startswith("* ngbehavior")
        ):
            keep.append(line)
        inside -= card == ".ends" and inside > 0
    return hashlib.sha256("\n".join(keep).encode()).hexdigest()


def run_with_retries(attempt: Callable[[str], T], name: str = "deck", ladder: Sequence[str] = RETRY_LADDER) -> T:
    """Call ``attempt(options_line)`` for each rung of the ladder until one succeeds.

    ``attempt`` builds the deck with the extra ``.options`` line, runs it and returns the
    result, raising :class:`SimulationError` on failure. The last error is re-raised with
    the list of rungs tried.
    """
    last: SimulationError | None = None
    for options in ladder:
        try:
            return attempt(options)
        except DeckLoadError:
            raise  # a netlist ngspice cannot read: no solver option helps
        except SimulationError as exc:
            last = exc
    assert last is not None
    raise SimulationError(
        last.deck,
        f"failed with every solver option set tried ({len(ladder)}): " + str(last).split(": ", 1)[-1].split("\n")[0],
        last.log,
        last.params,
    )
