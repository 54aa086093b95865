"""Question -> ranked passages: dense search, BM25 keywords, fusion, late interaction."""
