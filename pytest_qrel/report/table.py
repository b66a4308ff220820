"""Plain-text tables: columns padded to their widest cell."""

from __future__ import annotations


def aligned(head: list[str], body: list[list[str]]) -> list[str]:
    """The header and rows as lines, each column padded to its widest cell."""
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [head, *body]]


def markdown_table(head: list[str], body: list[list[str]]) -> list[str]:
    """The header and rows as a Markdown table, and a blank line after it."""
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *("| " + " | ".join(row) + " |" for row in body), ""]


def write_table(terminalreporter, title: str, head: list[str], body: list[list[str]]) -> None:
    """A blank line, the title and the aligned table, in the terminal summary."""
    terminalreporter.write_line("")
    terminalreporter.write_line(title)
    for line in aligned(head, body):
        terminalreporter.write_line(line)
