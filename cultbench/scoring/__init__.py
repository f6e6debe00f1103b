"""Scoring: loading a model, packing an instrument's prompts, and reading each item's answer
distribution, expected answer and indices for a batch of candidates (and human answers' indices)."""
