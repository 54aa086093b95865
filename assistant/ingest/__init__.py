"""Incremental ingest: guides on disk -> chunks in the index, with a journal."""
