"""Errors raised by the assistant core.

The tree::

    AssistantError                 base class; never raised itself
    ├── ConfigError                a setting has a value we cannot use
    ├── DocumentError              one document cannot be loaded (bad bytes, empty, corrupt)
    ├── IndexMissingError          no index yet where one is needed
    ├── IndexBusyError             another process is writing the embedded index
    ├── StoreUnavailableError      the Chroma server does not answer
    ├── DatabaseError              the application database (feedback, question log) fails
    ├── NotFoundError              an admin action names a guide or question that does not exist
    ├── InputError                 a question or upload that we refuse to process
    │   └── TooLargeError          ... because it is over its size limit (HTTP 413)
    └── LLMError                   the optional LLM server failed (callers fall back)

Entry points translate these: the CLIs print the message and exit non-zero, the API
answers 4xx/503 JSON, the UI shows a notice. Messages name the next step.
"""

from __future__ import annotations


class AssistantError(Exception):
    """Base class of every error the assistant raises on purpose."""


class ConfigError(AssistantError):
    """Raised when a setting (environment variable or flag) has an unusable value."""


class DocumentError(AssistantError):
    """Raised when one document cannot be loaded; ingest records it and carries on."""


class IndexMissingError(AssistantError):
    """Raised when the index does not exist yet, e.g. asking before ingesting."""


class IndexBusyError(AssistantError):
    """Raised when another process holds the lock on the embedded index."""


class StoreUnavailableError(AssistantError):
    """Raised when the vector store (usually a Chroma server) cannot be reached."""


class DatabaseError(AssistantError):
    """Raised when the application database cannot be reached or written; answers are still given."""


class NotFoundError(AssistantError):
    """Raised when a request names a guide or logged question that does not exist (HTTP 404)."""


class InputError(AssistantError):
    """Raised for a question or upload we refuse: empty, too long, wrong type."""


class TooLargeError(InputError):
    """Raised for an upload or body over its size limit."""


class LLMError(AssistantError):
    """Raised when the optional LLM server fails; the extractive answer is used instead."""
