"""``GET /metrics``: Prometheus's text format, parsed back strictly; counters and
histograms that move with calls and writes; open to this machine, and from elsewhere
only with the admin key."""

from __future__ import annotations

import socket
from pathlib import Path

import aiohttp
import pytest
from prometheus_text_kit import Scrape, parse

from gateway import Gateway
from gateway.histogram import Histogram
from gateway.http import HttpServer, load_or_create_admin_key
from gateway.metrics import Histograms, Labelled, Metric, render

FN = "outpost_function_duration_seconds"


def test_render_escapes_help_and_prints_every_value_as_a_float() -> None:
    text = render([Metric("a_total", "counter", "back\\slash\nnewline", 3)])
    assert text == "# HELP a_total back\\\\slash\\nnewline\n# TYPE a_total counter\na_total 3\n"
    scrape = parse(render([Metric("b", "gauge", "x", 0.5)]))
    assert scrape.kinds == {"b": "gauge"} and scrape.value("b") == 0.5


def test_a_histogram_renders_cumulative_buckets_ending_at_inf_equal_to_count() -> None:
    h = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 7.0):  # 0.1 falls in le="0.1": ``le`` is inclusive
        h.observe(value)
    text = render([Histograms("t_seconds", "time", {"query": h}, label="kind")])
    assert text.splitlines()[2:] == [
        't_seconds_bucket{kind="query",le="0.1"} 2',
        't_seconds_bucket{kind="query",le="1.0"} 3',
        't_seconds_bucket{kind="query",le="+Inf"} 4',
        't_seconds_sum{kind="query"} 7.65',
        't_seconds_count{kind="query"} 4',
    ]
    buckets, total, count = parse(text).histogram("t_seconds", kind="query")
    assert buckets == [(0.1, 2.0), (1.0, 3.0), (float("inf"), 4.0)]
    assert (total, count) == (pytest.approx(7.65), 4.0)
    plain = parse(render([Histograms("b_jobs", "jobs", {"": Histogram((1, 2))})]))
    assert plain.histogram("b_jobs")[2] == 0.0


def test_a_labelled_counter_is_one_series_per_value() -> None:
    text = render([Labelled("f_total", "counter", "fails", "kind", {"query": 1, "action": 0})])
    scrape = parse(text)
    assert scrape.value("f_total", kind="query") == 1.0
    assert scrape.value("f_total", kind="action") == 0.0


def test_the_parser_refuses_what_breaks_the_format() -> None:
    good = render([Histograms("h", "x", {"": Histogram((1.0,))})])
    for broken in (
        good.replace('le="+Inf"} 0', 'le="+Inf"} 1'),  # +Inf differs from _count
        good + "h_count 0\n",  # a series twice
        good.replace("# TYPE h histogram", "# TYPE h summary"),
        good + "# HELP g x\n# TYPE g gauge\nh 1\n",  # another family's sample
    ):
        with pytest.raises(AssertionError):
            parse(broken)


async def _scrape(api) -> Scrape:  # type: ignore[no-untyped-def]
    async with api.session.get("/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return parse(await resp.text())


async def test_metrics_move_with_writes(api) -> None:  # type: ignore[no-untyped-def]
    before = await _scrape(api)
    for n in range(3):
        await api.post("/api/mutation", {"path": "messages:send", "args": {"body": f"m{n}"}})
    after = await _scrape(api)
    assert after.value("outpost_writer_jobs_total") >= before.value("outpost_writer_jobs_total") + 3
    assert after.kinds["outpost_writer_commits_total"] == "counter"
    # Each mutation was answered before the next was sent: at least one durable COMMIT
    # (one fsync) each, and one batch each in the batch-size histogram.
    fsyncs = after.value("outpost_writer_fsyncs_total") - before.value(
        "outpost_writer_fsyncs_total"
    )
    assert fsyncs >= 3
    batches = after.histogram("outpost_writer_batch_jobs")[2]
    assert batches - before.histogram("outpost_writer_batch_jobs")[2] >= 3
    assert after.value("outpost_process_written_bytes_total") > 0  # the SD wear meter
    assert after.value("outpost_process_resident_bytes") > 10 * 2**20
    assert after.value("outpost_clock_trusted") in (0.0, 1.0)
    assert after.value("outpost_writer_queued_jobs") >= 0
    assert after.value("outpost_readers_queued_jobs") >= 0
    assert after.value("outpost_http_connections") >= 1  # this scrape's own
    assert after.value("outpost_sync_sockets") == 0


async def test_calls_move_the_latency_histogram_of_their_kind_only(api) -> None:  # type: ignore[no-untyped-def]
    before = await _scrape(api)
    assert (await api.post("/api/mutation", {"path": "messages:send", "args": {"body": "x"}}))[
        0
    ] == 200
    assert (await api.post("/api/query", {"path": "messages:list", "args": {}}))[0] == 200
    assert (await api.post("/api/query", {"path": "messages:echo", "args": {}}))[0] == 200
    await api.post("/api/mutation", {"path": "messages:crash", "args": {}})
    after = await _scrape(api)

    def moved(kind: str) -> tuple[float, float]:
        _, sum_before, count_before = before.histogram(FN, kind=kind)
        _, sum_after, count_after = after.histogram(FN, kind=kind)
        return count_after - count_before, sum_after - sum_before

    mutations, mutation_s = moved("mutation")
    queries, query_s = moved("query")
    assert (mutations, queries, moved("action")) == (2, 2, (0, 0))
    assert 0 < mutation_s < 60 and 0 < query_s < 60
    failures = "outpost_function_failures_total"
    assert after.value(failures, kind="mutation") == before.value(failures, kind="mutation") + 1
    assert after.value(failures, kind="query") == before.value(failures, kind="query")


async def test_a_wrong_admin_key_is_refused_even_locally(api) -> None:  # type: ignore[no-untyped-def]
    async with api.session.get("/metrics", headers={"Authorization": "Convex nope"}) as resp:
        assert resp.status == 403


def _lan_address() -> str:
    """This machine's address on its default route (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
        except OSError:
            return ""
        address: str = probe.getsockname()[0]
    return "" if address.startswith("127.") else address


async def test_from_the_lan_metrics_take_the_admin_key(app_dir: Path, tmp_path: Path) -> None:
    address = _lan_address()
    if not address:
        pytest.skip("this machine has no address but loopback to reach itself from")
    data = tmp_path / "data"
    async with Gateway.open(app_dir, data) as gw, HttpServer(gw) as server:
        port = await server.start(address, 0)
        key = load_or_create_admin_key(data)
        async with aiohttp.ClientSession(f"http://{address}:{port}") as session:
            async with session.get("/metrics") as resp:
                assert resp.status == 403
                assert "admin key" in (await resp.json(content_type=None))["message"]
            headers = {"Authorization": f"Convex {key}"}
            async with session.get("/metrics", headers=headers) as resp:
                assert resp.status == 200
                assert "outpost_writer_commits_total" in parse(await resp.text()).kinds
