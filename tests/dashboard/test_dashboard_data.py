"""The Data section in headless Chromium: tables with counts, rows arriving live after
an HTTP mutation, insert / edit / delete with the gateway's validation errors, and a
filter on an index range."""

from __future__ import annotations

from pathlib import Path

from dashboard.browser_kit import browser
from dashboard.dashboard_kit import Served, log_in, rows_of

from gateway.http import HttpServer

COUNT = "document.querySelector('#tables li[data-table=readings] .count')?.textContent"


async def test_rows_arrive_live_and_edits_show_the_gateways_words(
    served: Served, chromium_url: str, tmp_path: Path
) -> None:
    await served.call("mutation", "readings:add", {"device": "d1", "celsius": 20.5})
    async with browser(chromium_url, tmp_path) as chrome:
        tab = await chrome.tab(f"{served.url}/dashboard/#data")
        await log_in(tab, served.admin_key)
        await tab.until(f"{COUNT} === '1'", "readings with a count of 1")
        await tab.until(f"{rows_of('d1')} === 1", "the first reading")
        # A write from elsewhere shows up without a reload.
        await served.call("mutation", "readings:add", {"device": "d2", "celsius": 7.25})
        await tab.until(f"{rows_of('d2')} === 1", "the new reading, live")
        await tab.until(f"{COUNT} === '2'", "the count following")
        await tab.screenshot("data-live")

        # Insert: a document the schema refuses, in the gateway's words; then a good one.
        await tab.click("#insert")
        template = await tab.eval("JSON.parse(document.querySelector('#doc-json').value)")
        assert template == {"device": "", "celsius": 0}  # from the table's schema
        await tab.type("#doc-json", '{"device": 5, "celsius": 1}')
        await tab.click("#doc-save")
        message = await tab.until(
            "document.querySelector('#doc-message.error')?.textContent", "the validation error"
        )
        assert "device" in message, message
        await tab.screenshot("data-refused")
        await tab.type("#doc-json", '{"device": "d3", "celsius": 1}')
        await tab.click("#doc-save")
        await tab.until(f"{rows_of('d3')} === 1", "the inserted reading")

        # Edit d3, then delete it (two clicks).
        await tab.click("#rows tbody tr[data-id] td")  # the newest first: d3
        text = await tab.eval("document.querySelector('#doc-json').value")
        assert '"d3"' in text, text
        await tab.type("#doc-json", text.replace('"d3"', '"d4"'))
        await tab.click("#doc-save")
        await tab.until(f"{rows_of('d4')} === 1 && {rows_of('d3')} === 0", "the edited reading")
        await tab.click("#rows tbody tr[data-id] td")
        await tab.click("#doc-delete")
        await tab.click("#doc-delete")
        await tab.until(f"{rows_of('d4')} === 0", "the deleted reading gone")
        await tab.until(f"{COUNT} === '2'", "the count after the delete")

        # Filter on by_device: only d2's rows.
        await tab.eval(
            "(() => { const f = document.querySelector('#filter-form');"
            " const s = f.querySelector('select'); s.value = 'by_device';"
            " s.dispatchEvent(new Event('change')); })()"
        )
        await tab.until("document.querySelector('#filter-form .bound select')", "the bounds")
        await tab.eval(
            "(() => { const b = document.querySelector('#filter-form .bound');"
            " b.querySelector('select').value = 'eq'; b.querySelector('input').value = 'd2';"
            " document.querySelector('#filter-form button').click(); })()"
        )
        await tab.until(f"{rows_of('d2')} === 1 && {rows_of('d1')} === 0", "only d2's rows")
        await tab.screenshot("data-filtered")


async def test_the_page_reconnects_after_the_server_restarts(
    served: Served, chromium_url: str, tmp_path: Path
) -> None:
    port = int(served.url.rsplit(":", 1)[1])
    async with browser(chromium_url, tmp_path) as chrome:
        tab = await chrome.tab(f"{served.url}/dashboard/#data")
        await log_in(tab, served.admin_key)
        await tab.until("document.querySelector('#tables li[data-table=readings]')", "readings")
        await served.http.close()  # the sockets close with GOING_AWAY
        await tab.until("document.querySelector('#link').textContent === 'connecting'", "the drop")
        async with HttpServer(served.gateway) as again:
            await again.start("127.0.0.1", port)
            await tab.until(
                "document.querySelector('#link').textContent === 'live'", "the link back", 20
            )
            await served.call("mutation", "readings:add", {"device": "after", "celsius": 1.0})
            await tab.until(f"{rows_of('after')} === 1", "a row after the reconnect")
