"""Renderers: analysis results in, text out, through one registry (:mod:`.registry`).

Shared by every renderer: :mod:`.escape` (what trace text becomes in each
output) and :mod:`.units` (milliseconds, shares, counts, evidence units).
"""

from __future__ import annotations

from correlate.render.registry import RENDERERS, Renderer, find_renderer, format_names, renderers

__all__ = ["RENDERERS", "Renderer", "find_renderer", "format_names", "renderers"]
