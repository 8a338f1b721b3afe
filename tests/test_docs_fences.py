"""Every fenced block of the READMEs and docs/ names a language the docs test knows.

The repository's conftest.py runs ``python``, ``toml`` and shell blocks and requires
``sql`` blocks to be marked as not run; a fence without a language, or with another one,
would escape that, so it fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted(
    [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *ROOT.glob("plugins/*/README.md")]
)
KNOWN = {"python", "toml", "sql", "text", "markdown", "bash", "console", "sh", "shell"}
FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


def fences(text: str) -> list[tuple[int, str]]:
    """(line number, language) of every opening fence, nested fences included."""
    found: list[tuple[int, str]] = []
    closing: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = FENCE.match(line.strip())
        if match is None:
            continue
        fence, info = match["fence"], match["info"].strip()
        if closing and fence.startswith(closing[-1]) and not info:
            closing.pop()
            continue
        found.append((number, info.split()[0] if info else ""))
        closing.append(fence)
    return found


def test_the_fence_reader_sees_nested_fences() -> None:
    text = "````markdown\n```bash\nx\n```\n````\n```\nplain\n```\n"
    assert fences(text) == [(1, "markdown"), (2, "bash"), (6, "")]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_fence_names_a_known_language(page: Path) -> None:
    unknown = [
        f"{page.relative_to(ROOT)}:{line} {language or '(no language)'}"
        for line, language in fences(page.read_text(encoding="utf-8"))
        if language not in KNOWN
    ]
    assert unknown == []
