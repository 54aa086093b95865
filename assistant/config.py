"""Settings: one frozen value built from `ASSISTANT_*` environment variables.

Only entry points call `load_settings`; everything else receives a `Settings`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from assistant.errors import ConfigError

PREFIX = "ASSISTANT_"
ENCODERS = ("int8", "fp32")  # ASSISTANT_ENCODER's values


def _describe(default: Any, description: str) -> Any:
    return field(default=default, metadata={"description": description})


@dataclass(frozen=True)
class Settings:
    """Every tunable of the assistant, with its default; env var = ASSISTANT_ + NAME upper-cased."""

    index_dir: Path = _describe(Path(".index"), "Where the embedded Chroma index lives.")
    corpus_dir: Path = _describe(Path("corpus"), "The guides to ingest by default.")
    data_dir: Path = _describe(
        Path(".data"), "App state other than the index (the default database, locks, model exports)."
    )
    chroma_host: str = _describe("", "Chroma server host; when set, use it instead of the embedded index.")
    chroma_port: int = _describe(8000, "Chroma server port (with ASSISTANT_CHROMA_HOST).")
    embedding_model: str = _describe(
        "all-MiniLM-L6-v2",
        "Embedding model: 'all-MiniLM-L6-v2' (the packaged copy) or a local model folder.",
    )
    encoder: str = _describe(
        "int8",
        "How guides and questions are embedded: 'int8' (the model's ONNX export quantized by onnxruntime, "
        "for both, without torch once the export exists) or 'fp32' (torch for guides, the float export for "
        "questions); an index records which one built it, and a change rebuilds beside it.",
    )
    model_cache: str = _describe(
        "",
        "Folder for the embedding model's ONNX export, which embeds questions without torch "
        "(written on first use); empty: ASSISTANT_DATA_DIR/models.",
    )
    chunk_size: int = _describe(900, "Target chunk length in characters (MiniLM reads 256 tokens).")
    chunk_overlap: int = _describe(150, "Characters shared by neighbouring chunks of one section.")
    ingest_group: int = _describe(
        1024,
        "Chunks embedded and written per step of an ingest: larger groups pad less in the encoder, "
        "smaller ones journal more often.",
    )
    max_file_mb: float = _describe(20.0, "Documents larger than this are refused at ingest.")
    top_k: int = _describe(5, "Passages given to the answer composer.")
    retrieval_cache_mb: float = _describe(
        256.0,
        "Memory for the chunk records retrieval re-scores, kept between questions (10-15 KB a chunk: the default holds about 20,000); "
        "0: read them from the index every time.",
    )
    min_evidence: float = _describe(
        0.47,
        "Evidence (best similarity + 0.2 x keyword coverage, coverage counted twice when the "
        "question's key terms stand together in a passage or a passage uses a 'what is X?' question's X "
        "as a name) below which the answer is "
        "'the guides don't cover this'; calibrated in docs/calibration.md.",
    )
    max_question_chars: int = _describe(4000, "Longer questions are refused with a clear message.")
    llm_base_url: str = _describe("", "OpenAI-compatible chat-completions server; empty: no LLM.")
    llm_model: str = _describe("", "Model name sent to the LLM server.")
    llm_api_key: str = _describe("", "API key for the LLM server, if it needs one.")
    llm_timeout: float = _describe(30.0, "Seconds before an LLM call is abandoned for the extractive answer.")
    allowed_origins: tuple[str, ...] = _describe(
        (), "Comma-separated origins that may embed the widget and call /api/ask; empty: same origin."
    )
    rate_limit: int = _describe(20, "Questions per client per minute on the public routes.")
    admin_token: str = _describe("", "Bearer token for the admin routes; empty: admin routes disabled.")
    database_url: str = _describe(
        "",
        "The application database (feedback, question log, admin history) as a SQLAlchemy URL, e.g. "
        "postgresql+psycopg://user:pass@host/db for several app processes; empty: ASSISTANT_DATA_DIR/assistant.sqlite3.",
    )
    question_log_days: int = _describe(
        30, "Days the question log keeps questions for the gaps report; 0 turns the log off."
    )
    check_questions: str = _describe(
        "",
        "Questions re-asked after every admin re-ingest, each with the guide it should cite "
        '({"question": ..., "source": ...} per line); empty: check-questions.jsonl in the corpus folder; '
        "a missing file skips the check.",
    )
    host: str = _describe("127.0.0.1", "Interface app.py listens on (--host overrides).")
    port: int = _describe(7860, "Port app.py listens on (--port overrides).")

    @property
    def uses_chroma_server(self) -> bool:
        """True when a Chroma server is configured instead of the embedded index."""
        return bool(self.chroma_host)

    @property
    def check_questions_file(self) -> Path:
        """The file of check questions re-asked after each admin re-ingest."""
        return Path(self.check_questions) if self.check_questions else Path(self.corpus_dir) / "check-questions.jsonl"

    @property
    def model_cache_dir(self) -> Path:
        """Where exported models are kept."""
        return Path(self.model_cache) if self.model_cache else Path(self.data_dir) / "models"

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with some fields changed (e.g. from command-line flags)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def describe_settings() -> list[tuple[str, str, str]]:
    """(environment variable, default, description) for each setting, for docs and --help."""
    rows = []
    for f in fields(Settings):
        default = f.default
        shown = ",".join(default) if isinstance(default, tuple) else str(default)
        rows.append((PREFIX + f.name.upper(), shown, f.metadata["description"]))
    return rows


def _convert(name: str, raw: str, target: Any) -> Any:
    try:
        if isinstance(target, bool):
            return raw.strip().lower() in {"1", "true", "yes", "on"}
        if isinstance(target, int):
            return int(raw)
        if isinstance(target, float):
            return float(raw)
        if isinstance(target, Path):
            return Path(raw)
        if isinstance(target, tuple):
            return tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{PREFIX}{name.upper()}={raw!r} is not a valid {type(target).__name__}") from None
    return raw


def load_settings(environ: Mapping[str, str], **overrides: Any) -> Settings:
    """Build Settings from an environment mapping; keyword overrides (flags) win when not None."""
    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = environ.get(PREFIX + f.name.upper())
        if raw is not None and raw != "":
            values[f.name] = _convert(f.name, raw, f.default)
    settings = Settings(**values).replace(**overrides)
    if settings.chunk_overlap >= settings.chunk_size:
        raise ConfigError("ASSISTANT_CHUNK_OVERLAP must be smaller than ASSISTANT_CHUNK_SIZE")
    if settings.ingest_group < 1:
        raise ConfigError("ASSISTANT_INGEST_GROUP must be at least 1")
    if settings.encoder not in ENCODERS:
        raise ConfigError(f"ASSISTANT_ENCODER must be one of {', '.join(ENCODERS)}, not {settings.encoder!r}")
    if settings.question_log_days < 0:
        raise ConfigError("ASSISTANT_QUESTION_LOG_DAYS must be 0 (no log) or more")
    if settings.retrieval_cache_mb < 0:
        raise ConfigError("ASSISTANT_RETRIEVAL_CACHE_MB must be 0 (no cache) or more")
    if settings.rate_limit < 1:
        raise ConfigError("ASSISTANT_RATE_LIMIT must be at least 1")
    return settings
