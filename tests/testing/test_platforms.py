"""The test kit imports where Unix-only modules are missing (Windows)."""

from __future__ import annotations

import subprocess
import sys

UNIX_ONLY = ("pwd", "grp", "fcntl", "termios", "resource")


def test_the_kit_imports_without_unix_only_modules() -> None:
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in UNIX_ONLY)
    code = f"import sys; {blocked}; import polystore.testing; print('imported')"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported"
