"""Where a user's module or a Keras application is, found without importing either: validating a
config runs none of the user's code and never imports Keras (and so TensorFlow)."""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import sys
from pathlib import Path


def find_module(name: str, base_dir: str) -> importlib.machinery.ModuleSpec | None:
    """Where `import name` would find its source, with the config's folder LAST on the path as
    in the worker (it can shadow nothing there: `random:build` is the standard library's).
    Unlike importlib.util.find_spec('a.b') it runs no package __init__ on the way."""
    parts = name.split(".")
    search: list[str] | None = [*sys.path, base_dir]
    spec = None
    for depth in range(1, len(parts) + 1):
        full = ".".join(parts[:depth])
        loaded = sys.modules.get(full)
        if loaded is not None and getattr(loaded, "__spec__", None) is not None:
            spec = loaded.__spec__  # already imported (os.path, say): nothing runs by looking
            search = list(spec.submodule_search_locations or []) or None
            continue
        if search is None:
            return None  # a parent that is a plain module has no submodules
        try:
            spec = importlib.machinery.PathFinder.find_spec(full, search)
            if spec is None and depth == 1:
                spec = importlib.util.find_spec(full)  # built-in and frozen modules
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            return None
        search = list(spec.submodule_search_locations) if spec.submodule_search_locations is not None else None
    return spec


def python_source(spec: importlib.machinery.ModuleSpec | None) -> str | None:
    """The .py file a found module runs, or None (not found, compiled, built in, a namespace)."""
    return spec.origin if spec is not None and spec.origin and spec.origin.endswith(".py") else None


def top_level_names(source_file: str) -> set[str] | None:
    """Names a Python file defines at top level; None when it could define more (star imports,
    module __getattr__) or cannot be parsed, so the check stays silent rather than wrong."""
    try:
        tree = ast.parse(Path(source_file).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    return None
                names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Global):
            names.update(node.names)
    if "__getattr__" in names or "globals" in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}:
        return None
    return names


def keras_application_names() -> set[str] | None:
    """The model names keras.applications exports, read from Keras' own source so that
    validating a config never imports Keras (and so TensorFlow). None when that is not possible."""
    try:
        spec = importlib.util.find_spec("keras")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    names: set[str] = set()
    for root in spec.submodule_search_locations:
        for candidate in ("applications/__init__.py", "api/applications/__init__.py"):
            path = Path(root) / candidate
            if not path.is_file():
                continue
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (OSError, SyntaxError, UnicodeDecodeError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom):
                    names.update(a.asname or a.name for a in node.names if (a.asname or a.name)[:1].isupper())
    return names or None
