"""README's options table, generated from the option declarations (options.OPTIONS), so that
it cannot drift from them: ``python -m pytest_qrel.options_table`` prints it, and with
``--write README.md`` puts it between the README's markers (tests/unit/test_options_table.py
checks that the README holds the table the declarations give)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from .options import MERGE, MERGE_HELP, OPTIONS, Option

START, END = "<!-- options-table:start -->", "<!-- options-table:end -->"
# a help text ends with its default: "(default: 64)" or "(paper 000 eq. 6; default: 0.99)"
_DEFAULT = re.compile(r"\s*\((?:([^()]*?);\s*)?default: (.*)\)$")


def _cell(text: str) -> str:
    return text.replace("|", r"\|").replace("\n", " ")


def _row(flag: str, help_text: str, default: str | None, key: str) -> str:
    match = _DEFAULT.search(help_text)
    if match:
        what = help_text[:match.start()] + (f" ({match.group(1)})" if match.group(1) else "")
        shown = match.group(2)
    else:
        what, shown = help_text, default or "-"
    return f"| `{flag}` | {_cell(shown)} | {_cell(what)} | `{key}` |"


def markdown_table(opts: tuple[Option, ...] = OPTIONS) -> str:
    """Every option as a Markdown table row: flag, default, what it does, its [tool.qrel] key."""
    lines = ["| option | default | what it does | `[tool.qrel]` key |", "|---|---|---|---|"]
    lines += [_row(opt.flag, opt.help, opt.default, opt.key) for opt in opts]
    lines.append(_row(MERGE, f"RESULTS_JSON ...: {MERGE_HELP}", None, MERGE.removeprefix("--qrel-")))
    return "\n".join(lines) + "\n"


def between_markers(text: str) -> str | None:
    """What a README holds between the markers (None: it has no pair of them)."""
    if START not in text or END not in text:
        return None
    return text.split(START, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def write_into(readme: Path) -> None:
    """Replace what ``readme`` holds between the markers by the generated table."""
    text = readme.read_text()
    if between_markers(text) is None:
        raise SystemExit(f"{readme}: expected the markers {START} and {END}")
    head, rest = text.split(START, 1)
    readme.write_text(f"{head}{START}\n{markdown_table()}{END}{rest.split(END, 1)[1]}")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--write"] and len(argv) == 2:
        write_into(Path(argv[1]))
    elif not argv:
        sys.stdout.write(markdown_table())
    else:
        sys.stderr.write("usage: python -m pytest_qrel.options_table [--write README.md]\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
