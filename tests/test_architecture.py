"""The layering of medgan, checked from the source: no module imports a higher layer.

The layers (docs/ARCHITECTURE.md, "Layers"), lowest first. A module may import
its own layer and any lower one, never a higher one. Imports are read with
`ast` (nothing is executed), including those inside functions.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", ("medgan", "medgan.fileio", "medgan.workdir", "medgan.report_format", "medgan.provenance",
              "medgan.console")),
    ("devices and data", ("medgan.sharding", "medgan.data")),
    ("models", ("medgan.models",)),
    ("training, evaluation and configuration", ("medgan.train", "medgan.eval", "medgan.visualize",
                                                "medgan.configuration")),
    ("study", ("medgan.study",)),
    ("jobs", ("medgan.jobs",)),
    ("entry point", ("medgan.main",)),
)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    """Index into LAYERS of the longest prefix that names `module` or a package above it."""
    best, best_length = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    if best is None:
        raise KeyError(module)
    return best


def imported_modules(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, module) of every medgan module `path` imports; `from a import b` counts a.b when b is a module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                is_module = (root / Path(*candidate.split("."))).with_suffix(".py").exists() or (
                    root / Path(*candidate.split(".")) / "__init__.py").exists()
                found.append((node.lineno, candidate if is_module else node.module))
    return [(line, name) for line, name in found if name == "medgan" or name.startswith("medgan.")]


def upward_imports(root: Path) -> list[str]:
    """'path:line: module (layer) imports target (higher layer)' for every violation under root/medgan."""
    problems = []
    for path in sorted((root / "medgan").rglob("*.py")):
        source = module_name(path, root)
        for line, target in imported_modules(path, root):
            if layer_of(target) > layer_of(source):
                problems.append(f"{path.relative_to(root)}:{line}: {source} ({LAYERS[layer_of(source)][0]}) imports "
                                f"{target} ({LAYERS[layer_of(target)][0]})")
    return problems


def test_every_module_has_a_layer():
    for path in (ROOT / "medgan").rglob("*.py"):
        layer_of(module_name(path, ROOT))  # KeyError names a module the layers do not place


def test_no_module_imports_a_higher_layer():
    assert upward_imports(ROOT) == []


def test_an_upward_import_is_caught(tmp_path):
    shutil.copytree(ROOT / "medgan", tmp_path / "medgan", ignore=shutil.ignore_patterns("__pycache__"))
    pipeline = tmp_path / "medgan" / "data" / "pipeline.py"
    pipeline.write_text(pipeline.read_text() + "\n\ndef _late():\n    from medgan.train import loop\n")
    problems = upward_imports(tmp_path)
    assert len(problems) == 1
    assert "medgan/data/pipeline.py" in problems[0] and "imports medgan.train.loop (training" in problems[0]


@pytest.mark.parametrize("directory", ["launch", "configs"])
def test_launchers_and_configs_use_public_modules_only(directory):
    """launch/ and configs/ reach medgan through public modules: no private names, no job module directly."""
    for path in sorted((ROOT / directory).glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("medgan"):
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("medgan")]
            else:
                continue
            for name in names:
                assert not any(part.startswith("_") for part in name.split(".")), f"{path}:{node.lineno}: {name}"
                assert not name.startswith("medgan.jobs"), f"{path}:{node.lineno}: {name} (run jobs via medgan.main)"


MAX_MODULE_LINES = 700


def test_no_module_is_over_700_lines():
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "medgan").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


MAX_FUNCTION_LINES = 80


def test_long_functions_say_why():
    """A function over 80 lines states in its docstring why it is long ("Long because ...")."""
    unexplained = []
    for path in sorted((ROOT / "medgan").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES and "Long because" not in (ast.get_docstring(node) or ""):
                    unexplained.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    assert unexplained == []


def test_code_cites_documents_in_the_repository_only():
    """The founding brief lives outside the repository; code and docs cite docs/ARCHITECTURE.md instead."""
    outside = ("DESIGN" + ".md", "../" + "shared")
    cited = [f"{path.relative_to(ROOT)}: {name}"
             for directory in ("medgan", "tests", "launch", "configs", "docs")
             for path in sorted((ROOT / directory).rglob("*")) if path.suffix in (".py", ".md", ".sh")
             for name in outside if name in path.read_text()]
    assert cited == []
