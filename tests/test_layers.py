"""The layers of the package: each module imports only from its own layer or below.

Nothing is downloaded or loaded at import either: the core never imports the UI or a model.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

from conftest import PYTHON, ROOT

# Lowest first. A module may import its own layer and the layers above it in this list.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("assistant.errors", "assistant.config", "assistant.logsetup"),
    ("assistant.documents",),
    ("assistant.embedding",),
    ("assistant.index", "assistant.records"),
    ("assistant.ingest", "assistant.retrieval"),
    ("assistant.answering",),
    ("assistant.service", "assistant.migration", "assistant.slot"),
    ("assistant.web", "assistant.devtools"),
    ("assistant.__main__",),
)
# The public API in assistant/__init__.py resolves names lazily and belongs to no layer.
UNLAYERED = ("assistant",)


def layer_of(module: str) -> int | None:
    """The index in LAYERS of the layer a dotted module name belongs to (None: not layered)."""
    for level, packages in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in packages):
            return level
    return None


def imported_modules(path: Path) -> set[str]:
    """Every `assistant...` module a file imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("assistant")}
        elif (
            isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("assistant")
        ):
            found.add(node.module)
    return found


def module_name(path: Path, package_root: Path) -> str:
    parts = list(path.relative_to(package_root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def violations(package_root: Path) -> list[str]:
    """'importer -> imported' for every import that points to a higher layer, and unlayered modules."""
    out = []
    for path in sorted(package_root.rglob("*.py")):
        name = module_name(path, package_root)
        if name in UNLAYERED:
            continue
        own = layer_of(name)
        if own is None:
            out.append(f"{name} is in no layer of LAYERS")
            continue
        for target in sorted(imported_modules(path)):
            level = layer_of(target)
            if level is not None and level > own:
                out.append(f"{name} -> {target}")
    return out


def test_every_module_imports_only_from_its_layer_or_below() -> None:
    assert violations(ROOT / "assistant") == []


def test_an_upward_import_is_reported(tmp_path: Path) -> None:
    package = tmp_path / "assistant"
    (package / "index").mkdir(parents=True)
    (package / "web").mkdir()
    (package / "web" / "ui.py").write_text("from assistant.index.store import Store\n")
    (package / "index" / "store.py").write_text("def f():\n    from assistant.web import ui\n")
    (package / "stray.py").write_text("")
    assert violations(package) == [
        "assistant.index.store -> assistant.web",
        "assistant.stray is in no layer of LAYERS",
    ]


@pytest.mark.parametrize("module", ["assistant.service", "assistant.ingest.sync", "assistant.answering.composer"])
def test_core_does_not_import_the_ui_or_load_models(module: str) -> None:
    code = (
        f"import sys, {module};"
        "bad = [m for m in ('gradio', 'fastapi', 'sentence_transformers', 'torch') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([PYTHON, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_public_api() -> None:
    code = (
        "import assistant;"
        "from assistant import Answer, Assistant, AssistantError, Citation, Settings, load_settings;"
        "assert sorted(assistant.__all__) == sorted(['Answer', 'Assistant', 'AssistantError', 'Citation', "
        "'Settings', 'load_settings']);"
        "assert Assistant.__module__ == 'assistant.service'"
    )
    result = subprocess.run([PYTHON, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
