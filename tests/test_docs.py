"""The README stays a user's page (at most 15,000 bytes) and no relative link in it or in
docs/ points at a file that is not there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_readme_is_at_most_15_000_bytes() -> None:
    assert (REPO / "README.md").stat().st_size <= 15_000


@pytest.mark.parametrize(
    "page", [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))], ids=lambda p: p.name
)
def test_relative_links_resolve(page: Path) -> None:
    missing = [
        target for target in LINK.findall(page.read_text())
        if "://" not in target and not target.startswith("mailto:")
        and not (page.parent / target).exists()
    ]
    assert not missing, f"{page.name}: {missing}"
