"""The architecture holds: import contracts, purity, the map in ARCHITECTURE.md,
docstrings and short functions.

The import contracts live in pyproject.toml (`[tool.importlinter]`) and run as
`lint-imports` in the test command; here they also run on a scratch copy of the
package with one arrow turned the wrong way, to prove that they can fail. The
pure packages are the "pure" contract's source modules: an AST walk checks that
none of them calls a file, process or clock function (import-linter sees only
imports, not calls).
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "reconciler"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]

# Calls a pure module never makes: files, processes, sockets, the clock.
FILE_FUNCTIONS = {
    "open",
    "read",
    "write",
    "stat",
    "lstat",
    "fstat",
    "listdir",
    "scandir",
    "walk",
    "remove",
    "unlink",
    "rename",
    "replace",
    "mkdir",
    "makedirs",
    "rmdir",
    "fsync",
    "utime",
    "chmod",
    "link",
    "symlink",
    "kill",
    "system",
    "popen",
}
PATH_IO = {
    "read_text",
    "read_bytes",
    "write_text",
    "write_bytes",
    "iterdir",
    "glob",
    "rglob",
    "touch",
    "unlink",
    "exists",
    "is_file",
    "is_dir",
}
CLOCK = {("time", "time"), ("time", "time_ns"), ("time", "monotonic"), ("time", "sleep")}


def contract(contract_id: str) -> dict[str, object]:
    return next(c for c in CONTRACTS["contracts"] if c["id"] == contract_id)


def module_files(name: str) -> list[Path]:
    """The files of a dotted module name, or of every module of a package."""
    path = ROOT.joinpath(*name.split("."))
    return sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]


def impure_calls(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            found += [f"imports {n}" for n in names if n.split(".")[0] == "subprocess"]
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("open", "urlopen"):
            found.append(f"line {node.lineno}: {func.id}()")
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            owner, attr = func.value.id, func.attr
            if (
                (owner == "os" and attr in FILE_FUNCTIONS)
                or (owner, attr) in CLOCK
                or owner in ("subprocess", "shutil", "socket")
            ):
                found.append(f"line {node.lineno}: {owner}.{attr}()")
        if isinstance(func, ast.Attribute) and func.attr in PATH_IO:
            found.append(f"line {node.lineno}: .{func.attr}()")
    return found


def test_the_import_contracts_hold() -> None:
    done = subprocess.run(
        [str(LINT_IMPORTS)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # plan is below loop: an import of loop from plan breaks the layers.
        ("plan/planner.py", "import reconciler.loop", "Each layer imports only"),
        # formats is pure: it may not reach the file helpers of fs, even so.
        ("formats/apk.py", "import reconciler.fs.atomicfile", "pure packages import no"),
        # Only the named adapters import subprocess.
        ("site/model.py", "import subprocess", "Only the named adapters"),
    ],
)
def test_a_wrong_way_arrow_breaks_a_contract(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    shutil.copytree(PACKAGE, tmp_path / "reconciler", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "reconciler" / module
    text = target.read_text()
    anchor = "from __future__ import annotations\n"
    target.write_text(text.replace(anchor, f"{anchor}\n{line}  # noqa\n", 1))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0, done.stdout
    assert re.search(rf"{broken}[^\n]* BROKEN", done.stdout), done.stdout


PURE = [str(m) for m in contract("pure")["source_modules"]]  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", PURE)
def test_a_pure_module_calls_no_file_process_or_clock_function(name: str) -> None:
    for path in module_files(name):
        found = impure_calls(ast.parse(path.read_text(), str(path)))
        assert not found, f"{path.relative_to(ROOT)}: {found}"


def test_the_purity_check_sees_what_it_forbids() -> None:
    source = (
        "import os, time\n"
        "from pathlib import Path\n"
        "def f(p: Path) -> None:\n"
        "    open('x')\n"
        "    os.listdir('.')\n"
        "    p.read_text()\n"
        "    time.time()\n"
        "    time.strftime('%Y', time.gmtime(0))\n"
    )
    found = impure_calls(ast.parse(source))
    assert found == [
        "line 4: open()",
        "line 5: os.listdir()",
        "line 6: .read_text()",
        "line 7: time.time()",
    ]


def packages_on_disk() -> set[str]:
    return {
        str(init.parent.relative_to(PACKAGE)) + "/"
        for init in PACKAGE.rglob("__init__.py")
        if init.parent != PACKAGE and "__pycache__" not in init.parts
    }


def packages_in_the_map() -> set[str]:
    """The packages ARCHITECTURE.md's table lists: rows that begin with `name/`."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    section = text.split("## Packages", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_/]+/)` \|", section, re.M))


def test_the_map_names_every_package_and_only_those() -> None:
    on_disk, in_map = packages_on_disk(), packages_in_the_map()
    assert in_map, "ARCHITECTURE.md lists no package"
    assert on_disk - in_map == set(), "packages missing from ARCHITECTURE.md"
    assert in_map - on_disk == set(), "ARCHITECTURE.md names packages that do not exist"


def test_the_layers_in_the_map_are_the_contract() -> None:
    text = (ROOT / "ARCHITECTURE.md").read_text()
    layers = [str(layer) for layer in contract("layers")["layers"]]  # type: ignore[attr-defined]
    for layer in layers:
        for name in layer.split(" | "):
            assert name.removeprefix("reconciler.") in text, name


def all_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_and_package_says_what_it_owns() -> None:
    missing = [
        str(p.relative_to(ROOT))
        for p in all_modules()
        if not ast.get_docstring(ast.parse(p.read_text()))
    ]
    assert missing == []


MAX_FUNCTION_LINES = 60


def test_long_functions_say_why_they_are_long() -> None:
    """A function over 60 lines is split, or its docstring says "Long because"."""
    unexplained = []
    for path in all_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            doc = ast.get_docstring(node) or ""
            if length > MAX_FUNCTION_LINES and "Long because" not in doc:
                unexplained.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length})")
    assert unexplained == []
