"""The README starts with the user's job and stays short; the docs pages it links to exist and
each opens with a command; CI runs the commands the README shows (issue 35, item 6)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, ROOT / "tests" / "README.md", ROOT / "benchmarks" / "README.md", *DOCS]


def _section(text: str, heading: str) -> str:
    """The text under ``## heading`` up to the next heading of the same level."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"README has no '## {heading}' section"
    return match.group(1)


def _commands(block: str) -> list[str]:
    """The commands of a shell code block, comments and continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip()]


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M)


def test_the_readme_is_short_and_its_first_command_after_install_gates_a_checkpoint_of_ones_own():
    text = README.read_text()
    assert len(text.splitlines()) < 250
    after_install = text.split("\n## Install\n", 1)[1]
    first_command = _commands(_code_blocks(after_install)[1])[0]  # [0] is the install block
    assert first_command.startswith("pytest --qrel-models=./"), first_command


def test_ci_runs_the_readmes_install_and_test_commands():
    text, ci = README.read_text(), (ROOT / ".ci" / "run").read_text()
    ci_commands = [c.replace(" -q", "").replace(" --no-compile", "") for c in _commands(ci)]
    install = _commands(_code_blocks(_section(text, "Install"))[0])
    assert install[0] == "pip install torch==2.13.0"  # torch pinned first: an unpinned one pulls CUDA
    assert install == [c for c in ci_commands if c.startswith("pip install")]
    (test_command,) = _commands(_code_blocks(_section(text, "Run the project's tests"))[0])
    assert any(c.startswith(test_command + " ") for c in ci_commands), test_command


def test_the_options_table_has_its_own_section_between_the_generators_markers():
    options = _section(README.read_text(), "Options")
    table = options.split("<!-- options-table:start -->\n", 1)[1].split("<!-- options-table:end -->", 1)[0]
    assert table.startswith("| option | default | what it does | `[tool.qrel]` key |")


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_every_docs_page_opens_with_an_example(page: Path):
    lines = [line for line in page.read_text().splitlines() if line.strip()]
    assert lines[0].startswith("# ") and lines[1].startswith("```"), page.name


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_to_a_file(page: Path):
    prose = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    targets = [t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", prose) if "://" not in t]
    assert [t for t in targets if t and not (page.parent / t).exists()] == []
