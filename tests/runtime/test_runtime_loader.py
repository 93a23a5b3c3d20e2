"""Loading the app: private package generations, path aliases, errors with file:line."""

from __future__ import annotations

import sys

import pytest

from gateway import Gateway
from gateway.errors import AppLoadError
from gateway.runtime.loader import canonical_path, load_app

FUNCS = {
    "messages": """
        from gateway import query, internal_query

        @query
        async def list(ctx, args):
            return "list"

        @query
        async def default(ctx, args):
            return "default"

        @internal_query
        async def secret(ctx, args):
            return "secret"
    """,
    "admin__devices": """
        from gateway import mutation

        @mutation
        async def rename(ctx, args):
            return "renamed"
    """,
}


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("messages:list", "messages:list"),
        ("messages.js:list", "messages:list"),
        ("messages", "messages:default"),
        ("messages:default", "messages:default"),
        ("admin/devices:rename", "admin/devices:rename"),
        ("admin/devices.js:rename", "admin/devices:rename"),
    ],
)
def test_canonical_paths(given: str, canonical: str) -> None:
    assert canonical_path(given) == canonical


async def test_every_path_form_reaches_its_function(make_app, tmp_path) -> None:
    async with Gateway.open(make_app(**FUNCS), tmp_path / "d") as gw:
        for path in ("messages:list", "messages.js:list"):
            assert (await gw.call("query", path)).value == "list"
        for path in ("messages", "messages:default", "messages.js:default"):
            assert (await gw.call("query", path)).value == "default"
        assert (await gw.call("mutation", "admin/devices:rename")).value == "renamed"


async def test_internal_functions_are_not_public(make_app, tmp_path) -> None:
    async with Gateway.open(make_app(**FUNCS), tmp_path / "d") as gw:
        public = await gw.call("query", "messages:secret")
        assert public.error_message == "Could not find public function for 'messages:secret'."
        assert (await gw.call("query", "messages:secret", admin=True)).value == "secret"
        missing = await gw.call("query", "nope:nothing")
        assert missing.error_message == "Could not find public function for 'nope:nothing'."
        wrong = await gw.call("mutation", "messages:list")
        assert wrong.error_message == (
            "Trying to execute messages:list as Mutation, but it is defined as Query."
        )


def test_modules_load_under_a_private_name_never_as_convex(make_app) -> None:
    first = load_app(make_app(**FUNCS))
    second = load_app(make_app(**FUNCS))
    try:
        assert first.package != second.package
        assert "convex" not in sys.modules or not hasattr(sys.modules["convex"], "messages")
        assert all(name.startswith("_outpost_app_") for name in first.module_names)
        # Fresh generations: separate function objects.
        assert first.functions["messages:list"] is not second.functions["messages:list"]
    finally:
        first.unload()
        second.unload()
    assert not any(n.startswith(first.package) for n in sys.modules)


def test_a_syntax_error_names_file_and_line(make_app) -> None:
    app = make_app(broken="x = 1\ndef oops(:\n    pass\n")
    with pytest.raises(AppLoadError) as caught:
        load_app(app)
    assert f"{app}/convex/broken.py:2: SyntaxError" in str(caught.value)
    assert not any("broken" in n for n in sys.modules if n.startswith("_outpost_app_"))


def test_an_import_time_error_names_file_and_line(make_app) -> None:
    app = make_app(fails="import os\n\nraise ValueError('bad config')\n")
    with pytest.raises(AppLoadError, match=r"fails\.py:3: ValueError: bad config"):
        load_app(app)


def test_a_missing_convex_folder_is_explained(tmp_path) -> None:
    with pytest.raises(AppLoadError, match="convex/"):
        load_app(tmp_path)


def test_relative_imports_between_app_modules_work(make_app) -> None:
    app = make_app(
        helpers="def double(x):\n    return 2 * x\n",
        calc="""
            from gateway import query
            from .helpers import double

            @query
            async def four(ctx, args):
                return double(2)
        """,
    )
    loaded = load_app(app)
    try:
        assert "calc:four" in loaded.functions
    finally:
        loaded.unload()


def _same_size_edit_same_mtime(file, old: str, new: str) -> None:
    """An edit a ``.pyc`` cannot tell apart: same size, same whole-second mtime."""
    import os

    before = file.stat()
    file.write_text(file.read_text().replace(old, new))
    os.utime(file, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert file.stat().st_size == before.st_size


def test_a_reload_runs_the_edited_source_not_a_cached_pyc(tmp_path) -> None:
    convex = tmp_path / "convex"
    (convex / "lib").mkdir(parents=True)
    (convex / "lib" / "__init__.py").write_text('TAG = "p1"\n')
    (convex / "helper.py").write_text('VALUE = "h1"\n')
    (convex / "fns.py").write_text(
        "from . import helper\nfrom .lib import TAG\n\nSEEN = (helper.VALUE, TAG)\n"
    )
    first = load_app(tmp_path)
    assert sys.modules[first.package + ".fns"].SEEN == ("h1", "p1")
    first.unload()
    # the default import system would have cached bytecode by now; make sure it exists
    import compileall

    assert compileall.compile_dir(convex, quiet=1)
    _same_size_edit_same_mtime(convex / "helper.py", '"h1"', '"h2"')
    _same_size_edit_same_mtime(convex / "lib" / "__init__.py", '"p1"', '"p2"')
    second = load_app(tmp_path)
    try:
        assert sys.modules[second.package + ".fns"].SEEN == ("h2", "p2")
    finally:
        second.unload()
