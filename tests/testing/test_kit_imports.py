"""The test kit imports without side effects and without import cycles.

Importing ``polystore.testing`` starts nothing and registers no exit hook or signal
handler; the first endpoint made does. Its modules import each other along a graph with
no cycle, at module level only, so they import in any order.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import polystore.testing

KIT = Path(polystore.testing.__file__).parent
PACKAGE = "polystore.testing"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(KIT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


MODULES = {_module_name(path): path for path in sorted(KIT.rglob("*.py"))}


def _kit_targets(node: ast.Import | ast.ImportFrom, importer: str) -> set[str]:
    """The kit modules an import statement of module ``importer`` reaches."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: resolve against the importer's package
            package = importer.split(".")
            if MODULES[importer].name != "__init__.py":
                package.pop()
            package = package[: len(package) - (node.level - 1)]
            base = ".".join([*package, base] if base else package)
        names = [f"{base}.{alias.name}" for alias in node.names]
        names = [name if name in MODULES else base for name in names]
    return {name for name in names if name in MODULES and name != importer}


def _import_graph() -> tuple[dict[str, set[str]], list[str]]:
    """Module-level kit imports per kit module, and every kit import inside a function."""
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    late: list[str] = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[name] |= _kit_targets(node, name)
        for func in ast.walk(tree):
            if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(func):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)):
                        late += [f"{name} -> {t}" for t in _kit_targets(inner, name)]
    return graph, late


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (the package ``__init__`` excluded), if any."""
    graph = {k: {t for t in v if t != PACKAGE} for k, v in graph.items() if k != PACKAGE}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_kit_modules_import_each_other_without_a_cycle() -> None:
    graph, _ = _import_graph()
    assert graph[f"{PACKAGE}.services"], "the graph reader found no import at all"
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph) or [])}"


def test_no_kit_module_imports_another_inside_a_function() -> None:
    _, late = _import_graph()
    assert late == [], f"imports inside functions (a hidden cycle?): {late}"


def test_the_cycle_finder_finds_a_cycle() -> None:
    # The check above must be able to fail.
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def _run(script: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_importing_the_kit_registers_no_hook_and_starts_nothing() -> None:
    result = _run(
        """
        import atexit, json, os, signal

        hooks = []
        register = atexit.register

        def spy(func, *args, **kwargs):
            hooks.append(f"{getattr(func, '__module__', '?')}.{func.__qualname__}")
            return register(func, *args, **kwargs)

        atexit.register = spy
        sigterm = signal.getsignal(signal.SIGTERM)

        import polystore.testing
        from polystore.testing import _endpoint
        from polystore.testing._processes import descendants
        from polystore.testing.services import UrlEndpoint

        after_import = [h for h in hooks if h.startswith("polystore")]
        state = {
            "hooks_after_import": after_import,
            "sigterm_changed": signal.getsignal(signal.SIGTERM) != sigterm,
            "children": list(descendants(os.getpid())),
            "open": len(_endpoint._OPEN_ENDPOINTS),
        }
        first = UrlEndpoint("redis", "redis://127.0.0.1:1/0")
        second = UrlEndpoint("redis", "redis://127.0.0.1:2/0")
        state["hooks_after_endpoints"] = [h for h in hooks if h.startswith("polystore")]
        state["sigterm_changed_after"] = signal.getsignal(signal.SIGTERM) != sigterm
        first.close()
        second.close()
        print(json.dumps(state))
        """
    )
    assert result["hooks_after_import"] == []
    assert result["sigterm_changed"] is False
    assert result["children"] == []
    assert result["open"] == 0
    # The first endpoint installs the cleanup, once.
    assert result["hooks_after_endpoints"] == ["polystore.testing._endpoint._close_leftovers"]
    assert result["sigterm_changed_after"] is True


# The modules that imported each other in a cycle before _endpoint held what they share.
ONCE_CYCLIC = ["services", "_servers", "_cluster", "_docker"]


def test_the_once_cyclic_modules_import_first_in_a_fresh_interpreter() -> None:
    names = [f"{PACKAGE}.{name}" for name in ONCE_CYCLIC]
    result = _run(
        f"""
        import importlib, json, subprocess, sys

        failed = {{}}
        for first in {names!r}:
            done = subprocess.run(
                [sys.executable, "-c", f"import {{first}}; import polystore.testing"],
                capture_output=True, text=True,
            )
            if done.returncode:
                failed[first] = done.stderr.strip().splitlines()[-1]
        for name in reversed({sorted(MODULES)!r}):  # every module, in reverse order
            importlib.import_module(name)
        print(json.dumps({{"failed": failed}}))
        """
    )
    assert result["failed"] == {}
