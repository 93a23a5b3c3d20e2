"""The other sections in headless Chromium: run a function (value, log lines, the
gateway's error), live logs and their filter, cancel a scheduled job, health and
replication figures, the phone-sized layout; and the page's weight, first paint and
memory, measured over DevTools."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dashboard.browser_kit import browser
from dashboard.dashboard_kit import Served, log_in

FN_ROW = "document.querySelector('#fn-list li[data-path=\"{path}\"]')"


async def test_function_runner_shows_value_logs_and_errors(
    served: Served, chromium_url: str, tmp_path: Path
) -> None:
    async with browser(chromium_url, tmp_path) as chrome:
        tab = await chrome.tab(f"{served.url}/dashboard/#functions")
        await log_in(tab, served.admin_key)
        await tab.until(FN_ROW.format(path="readings:double"), "the internal function listed")
        await tab.eval(FN_ROW.format(path="readings:double") + ".click()")
        await tab.type("#fn-args", '{"n": 21}')
        await tab.click("#fn-run")
        await tab.until("document.querySelector('#fn-result').textContent === '42'", "the value")
        assert "doubling 21" in await tab.text("#fn-logs")
        await tab.screenshot("function-run")
        await tab.eval(FN_ROW.format(path="readings:refuse") + ".click()")
        await tab.click("#fn-run")
        error = await tab.until(
            "document.querySelector('#fn-error.error')?.textContent", "the function's error"
        )
        assert "NOPE" in error, error
        await tab.type("#fn-args", "{not json")
        await tab.click("#fn-run")
        await tab.until(
            "document.querySelector('#fn-error').textContent.includes('not JSON')", "bad JSON"
        )


async def test_logs_live_and_filtered(served: Served, chromium_url: str, tmp_path: Path) -> None:
    async with browser(chromium_url, tmp_path) as chrome:
        tab = await chrome.tab(f"{served.url}/dashboard/#logs")
        await log_in(tab, served.admin_key)
        await served.call("mutation", "readings:add", {"device": "logged-1", "celsius": 1.0})
        line = "[...document.querySelectorAll('#log-lines div')].some((d) => d.textContent.includes('reading from logged-1'))"
        await tab.until(line, "the function's log line, live")
        await tab.screenshot("logs")
        await tab.eval(
            "(() => { const s = document.querySelector('select[aria-label=level]');"
            " s.value = 'ERROR'; s.dispatchEvent(new Event('change')); })()"
        )
        await served.call("mutation", "readings:add", {"device": "logged-2", "celsius": 1.0})
        await tab.until(f"!({line})", "the INFO line filtered out")


async def test_cancel_a_scheduled_job(served: Served, chromium_url: str, tmp_path: Path) -> None:
    job = await served.call("mutation", "readings:later", {"device": "d9"})
    row = f"document.querySelector('#jobs tr[data-id={json.dumps(job)}]')"
    async with browser(chromium_url, tmp_path) as chrome:
        tab = await chrome.tab(f"{served.url}/dashboard/#scheduler")
        await log_in(tab, served.admin_key)
        await tab.until(f"{row}?.dataset.state === 'pending'", "the pending job")
        await tab.eval(f"{row}.querySelector('button.cancel').click()")
        await tab.until(f"{row}?.dataset.state === 'canceled'", "the job canceled, live")
        await tab.screenshot("scheduler")


async def test_health_replication_and_a_phone_screen(
    served: Served, chromium_url: str, tmp_path: Path
) -> None:
    async with browser(chromium_url, tmp_path) as chrome:
        tab = await chrome.tab(f"{served.url}/dashboard/#health", width=390, height=844)
        await log_in(tab, served.admin_key)
        await tab.until(
            "document.querySelector('#health-kv dd[data-key=\"store.bytes\"]')", "the store size"
        )
        rss = await tab.text('#health-kv dd[data-key="memory.rssBytes"]')
        assert "MiB" in rss, rss
        # Nothing wider than the phone's screen but the tabs, which scroll.
        assert await tab.eval("document.documentElement.scrollWidth") <= 390
        await tab.screenshot("health-phone")
        await tab.eval("location.hash = '#replication'")
        await tab.until(
            "document.querySelector('#replication').textContent.includes('No upstream')",
            "no upstream said so",
        )
        await tab.screenshot("replication-phone")
        await served.call("mutation", "readings:add", {"device": "phone", "celsius": 3.5})
        await tab.eval("location.hash = '#data'")
        await tab.until("document.querySelector('#rows tbody tr')", "the rows on a phone")
        assert await tab.eval("document.documentElement.scrollWidth") <= 390
        await tab.screenshot("data-phone")


async def test_page_weight_first_paint_and_memory(
    served: Served, chromium_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The figures of the issue: bytes of all the page's files over the wire (gzip), the
    first contentful paint, and the page's JS heap, from a cold tab."""
    await served.call("mutation", "readings:add", {"device": "d1", "celsius": 20.0})
    async with browser(chromium_url, tmp_path) as chrome:
        tab = await chrome.tab(f"{served.url}/dashboard/")
        await tab.send("Performance.enable")
        await log_in(tab, served.admin_key)
        await tab.until("document.querySelector('#rows tbody tr')", "the first rows")
        figures = await tab.eval(
            "(() => { const nav = performance.getEntriesByType('navigation')[0];"
            " const files = performance.getEntriesByType('resource')"
            "   .filter((r) => r.name.includes('/dashboard/'));"
            " const paint = performance.getEntriesByType('paint')"
            "   .find((p) => p.name === 'first-contentful-paint');"
            " return {fcpMs: paint ? paint.startTime : null,"
            "   files: files.length + 1,"
            "   wireBytes: nav.transferSize + files.reduce((n, r) => n + r.transferSize, 0),"
            "   bodyBytes: nav.decodedBodySize + files.reduce((n, r) => n + r.decodedBodySize, 0)}; })()"
        )
        metrics = await tab.send("Performance.getMetrics")
        heap = {m["name"]: m["value"] for m in metrics["metrics"]}
    figures["jsHeapUsedBytes"] = heap["JSHeapUsedSize"]
    figures["domNodes"] = heap["Nodes"]
    with capsys.disabled():
        print(f"\ndashboard page: {json.dumps(figures)}")
    assert figures["fcpMs"] is not None and figures["fcpMs"] < 1000, figures
    assert figures["wireBytes"] < 60_000, figures
