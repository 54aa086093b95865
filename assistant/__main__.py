"""`python -m assistant SUBCOMMAND`: ask, eval-beir, eval-answers, bench, calibrate, feedback, gaps.

Exit status: 0 ok; 1 a question could not be answered (bad input, batch line errors);
2 usage error; 3 the index is missing or the store is unavailable.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from assistant.logsetup import configure_logging, offline_environment

logger = logging.getLogger("assistant")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m assistant", description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", required=True)

    ask = sub.add_parser("ask", help="answer a question (or a JSONL file of questions) from the index")
    ask.add_argument("question", nargs="?", help="the question")
    ask.add_argument("--questions", type=Path, help='JSONL file, one {"question": "..."} per line')
    ask.add_argument("--index", type=Path, help="index folder (default: ASSISTANT_INDEX_DIR or .index/)")
    ask.add_argument("--json", action="store_true", help="print the answer object as JSON")

    beir = sub.add_parser("eval-beir", help="evaluate retrieval on a BEIR-format dataset")
    beir.add_argument("dataset", type=Path, help="folder with corpus.jsonl, queries.jsonl, qrels/test.tsv")
    beir.add_argument("--json", action="store_true", help="print the figures as JSON")
    beir.add_argument("--k", type=int, default=10, help="cut-off for nDCG and MRR (default 10)")
    beir.add_argument("--split", default="test", help="qrels split to evaluate (default test)")
    beir.add_argument("--limit", type=int, help="evaluate only the first N queries (a quick slice)")

    answers = sub.add_parser(
        "eval-answers", help="score the answers' lead sentences against gold spans, with baselines"
    )
    answers.add_argument(
        "dataset", type=Path, nargs="?", help="folder with articles/ and questions.jsonl (omit with --gold)"
    )
    answers.add_argument(
        "--gold", action="store_true", help="the shipped corpus/ with tests/gold_questions.jsonl (key phrases)"
    )
    answers.add_argument("--json", action="store_true", help="print the figures as JSON")
    answers.add_argument("--limit", type=int, help="only the first N questions (a quick slice)")
    answers.add_argument("--details", type=Path, help="write one JSON line per question to this file")

    bench = sub.add_parser("bench", help="measure ingest throughput, re-ingest and query latency")
    bench.add_argument("--quick", action="store_true", help="one small corpus; under a minute")
    bench.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    bench.add_argument(
        "--sizes",
        type=_sizes,
        help="generated corpus sizes in guides, e.g. 100,1000,10000 (default 100,1000; --quick: 30)",
    )

    load = sub.add_parser("loadtest", help="concurrent clients against a running app's /api/ask (loopback only)")
    load.add_argument("--url", default="http://127.0.0.1:7860", help="the app (this machine only)")
    load.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    load.add_argument("--seconds", type=float, default=60.0, help="how long to run (default 60)")
    load.add_argument("--pid", type=int, help="the app's process id, to sample its memory")
    load.add_argument("--json", action="store_true", help="print the figures as one JSON object")

    calib = sub.add_parser("calibrate", help="choose the refusal threshold from in-scope and off-topic questions")
    calib.add_argument("--index", type=Path, help="index of the shipped corpus (default: ASSISTANT_INDEX_DIR)")
    calib.add_argument("--in-scope", type=Path, default=Path("tests/gold_questions.jsonl"))
    calib.add_argument("--off-topic", type=Path, default=Path("tests/offtopic_questions.jsonl"))
    calib.add_argument(
        "--uncovered",
        type=Path,
        action="append",
        default=[],
        help="questions about the role that the guides do not answer: report how many are declined (repeatable)",
    )

    feedback = sub.add_parser("feedback", help="likes and dislikes given in the chat")
    feedback.add_argument("action", choices=["export"], help="export: print every rating")
    feedback.add_argument("--csv", action="store_true", help="as CSV (the default and only format for now)")

    gaps = sub.add_parser("gaps", help="declined and 👎-rated questions grouped by meaning, with the nearest guide")
    gaps.add_argument("--index", type=Path, help="the index the app serves (default: ASSISTANT_INDEX_DIR)")
    gaps.add_argument("--days", type=int, help="look back this many days (default: ASSISTANT_QUESTION_LOG_DAYS)")
    shown = gaps.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="the report as the JSON of GET /api/admin/gaps")
    shown.add_argument("--csv", action="store_true", help="one group a row, for a spreadsheet")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    offline_environment()
    configure_logging(args.verbose)
    from assistant.config import load_settings
    from assistant.errors import AssistantError, DatabaseError, IndexMissingError, StoreUnavailableError

    try:
        settings = load_settings(os.environ, index_dir=getattr(args, "index", None))
        if args.command == "ask":
            return _ask(args, settings)
        if args.command == "loadtest":
            from assistant.devtools.loadtest import run_loadtest

            figures = run_loadtest(args.url, args.clients, args.seconds, args.pid)
            print(json.dumps(figures) if args.json else json.dumps(figures, indent=2))
            return 1 if figures["errors"] else 0
        if args.command == "calibrate":
            from assistant.devtools.calibration import calibrate
            from assistant.service import Assistant

            report = calibrate(Assistant.from_settings(settings), args.in_scope, args.off_topic, args.uncovered)
            print(json.dumps(report, indent=2))
            return 0
        if args.command == "bench":
            return _bench(args, settings)
        if args.command == "eval-beir":
            return _eval_beir(args, settings)
        if args.command == "eval-answers":
            return _eval_answers(args, settings)
        if args.command == "feedback":
            return _feedback(settings)
        if args.command == "gaps":
            return _gaps(args, settings)
    except (IndexMissingError, StoreUnavailableError, DatabaseError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except AssistantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command}")
    return 2


def _ask(args: argparse.Namespace, settings) -> int:  # type: ignore[no-untyped-def]
    from assistant.errors import InputError
    from assistant.service import Assistant

    if bool(args.question) == bool(args.questions):
        print("error: give either a QUESTION or --questions FILE.jsonl", file=sys.stderr)
        return 2
    if args.questions and not args.questions.is_file():
        print(f"error: no such file: {args.questions}", file=sys.stderr)
        return 2
    assistant = Assistant.from_settings(settings)
    questions = _read_questions(args.questions) if args.questions else iter([args.question])
    status = 0
    for question in questions:
        try:
            answer = assistant.ask(question)
        except InputError as exc:
            status = 1
            if args.json:
                print(json.dumps({"question": question, "error": str(exc)}))
            else:
                print(f"error: {exc}", file=sys.stderr)
            continue
        if args.json:
            print(json.dumps(answer.to_json(), ensure_ascii=False), flush=True)
        else:
            print(answer.answer)
            for c in answer.citations:
                print(f"  [{c.id}] {c.title} — {c.section or 'overview'} ({c.source})")
            print(flush=True)
    return status


def _read_questions(path: Path) -> Iterator[object]:
    """Questions of a JSONL file; a malformed line yields a non-string so it is reported in order."""
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                logger.warning("line %d of %s is not JSON", number, path)
                yield None
                continue
            yield record.get("question") if isinstance(record, dict) else None


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 100,1000,10000, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes must be positive numbers of guides")
    return sizes


def _bench(args: argparse.Namespace, settings) -> int:  # type: ignore[no-untyped-def]
    from assistant.devtools.bench import run_bench

    figures = run_bench(settings, quick=args.quick, sizes=args.sizes)
    print(json.dumps(figures) if args.json else json.dumps(figures, indent=2))
    return 0


def _eval_beir(args: argparse.Namespace, settings) -> int:  # type: ignore[no-untyped-def]
    from assistant.devtools.eval import evaluate_beir

    if not (args.dataset / "queries.jsonl").is_file():
        print(f"error: {args.dataset} is not a BEIR dataset (no queries.jsonl)", file=sys.stderr)
        return 2
    figures = evaluate_beir(args.dataset, settings, k=args.k, split=args.split, limit=args.limit)
    print(json.dumps(figures) if args.json else "\n".join(f"{k}: {v}" for k, v in figures.items()))
    return 0


def _eval_answers(args: argparse.Namespace, settings) -> int:  # type: ignore[no-untyped-def]
    from assistant.devtools.answer_eval import evaluate_answers, iter_lines

    if bool(args.dataset) == bool(args.gold):
        print("error: give either a DATASET folder or --gold", file=sys.stderr)
        return 2
    root = Path(__file__).resolve().parent.parent
    articles, questions = (
        (root / "corpus", root / "tests" / "gold_questions.jsonl")
        if args.gold
        else (args.dataset / "articles", args.dataset / "questions.jsonl")
    )
    if not questions.is_file() or not articles.is_dir():
        print(f"error: {args.dataset} needs articles/ and questions.jsonl", file=sys.stderr)
        return 2
    figures = evaluate_answers(articles, questions, settings, limit=args.limit, details=args.details)
    print(json.dumps(figures) if args.json else "\n".join(iter_lines(figures)))
    return 0


def _feedback(settings) -> int:  # type: ignore[no-untyped-def]
    import csv

    from assistant.records.database import FEEDBACK_COLUMNS, Database, exported_rows

    database = Database.from_settings(settings)
    rows = exported_rows(database.feedback_rows())  # DatabaseError: exit 3 with the reason
    writer = csv.DictWriter(sys.stdout, fieldnames=FEEDBACK_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    logger.info("exported %d ratings from %s", len(rows), database.shown_url)
    return 0


def _gaps(args: argparse.Namespace, settings) -> int:  # type: ignore[no-untyped-def]
    from assistant.records.database import Database
    from assistant.service import Assistant
    from assistant.web.review import gaps_csv, gaps_report, gaps_text

    if args.days is not None and args.days < 1:
        print("error: --days must be 1 or more", file=sys.stderr)
        return 2
    report = gaps_report(Assistant.from_settings(settings), Database.from_settings(settings), args.days)
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    elif args.csv:
        sys.stdout.write(gaps_csv(report))
    else:
        print(gaps_text(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
