"""The documentation: the mkdocs site builds with no warning (no broken link or anchor, no page left out of the
nav), and the README stays short with every relative link pointing at something that exists."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from markdown.extensions.toc import slugify

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_MAX_LINES = 150

# [text](target) outside code; images too. Reference-style links are not used in the README.
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.M | re.S)
_CODE = re.compile(r"`[^`\n]*`")


def _relative_links(markdown: str) -> list[str]:
    """The link targets of `markdown` that are neither absolute URLs nor in-page anchors, code left out."""
    text = _CODE.sub("", _FENCE.sub("", markdown))
    targets = _LINK.findall(text)
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


def _anchors(page: Path) -> set[str]:
    """The heading anchors of a markdown page, slugged as mkdocs' toc extension slugs them."""
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    return {slugify(m.group(1).strip(), "-") for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M)}


def test_mkdocs_build_strict_has_no_warning(tmp_path: Path) -> None:
    """`mkdocs build --strict` succeeds and prints no WARNING (what `make docs` and CI run)."""
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING" not in output, output
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "performance" / "index.html").is_file()


def test_readme_is_at_most_150_lines() -> None:
    """The README is a five-minute read; the details live in docs/."""
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines, at most {README_MAX_LINES}"


def test_readme_relative_links_exist() -> None:
    """Every relative link of the README points at a file in the repository, and at a heading if it names one."""
    links = _relative_links(README.read_text(encoding="utf-8"))
    assert links, "the README links to no page of docs/"
    broken = []
    for link in links:
        path, _, anchor = link.partition("#")
        target = (ROOT / path).resolve()
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            broken.append(f"{link}: no heading #{anchor} in {path}")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("markdown, expected", [
    ("see [a](docs/a.md) and [b](docs/b.md#x), [web](https://x.org), [here](#top)", ["docs/a.md", "docs/b.md#x"]),
    ("`[not](a link)` and\n```\n[nor](this.md)\n```\n![img](pic.png)", ["pic.png"]),
])
def test_relative_links_are_found(markdown: str, expected: list[str]) -> None:
    """The link finder skips URLs, in-page anchors and code."""
    assert _relative_links(markdown) == expected
