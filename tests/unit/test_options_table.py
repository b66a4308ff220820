"""README's options table is the one the option declarations give (options_table.py): an
option added, renamed or re-documented without regenerating the table fails here."""

from pathlib import Path

from pytest_qrel import options
from pytest_qrel.options_table import between_markers, markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_options_table_is_generated_from_the_declarations():
    held = between_markers(README.read_text())
    assert held is not None, "README.md lost its <!-- options-table:start/end --> markers"
    assert held == markdown_table(), ("README.md's options table differs from the declarations: "
                                      "run python -m pytest_qrel.options_table --write README.md")


def test_every_option_has_a_row_with_its_toml_key():
    table = markdown_table()
    for opt in options.OPTIONS:
        assert f"| `{opt.flag}` |" in table and f"| `{opt.key}` |" in table
