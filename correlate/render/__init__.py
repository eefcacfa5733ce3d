"""Renderers: an :class:`~correlate.analysis.verdict.Analysis` in, text out."""
