"""The layering of imports (docs/DESIGN.md, "Import rules"), checked by parsing every module.

``circuits`` and ``devices`` import nothing else of the project, ``models`` only
``devices``, ``cosim`` may import all. Every ``import`` statement counts, also the lazy
ones inside functions, relative ones (``from ..devices import x``) and
``importlib.import_module("rramsim....")`` with a literal name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAYERS = ("circuits", "devices", "models", "cosim")
#: what each layer may import of the project (besides itself)
ALLOWED = {"circuits": set(), "devices": set(), "models": {"devices"}, "cosim": {"circuits", "devices", "models"}}


def _module_parts(root: Path, path: Path) -> list[str]:
    """``models/methods/forms.py`` -> ``["rramsim", "models", "methods", "forms"]``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ["rramsim", *parts]


def _imported_names(tree: ast.AST, here: list[str], is_package: bool):
    """(line, absolute dotted name) of every import in ``tree``; ``here`` is the module's name."""
    package = here if is_package else here[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            if prefix == "rramsim":  # from rramsim import models, __version__
                for alias in node.names:
                    yield node.lineno, f"rramsim.{alias.name}"
            else:
                yield node.lineno, prefix
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                yield node.lineno, node.args[0].value


def violations(root: Path) -> list[str]:
    """Every import in ``root``'s layer folders that breaks the rules, as ``file:line: text``."""
    found = []
    for layer in LAYERS:
        for path in sorted((root / layer).rglob("*.py")):
            here = _module_parts(root, path)
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for line, name in _imported_names(tree, here, path.name == "__init__.py"):
                parts = name.split(".")
                if parts[0] != "rramsim" or len(parts) < 2 or parts[1] not in LAYERS:
                    continue  # outside the project, or its version only
                target = parts[1]
                if target != layer and target not in ALLOWED[layer]:
                    found.append(
                        f"{path.relative_to(root)}:{line}: {layer} imports {name} "
                        f"({layer} may import {', '.join(sorted(ALLOWED[layer])) or 'nothing else'} "
                        "of the project)"
                    )
    return found


#: what no module of ``models`` may import: it never shells out or installs anything
SHELL_MODULES = ("subprocess", "pty")


def shell_imports(root: Path) -> list[str]:
    """``file:line: name`` of every import under ``root / "models"`` that could shell out."""
    found = []
    for path in sorted((root / "models").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, name in _imported_names(tree, _module_parts(root, path), path.name == "__init__.py"):
            if name.split(".")[0] in SHELL_MODULES:
                found.append(f"{path.relative_to(root)}:{line}: models imports {name}")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("system", "popen", "execv", "execvp")
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
            ):
                found.append(f"{path.relative_to(root)}:{node.lineno}: models calls os.{node.attr}")
    return found


def test_models_never_shell_out():
    """Fetching data and installing packages belong to the set-up and to ``cosim``."""
    assert shell_imports(REPO) == []


def test_a_shell_call_in_models_is_caught(tmp_path):
    root = _tree(tmp_path, {"models/data.py": "import os\ndef f():\n    import subprocess\n    os.system('x')\n"})
    assert [f.split(": ", 1)[1] for f in shell_imports(root)] == ["models imports subprocess", "models calls os.system"]


def test_the_project_keeps_its_import_rules():
    for layer in LAYERS:  # the walk really sees the modules
        assert len(list((REPO / layer).rglob("*.py"))) >= 3, layer
    assert violations(REPO) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    for layer in LAYERS:
        (tmp_path / layer).mkdir(exist_ok=True)
        (tmp_path / layer / "__init__.py").touch()
    return tmp_path


def test_a_clean_tree_passes(tmp_path):
    root = _tree(
        tmp_path,
        {
            "devices/table.py": "import numpy as np\nfrom rramsim import __version__\n",
            "models/tile.py": "from rramsim.devices import DeviceTable\nfrom .config import CrossbarConfig\n",
            "models/methods/__init__.py": "",
            "models/methods/m.py": "from ..tile import TileEngine\nfrom ...devices.table import DeviceTable\n",
            "cosim/cli.py": "from rramsim.models import data\nfrom rramsim.circuits import render\n",
        },
    )
    assert violations(root) == []


@pytest.mark.parametrize(
    "rel, text, culprit",
    [
        ("models/bad.py", "from rramsim.cosim.ngspice import Session\n", "models imports rramsim.cosim.ngspice"),
        ("models/bad.py", "def f():\n    from rramsim.circuits import render\n", "models imports rramsim.circuits"),
        ("models/methods/bad.py", "from ...cosim import cli\n", "models imports rramsim.cosim"),
        ("devices/bad.py", "from ..models import tile\n", "devices imports rramsim.models"),
        ("devices/bad.py", "from rramsim import models\n", "devices imports rramsim.models"),
        ("circuits/bad.py", "import rramsim.devices.table\n", "circuits imports rramsim.devices.table"),
        (
            "circuits/bad.py",
            "import importlib\nimportlib.import_module('rramsim.cosim.cli')\n",
            "circuits imports rramsim.cosim.cli",
        ),
    ],
)
def test_a_broken_rule_fails_and_names_the_file_and_line(tmp_path, rel, text, culprit):
    root = _tree(tmp_path, {"models/methods/__init__.py": "", rel: text})
    found = violations(root)
    assert len(found) == 1, found
    assert found[0].startswith(f"{rel}:") and culprit in found[0]
