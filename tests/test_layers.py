"""The core never imports the UI, and nothing is downloaded or loaded at import."""

from __future__ import annotations

import subprocess

from conftest import PYTHON, ROOT


def test_core_does_not_import_gradio_or_load_models() -> None:
    code = (
        "import sys, assistant.service, assistant.sync, assistant.answer;"
        "bad = [m for m in ('gradio', 'fastapi', 'sentence_transformers', 'torch') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([PYTHON, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
