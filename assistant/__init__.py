"""Medical Director Onboarding Assistant: cited answers from a corpus of career and role guides."""

__version__ = "0.1.0"
