"""docs/configuration.md, rendered from the settings declaration: a row per variable, and the page up to date."""
from __future__ import annotations

import subprocess
import sys

from ki2api.settings import OTHER_VARIABLES, declared
from ki2api.settings_docs import markdown
from tests.helpers.gateway import REPO


def test_the_markdown_has_a_table_per_group_and_a_row_per_variable():
    page = markdown()
    for spec in declared():
        assert f"| `{spec.env}` |" in page
        row = next(line for line in page.splitlines() if line.startswith(f"| `{spec.env}` |"))
        assert all(f"Deprecated former name: `{name}`" in row for name in spec.deprecated)
    groups = {spec.group for spec in declared()}
    assert page.count("\n## ") == len(groups)
    assert "/root" not in page and "/home/" not in page  # defaults are shown unexpanded, the same on any machine
    assert all(spec.parse is None for spec in OTHER_VARIABLES)


def test_docs_configuration_md_is_up_to_date():
    """Regenerate with: python -m ki2api.settings_docs > docs/configuration.md"""
    assert (REPO / "docs" / "configuration.md").read_text(encoding="utf-8") == markdown()


def test_the_generator_runs_as_a_module():
    done = subprocess.run([sys.executable, "-m", "ki2api.settings_docs"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == markdown(), done.stderr
    assert "RuntimeWarning" not in done.stderr
