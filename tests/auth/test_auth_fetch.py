"""``gateway.auth.fetch``: cache lifetimes from response headers, ``data:`` URLs."""

from __future__ import annotations

import pytest

from gateway.auth.fetch import (
    DEFAULT_CACHE_S,
    MAX_CACHE_S,
    FetchError,
    HttpFetcher,
    cache_lifetime_s,
    decode_data_url,
)

DATE = "Fri, 04 Dec 2026 20:00:00 GMT"


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Cache-Control": "public, max-age=3600, must-revalidate"}, 3600.0),
        ({"Cache-Control": 'max-age="60"'}, 60.0),
        ({"Cache-Control": "no-cache"}, 0.0),
        ({"Cache-Control": "no-store, max-age=600"}, 0.0),
        ({"Cache-Control": "max-age=soon"}, 0.0),
        ({"Cache-Control": "max-age=99999999"}, MAX_CACHE_S),
        ({"Expires": "Fri, 04 Dec 2026 20:05:00 GMT", "Date": DATE}, 300.0),
        ({"Expires": "0", "Date": DATE}, 0.0),
        ({"Expires": "Fri, 04 Dec 2026 19:00:00 GMT", "Date": DATE}, 0.0),
        ({"Cache-Control": "max-age=5", "Expires": "Fri, 04 Dec 2026 21:00:00 GMT"}, 5.0),
        ({}, DEFAULT_CACHE_S),
    ],
)
def test_cache_lifetime(headers: dict[str, str], seconds: float) -> None:
    assert cache_lifetime_s(headers) == seconds


def test_data_urls() -> None:
    assert decode_data_url("data:application/json;base64,eyJrZXlzIjpbXX0=") == b'{"keys":[]}'
    assert decode_data_url("data:,%7B%22keys%22%3A%5B%5D%7D") == b'{"keys":[]}'
    with pytest.raises(FetchError):
        decode_data_url("data:application/json;base64")


async def test_a_data_url_is_never_fetched() -> None:
    fetcher = HttpFetcher()
    fetched = await fetcher("data:,%7B%22keys%22%3A%5B%5D%7D")
    assert fetched.document == {"keys": []} and fetched.max_age_s == MAX_CACHE_S
    with pytest.raises(FetchError, match="not a JSON object"):
        await fetcher("data:,[]")
    await fetcher.close()
    await fetcher.close()  # idempotent
