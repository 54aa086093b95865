"""The ingest and ask command lines: exit codes and the JSON of CONTRACTS.md."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import ingest
from assistant.__main__ import main as assistant_main
from conftest import PYTHON, REFERENCE, ROOT


def test_ingest_reference_then_again_is_unchanged(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    index = tmp_path / "x"
    assert ingest.main([str(REFERENCE), "--index", str(index), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert set(first) == {"added", "updated", "removed", "unchanged", "chunks", "seconds", "failed"}
    assert first["added"] == 2 and first["chunks"] > 0 and first["failed"] == []
    assert ingest.main([str(REFERENCE), "--index", str(index), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["added"], again["updated"], again["unchanged"]) == (0, 0, 2)


def test_ingest_exit_1_lists_bad_files_and_keeps_good_ones(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "mixed"
    shutil.copytree(REFERENCE, folder)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage")
    (folder / "binary.md").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    assert ingest.main([str(folder), "--index", str(tmp_path / "i"), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    failed = {Path(f["path"]).name: f["error"] for f in report["failed"]}
    assert set(failed) == {"broken.pdf", "binary.md"} and all(failed.values())
    assert report["added"] == 2


def test_ingest_usage_errors_exit_2(tmp_path: Path) -> None:
    assert ingest.main([str(tmp_path / "no-such-folder"), "--index", str(tmp_path / "i")]) == 2
    assert ingest.main(["/dev/null", "--index", str(tmp_path / "i")]) == 2, "a device is not a guide"
    result = subprocess.run([PYTHON, "ingest.py", "--bogus"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "usage" in result.stderr


def test_ask_json_contract_on_the_reference_articles(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    index = tmp_path / "x"
    assert ingest.main([str(REFERENCE), "--index", str(index), "--json"]) == 0
    capsys.readouterr()
    assert assistant_main(["ask", "What is the CMD credential?", "--index", str(index), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert not answer["refused"]
    assert "long term care" in answer["answer"].lower().replace("-", " ")
    assert "medical-director-how-to-start.txt" in {c["source"] for c in answer["citations"]}
    assert {"id", "source", "title", "section", "snippet", "score"} <= set(answer["citations"][0])
    for question in ("What's the capital of France?", "What dose of ibuprofen should I give my child?"):
        assert assistant_main(["ask", question, "--index", str(index), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["refused"] is True


def test_ask_batch_answers_in_order(corpus_index: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        '{"question": "How long is residency?"}\nnot json\n{"question": ""}\n{"question": "What is QAPI?"}\n'
    )
    status = assistant_main(["ask", "--questions", str(questions), "--index", str(corpus_index), "--json"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert status == 1, "bad lines are reported and make the exit status 1"
    assert len(lines) == 4
    assert lines[0]["question"] == "How long is residency?" and lines[0]["citations"]
    assert "error" in lines[1] and "error" in lines[2]
    assert "QAPI" in lines[3]["answer"]


def test_ask_json_says_a_not_covered_topic_is_declined(corpus_index: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    status = assistant_main(["ask", "How much does a medical director earn?", "--index", str(corpus_index), "--json"])
    answer = json.loads(capsys.readouterr().out)
    assert status == 0 and answer["refused"] is True and answer["reason"] == "not_covered"
    assert [c["source"] for c in answer["citations"]] == ["questions-the-guides-do-not-answer.md"]


def test_ask_without_an_index_says_to_ingest(tmp_path: Path) -> None:
    result = subprocess.run(
        [PYTHON, "-m", "assistant", "ask", "How long is residency?", "--index", str(tmp_path / "none")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 3 and "python ingest.py" in result.stderr


def test_calibrate_names_a_missing_or_malformed_question_file(corpus_index: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "How long is residency?"}\n["not", "an object"]\n')
    for flag, path in (("--uncovered", tmp_path / "missing.jsonl"), ("--in-scope", bad)):
        assert assistant_main(["calibrate", "--index", str(corpus_index), flag, str(path)]) == 2
        error = capsys.readouterr().err
        assert error.startswith("error: ") and str(path) in error
    assert "line 2" in error
