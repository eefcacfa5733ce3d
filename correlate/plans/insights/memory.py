"""Work that outgrew work_mem: sorts and hashes spilled to disk, bitmaps gone lossy."""

from __future__ import annotations

from correlate.plans.insights.base import Insight, InsightContext, count
from correlate.plans.model import Plan
from correlate.severity import Severity

#: more hash batches than this means the hash spilled past work_mem (PEV2 flags > 1)
HASH_BATCHES_SPILL = 1


def disk_spill(plan: Plan, context: InsightContext) -> list[Insight]:
    """A sort or hash that spilled to disk.

    Sources: pganalyze EXPLAIN insights "Disk Sort" and "Hash Batches",
    explain.depesz.com's DISK_SORT hint, PEV2's "Hash Batches > 1". Spill:
    ``Sort Space Type`` Disk or an
    external sort method, or hash batches above ``HASH_BATCHES_SPILL``.
    """
    found = []
    for node in plan.nodes:
        sort_disk = (node.sort_space_type or "").lower() == "disk" or "external" in (
            node.sort_method or ""
        )
        hash_spill = node.hash_batches is not None and node.hash_batches > HASH_BATCHES_SPILL
        if not (sort_disk or hash_spill):
            continue
        if sort_disk:
            what = f"sort spilled {count(node.sort_space_kb)} kB to disk ({node.sort_method})"
        else:
            what = f"hash needed {count(node.hash_batches)} batches (spilled past work_mem)"
        found.append(
            Insight(
                rule="disk_spill",
                severity=Severity.WARNING,
                node_id=node.node_id,
                relation=node.relation,
                message=f"measured: {node.label}: {what}",
                suggestion="raise work_mem for this query, or sort/hash fewer rows",
                evidence={
                    "sort_method": node.sort_method,
                    "sort_space_kb": node.sort_space_kb,
                    "hash_batches": node.hash_batches,
                    "temp_written_blocks": node.temp_written_blocks,
                },
                measured=True,
            )
        )
    return found


#: any lossy heap block means work_mem was too small for an exact bitmap
LOSSY_HEAP_BLOCKS_MIN = 1


def lossy_bitmap(plan: Plan, context: InsightContext) -> list[Insight]:
    """A bitmap heap scan that went lossy and rechecked whole pages.

    Source: pganalyze EXPLAIN insight "Lossy Bitmaps"; pgMustard's lossy-bitmap tip.
    Threshold ``LOSSY_HEAP_BLOCKS_MIN``.
    """
    found = []
    for node in plan.nodes:
        lossy = node.lossy_heap_blocks
        if lossy is None or lossy < LOSSY_HEAP_BLOCKS_MIN:
            continue
        found.append(
            Insight(
                rule="lossy_bitmap",
                severity=Severity.WARNING,
                node_id=node.node_id,
                relation=node.relation,
                message=(
                    f"measured: {node.label} had {count(lossy)} lossy heap blocks; "
                    f"{count(node.rows_removed_by_index_recheck)} rows removed by recheck"
                ),
                suggestion="raise work_mem so the bitmap stays exact",
                evidence={
                    "lossy_heap_blocks": lossy,
                    "exact_heap_blocks": node.exact_heap_blocks,
                    "rows_removed_by_index_recheck": node.rows_removed_by_index_recheck,
                },
                measured=True,
            )
        )
    return found
