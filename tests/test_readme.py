"""The README stays in step with the code: the two Quick start commands and every setting."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from assistant.config import describe_settings
from conftest import PYTHON, ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_quick_start_has_the_two_commands_and_ci_runs_the_test_one() -> None:
    quick = README.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in quick.strip().splitlines()]
    assert commands == ["scripts/run.sh", "scripts/test.sh"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^scripts/test\.sh$", ci, re.MULTILINE)
    for command in commands:
        assert (ROOT / command).stat().st_mode & 0o111, f"{command} is executable"


def test_every_setting_is_documented() -> None:
    for variable, _, _ in describe_settings():
        assert f"`{variable}`" in README, variable


def test_the_python_example_runs_on_an_index(corpus_index: Path, tmp_path: Path) -> None:
    example = README.split("```python", 1)[1].split("```", 1)[0]
    env = {**os.environ, "ASSISTANT_INDEX_DIR": str(corpus_index), "ASSISTANT_DATA_DIR": str(tmp_path)}
    result = subprocess.run([PYTHON, "-c", example], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "cmd-credential-long-term-care.md" in result.stdout
