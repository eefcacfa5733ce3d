"""Ingest: trace files and directories into a run of the store.

The pipeline is :func:`correlate.ingest.pipeline.ingest`; the formats it reads
are listed in :data:`correlate.ingest.registry.INPUT_FORMATS`, each declared by
its reader module. This package only re-exports.
"""

from __future__ import annotations

from correlate.ingest.pipeline import ingest
from correlate.ingest.progress import Progress
from correlate.ingest.registry import INPUT_FORMATS, format_named, format_names
from correlate.ingest.report import FileReport, IngestReport, Problem

__all__ = [
    "INPUT_FORMATS",
    "FileReport",
    "IngestReport",
    "Problem",
    "Progress",
    "format_named",
    "format_names",
    "ingest",
]
