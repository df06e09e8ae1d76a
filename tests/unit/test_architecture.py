"""The rules of docs/architecture.md, checked on the source: what may import what, thin modules,
one fail_json, one Kubernetes client, one action plugin implementation per kind."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
PREFIX = "ansible_collections.mybinder.deploy.plugins."


def python_files(folder: str) -> list[Path]:
    return sorted(p for p in (PLUGINS / folder).glob("*.py") if not p.is_symlink())


def collection_imports(path: Path) -> set[str]:
    """The collection's own modules a file imports, as 'module_utils._kube_client' and the like."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PREFIX):
            name = node.module[len(PREFIX) :]
            if name.count(".") == 0:  # from ...plugins.module_utils import _drain
                out.update(f"{name}.{alias.name}" for alias in node.names)
            else:
                out.add(name)
    return out


def test_modules_import_only_module_utils():
    for path in python_files("modules"):
        for name in collection_imports(path):
            assert name.startswith("module_utils."), f"{path.name} imports {name}"


def test_module_utils_import_neither_modules_nor_controller_code():
    for path in python_files("module_utils"):
        for name in collection_imports(path):
            assert name.startswith("module_utils."), f"{path.name} imports {name}"


def test_module_utils_have_no_import_cycle():
    graph = {p.stem: {n.split(".", 1)[1] for n in collection_imports(p)} for p in python_files("module_utils")}
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, f"import cycle: {' -> '.join((*path, node))}"
        if node in done:
            return
        for dep in graph.get(node, ()):
            visit(dep, (*path, node))
        done.add(node)

    for node in graph:
        visit(node, ())


def test_module_utils_import_the_collection_at_the_top_only():
    for path in python_files("module_utils"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.ImportFrom):
                        assert not (inner.module or "").startswith(PREFIX), f"{path.name}: {node.name}"


def test_git_crypt_helpers_stay_standard_library_only():
    """tools/check-plaintext-secrets.py imports _git_crypt.py as a file of its own: the error root
    is its one (optional) import of the collection."""
    assert collection_imports(PLUGINS / "module_utils" / "_git_crypt.py") <= {"module_utils._errors"}


@pytest.mark.parametrize("path", python_files("modules"), ids=lambda p: p.name)
def test_a_module_is_thin_and_ends_at_one_boundary(path: Path):
    text = path.read_text()
    assert len(text.splitlines()) < 500, f"{path.name} has {len(text.splitlines())} lines"
    assert "fail_json" not in text, "a module fails through _errors.conclude() only"
    assert text.count("conclude(") == 1


def test_fail_json_is_called_in_one_place():
    callers = [p.name for p in python_files("module_utils") if "fail_json(" in p.read_text()]
    assert callers == ["_errors.py"]


def test_one_kubernetes_client():
    clients = [p.name for p in python_files("module_utils") if "class KubeClient" in p.read_text()]
    assert clients == ["_kube_client.py"]
    assert not (PLUGINS / "module_utils" / "_kube.py").exists()


def test_action_plugins_are_links_to_one_implementation_per_kind():
    action = PLUGINS / "action"
    real = sorted(p.name for p in action.glob("*.py") if not p.is_symlink())
    assert real == ["kube_read.py", "node_drain.py", "rollout_status.py"]
    for link in action.glob("*.py"):
        if link.is_symlink():
            assert os.readlink(link) in ("kube_read.py", "rollout_status.py"), link.name
            assert (PLUGINS / "modules" / link.name).exists(), f"{link.name} names no module"
