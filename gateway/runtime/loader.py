"""Loading the app under ``convex/``: each load is a fresh package generation.

Modules are loaded from their files under a private package name
(``_outpost_app_<n>``), never as a top-level ``convex`` module (which would shadow
the official ``convex`` client) and never with ``importlib.reload`` (which keeps
stale names alive). A failed load raises ``AppLoadError`` naming file and line, and
leaves ``sys.modules`` as it was.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import importlib.util
import itertools
import sys
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.auth.config import AuthConfigError, Provider, parse_auth_config
from gateway.errors import AppLoadError
from gateway.runtime.functions import RegisteredFunction

SPECIAL_MODULES = {"schema": "schema", "crons": "crons", "http": "http", "mqtt": "mqtt"}
RESERVED_DIRS = {"_generated", "_deps", "_system", "__pycache__"}
# ``auth.config.py`` (Convex's ``auth.config.ts``): its dot would make it module
# ``config`` of a package ``auth`` (clashing with an app's own ``auth.py``), so it is
# loaded on its own under a private name and checked as a provider list.
AUTH_CONFIG_FILE = "auth.config.py"
PACKAGE_PREFIX = "_outpost_app_"
_generations = itertools.count(1)


class _SourceLoader(importlib.machinery.SourceFileLoader):
    """Compiles the file on every load, never from ``__pycache__``: a cached ``.pyc`` is
    checked by whole-second mtime and size, so a same-size edit within a second of the
    last load (``outpost dev``) would run the old code. An app is small; compiling it
    costs milliseconds."""

    def get_code(self, fullname: str) -> types.CodeType:
        path = self.get_filename(fullname)
        return self.source_to_code(self.get_data(path), path)  # type: ignore[return-value]


class _AppFinder(importlib.abc.MetaPathFinder):
    """Modules an app module imports relatively load through ``_SourceLoader`` too."""

    def find_spec(
        self, fullname: str, path: Any, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(PACKAGE_PREFIX) or not path:
            return None
        leaf = fullname.rpartition(".")[2]
        for directory in path:
            init = Path(directory, leaf, "__init__.py")
            if init.is_file():
                return _spec(fullname, init, package_dir=init.parent)
            file = Path(directory, leaf + ".py")
            if file.is_file():
                return _spec(fullname, file)
        return None  # a directory without __init__.py: the default namespace package


_APP_FINDER = _AppFinder()


def _spec(
    name: str, file: Path, *, package_dir: Path | None = None
) -> importlib.machinery.ModuleSpec:
    locations = None if package_dir is None else [str(package_dir)]
    spec = importlib.util.spec_from_file_location(
        name, file, loader=_SourceLoader(name, str(file)), submodule_search_locations=locations
    )
    assert spec is not None
    return spec


@dataclass
class App:
    """One loaded generation of the app."""

    directory: Path
    package: str
    functions: dict[str, RegisteredFunction] = field(default_factory=dict)
    schema: Any = None
    crons: Any = None
    http: Any = None
    mqtt: Any = None
    auth_providers: tuple[Provider, ...] = ()
    module_names: list[str] = field(default_factory=list)

    def lookup(self, path: str) -> RegisteredFunction | None:
        """The function at a path in any form the official clients send."""
        return self.functions.get(canonical_path(path))

    def unload(self) -> None:
        """Forget this generation's modules (functions already handed out keep working)."""
        prefix = self.package + "."
        for name in [n for n in sys.modules if n == self.package or n.startswith(prefix)]:
            sys.modules.pop(name, None)


@functools.lru_cache(maxsize=1024)  # every call looks its path up
def canonical_path(path: str) -> str:
    """``m.js:f`` -> ``m:f``; ``m`` and ``m:default`` -> ``m:default``; ``a/b:f`` kept."""
    module, _, name = path.strip().partition(":")
    for suffix in (".js", ".ts", ".py"):
        if module.endswith(suffix):
            module = module[: -len(suffix)]
            break
    return f"{module.strip('/')}:{name or 'default'}"


