"""The getting-started examples run twice in a row in one directory.

The docs test runs every page once in a fresh directory; a reader runs the first example
again in the same one, where the embedded SQLite file is still there.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def first_python_block(page: Path) -> str:
    match = BLOCK.search(page.read_text(encoding="utf-8"))
    assert match is not None, f"{page} has no python block"
    return match.group(1)


@pytest.mark.parametrize("page", ["README.md", "docs/quickstart.md"])
def test_the_first_example_runs_twice_in_one_directory(page: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(first_python_block(ROOT / page))
    for run in (1, 2):
        result = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=tmp_path,
        )
        assert result.returncode == 0, f"run {run}: {result.stderr}"
