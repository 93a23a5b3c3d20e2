"""The upload flow of Convex's file storage docs, run by headless Chromium.

A page on its own origin (as an app's page is) calls a mutation for an upload URL,
``fetch``-POSTs a PNG ``File`` there with its ``Content-Type`` (a cross-origin request
with a preflight), saves the ``storageId`` with a second mutation, lists it with a query
whose ``ctx.storage.get_url`` it shows in an ``<img>`` and fetches. Functions are
called by npm ``convex``'s ``ConvexClient`` (its browser bundle, from the tests' npm
install, as in ``test_sync_browser.py``), the list through a live query.

Chromium is driven over the DevTools protocol through ``tests/chromium_kit.py`` (a new tab,
navigate, evaluate); like ``tests/sync/test_sync_browser.py`` it comes from Debian and
is installed by ``debian.ensure_programs`` when the tests run as root.
"""

from __future__ import annotations

import contextlib
import shutil
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from chromium_kit import (  # noqa: F401 - chromium_binary_fixture is a fixture
    DevTools,
    chromium,
    chromium_binary_fixture,
    evaluate,
    open_tab,
)
from debian import APT_DEADLINE_S

from gateway import Gateway, Settings
from gateway.http import HttpServer

SCHEMA = """
    from gateway import define_schema, define_table, v
    schema = define_schema({
        "photos": define_table({"storageId": v.id("_storage"), "author": v.string()}),
    })
"""

PHOTOS = """
    from gateway import mutation, query, v

    @mutation
    async def generate_upload_url(ctx, args):
        return await ctx.storage.generate_upload_url()

    @mutation(args={"storageId": v.id("_storage"), "author": v.string()})
    async def send(ctx, args):
        await ctx.db.insert("photos", args)

    @query
    async def list(ctx, args):
        photos = await ctx.db.query("photos").collect()
        return [{**p, "url": await ctx.storage.get_url(p["storageId"])} for p in photos]
"""

PAGE = """<!doctype html>
<html><head><script src="/convex.js"></script></head>
<body><img id="shown" alt="uploaded"><script>
const api = new URLSearchParams(location.search).get("api");
const client = new convex.ConvexClient(api);
const photos = convex.anyApi.photos;

async function pngFile() {
  const canvas = document.createElement("canvas");
  canvas.width = 37;
  canvas.height = 23;
  const g = canvas.getContext("2d");
  g.fillStyle = "#2a7";
  g.fillRect(0, 0, 37, 23);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  return new File([blob], "plot.png", {type: "image/png"});
}

// The list as a live query shows it (useQuery in the docs): the first non-empty value.
function firstPhoto() {
  return new Promise((resolve, reject) => {
    const stop = client.onUpdate(photos.list, {}, (list) => {
      if (list.length) { stop(); resolve(list[0]); }
    }, reject);
  });
}

// The steps of docs.convex.dev/file-storage/upload-files, in the page.
let step = "start";
window.flow = (async () => {
  step = "make a PNG";
  const file = await pngFile();
  step = "generate_upload_url";
  const postUrl = await client.mutation(photos.generate_upload_url, {});
  step = `POST to ${postUrl}`;
  const result = await fetch(postUrl, {
    method: "POST",
    headers: {"Content-Type": file.type},
    body: file,
  });
  const {storageId} = await result.json();
  step = "send";
  await client.mutation(photos.send, {storageId, author: "pi"});
  step = "list";
  const photo = await firstPhoto();
  step = `show ${photo.url}`;
  const img = document.getElementById("shown");
  await new Promise((resolve, reject) => {
    img.onload = resolve;
    img.onerror = () => reject(new Error(`the <img> did not load ${photo.url}`));
    img.src = photo.url;
  });
  step = `fetch ${photo.url}`;
  const served = await fetch(photo.url);
  return {
    status: result.status, storageId, saved: photo.storageId, author: photo.author,
    width: img.naturalWidth, height: img.naturalHeight,
    type: served.headers.get("Content-Type"), size: (await served.blob()).size,
    fileSize: file.size,
  };
})().catch((error) => ({error: `${step}: ${error}`})).finally(() => client.close());
</script></body></html>
"""

FLOW_DEADLINE_S = 20.0


@contextlib.asynccontextmanager
async def page_origin(bundle: Path) -> AsyncIterator[str]:
    """The page and npm convex's browser bundle, from an origin of their own."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def script(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(bundle, headers={"Content-Type": "text/javascript"})

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/convex.js", script)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def run_flow(devtools: DevTools, url: str) -> dict[str, Any]:
    session = await open_tab(devtools, url)
    # The page sets window.flow while it loads: wait for it inside the page, then await it.
    wait_then_run = (
        "new Promise((resolve) => { const check = () => window.flow"
        " ? window.flow.then(resolve) : setTimeout(check, 20); check(); })"
    )
    return await evaluate(devtools, session, wait_then_run, FLOW_DEADLINE_S)  # type: ignore[no-any-return]


INSTALL_ALLOWANCE_S = 0.0 if shutil.which("chromium") else APT_DEADLINE_S * 2


@pytest.mark.timeout(INSTALL_ALLOWANCE_S + 90)
async def test_browser_uploads_a_file_saves_its_id_and_shows_it(
    make_app: Any, convex_npm: Path, chromium_binary: str, tmp_path: Path
) -> None:
    bundle = convex_npm / "node_modules/convex/dist/browser.bundle.js"
    assert bundle.is_file(), f"npm convex no longer ships {bundle}; the page needs a bundle"
    app_dir = make_app(schema=SCHEMA, photos=PHOTOS)
    settings = Settings()
    async with (
        Gateway.open(app_dir, tmp_path / "d", settings) as gw,
        HttpServer(gw, settings=settings) as server,
    ):
        port = await server.start("127.0.0.1", 0)
        api = f"http://127.0.0.1:{port}"
        # The command line derives site_url from the port; here the port is chosen at
        # start, so the runtime learns it afterwards.
        gw.runtime.site_url = api
        async with page_origin(bundle) as origin, chromium(chromium_binary, tmp_path) as devtools:
            query = urllib.parse.urlencode({"api": api})
            result = await run_flow(devtools, f"{origin}/?{query}")
        assert "error" not in result, result
        assert result["status"] == 200
        assert result["saved"] == result["storageId"]
        assert result["author"] == "pi"
        assert (result["width"], result["height"]) == (37, 23)  # the PNG decoded
        assert result["type"] == "image/png"
        assert result["size"] == result["fileSize"] > 0
        [doc] = await gw.run_query("photos:list")
        blob = tmp_path / "d" / "storage" / result["storageId"]
        assert blob.stat().st_size == result["fileSize"]
        assert doc["url"] == f"{api}/api/storage/{result['storageId']}"
