"""Plain-text tables: columns padded to their widest cell."""

from __future__ import annotations


def aligned(head: list[str], body: list[list[str]]) -> list[str]:
    """The header and rows as lines, each column padded to its widest cell."""
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [head, *body]]
