"""Medical Director Onboarding Assistant: cited answers from a corpus of career and role guides.

The public API::

    import os
    from assistant import Assistant, load_settings

    assistant = Assistant.from_settings(load_settings(os.environ))
    answer = assistant.ask("What is the CMD credential?")
    print(answer.answer, [c.source for c in answer.citations])

Names are loaded on first use, so `import assistant.config` (as the entry points do before
they set up an offline environment) does not load the whole pipeline.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Answer", "Assistant", "AssistantError", "Citation", "Settings", "load_settings"]

_HOMES = {
    "Answer": "assistant.answering.citations",
    "Citation": "assistant.answering.citations",
    "Assistant": "assistant.service",
    "AssistantError": "assistant.errors",
    "Settings": "assistant.config",
    "load_settings": "assistant.config",
}

if TYPE_CHECKING:
    from assistant.answering.citations import Answer, Citation
    from assistant.config import Settings, load_settings
    from assistant.errors import AssistantError
    from assistant.service import Assistant


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'assistant' has no attribute {name!r}")
