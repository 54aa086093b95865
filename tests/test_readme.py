"""The README stays in step with the code: the two Quick start commands and every setting."""

from __future__ import annotations

import re

from assistant.config import describe_settings
from conftest import ROOT

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
