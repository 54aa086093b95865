"""How the web edge answers the error tree: one table from error type to HTTP status.

The API routes raise; one FastAPI exception handler answers `{"error": message}` with the status
below. The Gradio handlers use the same table, so a message and its severity match in both.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from assistant.errors import (
    AssistantError,
    DatabaseError,
    IndexBusyError,
    IndexMissingError,
    InputError,
    NotFoundError,
    StoreUnavailableError,
    TooLargeError,
)

logger = logging.getLogger(__name__)

# Most specific first: the first row whose type matches decides.
STATUS_OF: tuple[tuple[type[AssistantError], int], ...] = (
    (TooLargeError, 413),
    (InputError, 400),
    (NotFoundError, 404),
    (DatabaseError, 503),
    (StoreUnavailableError, 503),
    (IndexMissingError, 503),
    (IndexBusyError, 503),  # another process is writing the index: try again shortly
    (AssistantError, 500),
)


def status_for(exc: AssistantError) -> int:
    """The HTTP status an error is answered with."""
    return next(status for kind, status in STATUS_OF if isinstance(exc, kind))


def describe(exc: AssistantError) -> str:
    """The message shown for an error; server faults are logged here, once."""
    if status_for(exc) >= 500:
        logger.error("request failed: %s: %s", type(exc).__name__, exc)
    return str(exc)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON body every refusal of the API has: {"error": message}."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def install_error_handler(app: FastAPI) -> None:
    """Answer every AssistantError a route raises from the table."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AssistantError)
        return error_response(status_for(exc), describe(exc))

    app.add_exception_handler(AssistantError, handle)
