"""Logging set-up for entry points (library modules only create loggers)."""

from __future__ import annotations

import logging
import os
import warnings


def configure_logging(verbose: bool = False) -> None:
    """Log to stderr; quiet the chatty third-party loggers unless verbose."""
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    # bm25s sets its own logger to DEBUG when imported (after this runs), so filter at the handler.
    for handler in logging.getLogger().handlers:
        handler.addFilter(
            lambda record: verbose or not record.name.startswith("bm25s") or record.levelno >= logging.WARNING
        )
    for name in ("httpx", "httpcore", "chromadb", "sentence_transformers", "transformers", "urllib3", "bm25s"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)


def offline_environment() -> None:
    """Make any accidental download fail loudly and stop telemetry; call before heavy imports."""
    for key, value in {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "ANONYMIZED_TELEMETRY": "False",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "TOKENIZERS_PARALLELISM": "false",
    }.items():
        os.environ.setdefault(key, value)
