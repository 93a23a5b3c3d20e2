"""The board files use only what MicroPython 1.20+ has (no MicroPython runs here to prove it).

MicroPython lacks most of CPython's standard library (pathlib, dataclasses, typing ...),
and evaluates no annotations the way CPython does; an import or a construct it lacks
fails on the board at start-up, long after the CPython tests passed. So the board files
are read with ``ast`` and held to MicroPython's modules and syntax.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from firmware_clients import MICROPYTHON_DIR

BOARD_FILES = sorted(MICROPYTHON_DIR.glob("*.py"))
# Modules of MicroPython's ESP32 and RP2 ports (built in or frozen) and the board files.
MICROPYTHON_MODULES = {
    "esp32",
    "json",
    "machine",
    "network",
    "os",
    "random",
    "struct",
    "sys",
    "time",
}
OWN_MODULES = {path.stem for path in BOARD_FILES}
ALLOWED_FROM = {"umqtt.simple"}


def test_the_board_files_are_found() -> None:
    assert {
        "main",
        "outpost_client",
        "outpost_store",
        "outpost_cbor",
        "outpost_loop",
    } <= OWN_MODULES


@pytest.mark.parametrize("path", BOARD_FILES, ids=lambda p: p.name)
def test_imports_only_what_micropython_has(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names = {node.module or ""}
        else:
            continue
        allowed = MICROPYTHON_MODULES | OWN_MODULES | ALLOWED_FROM
        assert names <= allowed, f"{path.name}:{node.lineno} imports {names - allowed}"


@pytest.mark.parametrize("path", BOARD_FILES, ids=lambda p: p.name)
def test_no_annotations_or_unknown_decorators(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text())):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        assert not isinstance(node, ast.AnnAssign), f"{where}: an annotated assignment"
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.returns is None, f"{where}: a return annotation"
            arguments = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
            assert all(a.annotation is None for a in arguments), f"{where}: an annotated argument"
            assert not node.decorator_list or all(
                isinstance(d, ast.Name) and d.id in {"property", "staticmethod"}
                for d in node.decorator_list
            ), f"{where}: a decorator MicroPython may not have"
        if isinstance(node, ast.FormattedValue):
            assert node.conversion != ord("a"), f"{where}: !a in an f-string"
