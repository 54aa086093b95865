"""The Chroma store and the index lock."""
