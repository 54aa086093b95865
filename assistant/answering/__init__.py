"""Passages -> a cited answer: question analysis, the evidence gate, the composer, generation."""
