"""Answer-level evaluation (`python -m assistant eval-answers`): scoring rules and the command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.__main__ import main as assistant_main
from assistant.devtools.answer_eval import answer_sentences, holds, load_questions, normalise
from assistant.errors import InputError


def test_normalise_follows_squad() -> None:
    assert normalise("The HCoV-OC43, an (alpha) virus.") == ["hcov", "oc43", "alpha", "virus"]


@pytest.mark.parametrize(
    ("span", "text", "expected"),
    [
        ("metered dose inhalers", "Most use metered-dose inhalers or nebulisers.", True),
        ("metered dose inhalers", "Inhalers come in many forms.", False),
        # 4 of 5 tokens is the 80% share; 3 of 5 is not.
        ("one two three four five", "one two three four", True),
        ("one two three four five", "one two three", False),
        # Tokens count with multiplicity: "no no" needs two.
        ("no no", "no", False),
        ("", "anything", False),
    ],
)
def test_a_place_holds_a_span_when_most_of_its_tokens_are_there(span: str, text: str, expected: bool) -> None:
    assert holds(normalise(span), text) is expected


def test_answer_sentences_drop_markers_and_bullets_and_split_sentences() -> None:
    answer = "Residency lasts 3 years. It can be longer. [1]\n\n- Fellowships add **one** to three. [2]"
    assert answer_sentences(answer) == [
        "Residency lasts 3 years.",
        "It can be longer.",
        "Fellowships add one to three.",
    ]


def test_questions_file_errors_say_which_line(tmp_path: Path) -> None:
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"question": "q", "answer": "a"}\nnot json\n', encoding="utf-8")
    with pytest.raises(InputError, match="line 2 is not JSON"):
        load_questions(bad)
    bad.write_text('{"question": "q"}\n', encoding="utf-8")
    with pytest.raises(InputError, match="line 1 needs"):
        load_questions(bad)
    bad.write_text("\n\n", encoding="utf-8")
    with pytest.raises(InputError, match="no questions"):
        load_questions(bad)
    with pytest.raises(InputError, match="no such file"):
        load_questions(tmp_path / "missing.jsonl")


ARTICLE_A = """Inhaled drug delivery

Several devices deliver drugs to the lungs. The most common are metered dose inhalers and dry powder
inhalers. Nebulisers are used mostly in hospitals. Each device needs a different technique.
"""
ARTICLE_B = """A cohort of children

The study followed children in three clinics over two winters. The mean age of the participants was
4.2 years. Most children had been vaccinated. Fever was the most frequent sign at presentation.
"""


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    folder = tmp_path / "dataset"
    (folder / "articles").mkdir(parents=True)
    (folder / "articles" / "inhalers.txt").write_text(ARTICLE_A, encoding="utf-8")
    (folder / "articles" / "cohort.txt").write_text(ARTICLE_B, encoding="utf-8")
    questions = [
        {
            "question": "What are the most common inhalation devices?",
            "answer": "metered dose inhalers",
            "source": "inhalers.txt",
        },
        {"question": "What was the mean age of the participants?", "answer": "4.2 years", "source": "cohort.txt"},
    ]
    (folder / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions), encoding="utf-8")
    return folder


def test_eval_answers_scores_answers_baselines_and_ceiling(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "data"))
    details = tmp_path / "details.jsonl"
    assert assistant_main(["eval-answers", str(dataset), "--json", "--details", str(details)]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["questions"] == 2
    assert {"lead@1", "top3", "any", "cited", "refused", "median_words", "seconds"} <= figures.keys()
    assert set(figures["baselines"]) == {"first_sentence_top_chunk", "best_sentence_vector", "best_sentence_overlap"}
    assert figures["ceiling"]["top1_chunk"] == 1.0, "each answer is in its article's only chunk"
    assert figures["cited"] == 1.0 and figures["refused"] == 0.0
    rows = [json.loads(line) for line in details.read_text(encoding="utf-8").splitlines()]
    assert [r["question"] for r in rows] == [
        "What are the most common inhalation devices?",
        "What was the mean age of the participants?",
    ]
    # The figures are the per-question hits averaged: they cannot disagree with the details.
    assert figures["lead@1"] == sum(r["lead"] for r in rows) / 2
    assert figures["lead@1"] == 1.0, "the sentence that answers leads, not the one that frames the topic"


def test_eval_answers_bad_input_exits_2_with_a_reason(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "data"))
    assert assistant_main(["eval-answers", str(tmp_path / "nowhere")]) == 2
    assert "needs articles/ and questions.jsonl" in capsys.readouterr().err
    assert assistant_main(["eval-answers"]) == 2
    assert "either a DATASET folder or --gold" in capsys.readouterr().err
    (dataset / "questions.jsonl").write_text('{"question": "q", "answer": "a"}\n{broken\n', encoding="utf-8")
    assert assistant_main(["eval-answers", str(dataset)]) == 2
    assert "line 2 is not JSON" in capsys.readouterr().err
