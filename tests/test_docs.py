"""The documentation a newcomer reads: the README stays a front page, and every relative link resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tools.stack_config import REPO_ROOT

PAGES = sorted([REPO_ROOT / "README.md", REPO_ROOT / "CHANGELOG.md", *(REPO_ROOT / "docs").glob("*.md")])
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for the headings of `page`: lower case, punctuation but '-' and '_' dropped, spaces to '-'."""
    headings = re.findall(r"^#{1,6} (.+)$", FENCE.sub("", page.read_text()), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def _links(page: Path) -> list[str]:
    return [target for target in LINK.findall(FENCE.sub("", page.read_text())) if "://" not in target]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO_ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in _links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no {resolved.relative_to(REPO_ROOT.resolve())}")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target}: no heading with that anchor")
        elif resolved.is_relative_to(REPO_ROOT.resolve().parent) and not resolved.is_relative_to(REPO_ROOT.resolve()):
            broken.append(f"{target}: outside the repository")
    assert broken == []


def test_the_readme_is_a_front_page_that_links_every_docs_page() -> None:
    readme = REPO_ROOT / "README.md"
    assert len(readme.read_text().splitlines()) < 250
    linked = {(REPO_ROOT / link.partition("#")[0]).resolve() for link in _links(readme)}
    unlinked = [page.name for page in (REPO_ROOT / "docs").glob("*.md") if page.resolve() not in linked]
    assert unlinked == [], "docs pages the README's contents do not list"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO_ROOT)))
def test_no_page_points_outside_the_repository(page: Path) -> None:
    assert "../shared/" not in page.read_text()