def load_app(app_dir: Path, *, print_fn: Callable[..., None] | None = None) -> App:
    """Load every module under ``app_dir/convex`` into a new package generation."""
    convex_dir = Path(app_dir) / "convex"
    if not convex_dir.is_dir():
        raise AppLoadError(f"{convex_dir} does not exist: an app keeps its functions in convex/")
    package = f"{PACKAGE_PREFIX}{next(_generations)}"
    if _APP_FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _APP_FINDER)
    app = App(convex_dir, package)
    try:
        _make_package(app, package, convex_dir)
        for file in _module_files(convex_dir):
            _load_module(app, convex_dir, file, print_fn)
        _load_auth_config(app, convex_dir / AUTH_CONFIG_FILE)
        if print_fn is not None:  # modules pulled in by relative imports, too
            for name, module in list(sys.modules.items()):
                if name.startswith(package + "."):
                    module.__dict__.setdefault("print", print_fn)
    except BaseException:
        app.unload()
        raise
    return app


def _module_files(convex_dir: Path) -> list[Path]:
    files = []
    for file in sorted(convex_dir.rglob("*.py")):
        rel = file.relative_to(convex_dir)
        if any(part in RESERVED_DIRS or part.startswith(".") for part in rel.parts[:-1]):
            continue
        if file.name == "__init__.py" or rel.as_posix() == AUTH_CONFIG_FILE:
            continue
        files.append(file)
    return files


def _make_package(app: App, name: str, directory: Path) -> None:
    if name in sys.modules:
        return
    init = directory / "__init__.py"
    module: types.ModuleType
    if init.exists():
        spec = _spec(name, init, package_dir=directory)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        app.module_names.append(name)
        _exec(spec.loader, module, init)
    else:
        module = types.ModuleType(name)
        module.__path__ = [str(directory)]
        module.__package__ = name
        sys.modules[name] = module
        app.module_names.append(name)


def _load_module(
    app: App, convex_dir: Path, file: Path, print_fn: Callable[..., None] | None
) -> None:
    rel = file.relative_to(convex_dir).with_suffix("")
    for depth in range(1, len(rel.parts)):
        sub = rel.parts[:depth]
        _make_package(app, ".".join((app.package, *sub)), convex_dir.joinpath(*sub))
    name = f"{app.package}." + ".".join(rel.parts)
    if name in sys.modules:  # already imported by a sibling's relative import
        module = sys.modules[name]
    else:
        spec = _spec(name, file)
        module = importlib.util.module_from_spec(spec)
        if print_fn is not None:
            module.__dict__["print"] = print_fn
        sys.modules[name] = module
        app.module_names.append(name)
        _exec(spec.loader, module, file)
    _collect(app, rel.as_posix(), module)


def _load_auth_config(app: App, file: Path) -> None:
    if not file.is_file():
        return
    name = f"{app.package}._auth_config"
    spec = _spec(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    app.module_names.append(name)
    _exec(spec.loader, module, file)
    if not hasattr(module, "auth_config"):
        raise AuthConfigError(
            f"{file}: defines no auth_config; write "
            'auth_config = {"providers": [{"domain": ..., "applicationID": ...}]}'
        )
    app.auth_providers = parse_auth_config(module.auth_config, file)


def _exec(loader: Any, module: types.ModuleType, file: Path) -> None:
    try:
        loader.exec_module(module)
    except SyntaxError as exc:
        where = f"{exc.filename or file}:{exc.lineno}"
        raise AppLoadError(f"{where}: SyntaxError: {exc.msg}") from exc
    except AppLoadError:
        raise  # already names its file and line (an MQTT route refused at declaration)
    except Exception as exc:
        raise AppLoadError(f"{_where(exc, file)}: {type(exc).__name__}: {exc}") from exc


def _where(exc: BaseException, file: Path) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    app_root = str(file.parent)
    for frame in reversed(frames):
        if frame.filename.startswith(app_root) or frame.filename == str(file):
            return f"{frame.filename}:{frame.lineno}"
    return str(file)


def _collect(app: App, module_path: str, module: types.ModuleType) -> None:
    special = SPECIAL_MODULES.get(module_path)
    if special is not None:
        setattr(app, special, getattr(module, special, None))
    for attr, value in vars(module).items():
        if isinstance(value, RegisteredFunction) and not attr.startswith("_"):
            path = f"{module_path}:{attr}"
            if not value.path:
                value.path = path
            app.functions[path] = value
