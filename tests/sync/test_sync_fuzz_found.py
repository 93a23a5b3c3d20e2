"""What the sync fuzz tier found, each kept as a test of its own."""

from __future__ import annotations

import logging

import pytest
from sync.hostile_kit import bystander, still_live
from sync.sync_kit import SyncApi

INT64_ARGS = '[{"$integer":"AQAAAAAAAAA="}]'  # an encoded Int64 where an object belongs
NOT_AN_OBJECT = {
    "query": '{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,"modifications":'
    '[{"type":"Add","queryId":0,"udfPath":"notes:count","args":' + INT64_ARGS + "}]}",
    "mutation": '{"type":"Mutation","requestId":0,"udfPath":"notes:add","args":' + INT64_ARGS + "}",
    "action": '{"type":"Action","requestId":0,"udfPath":"notes:shout","args":' + INT64_ARGS + "}",
}


@pytest.mark.parametrize("frame", NOT_AN_OBJECT.values(), ids=NOT_AN_OBJECT.keys())
async def test_sync_arguments_that_decode_to_no_object_get_a_fatal_error(
    sync_api: SyncApi, frame: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: an AssertionError in the parser, logged as an unexpected error with a
    traceback, and the socket dropped without a word."""
    caplog.set_level(logging.WARNING)
    calm = await bystander(sync_api)
    client = await sync_api.open()
    await client.ws.send_str(frame)
    fatal = await client.recv_type("FatalError")
    assert "'args' must be an object" in fatal["error"], fatal
    await client.closed()
    await still_live(calm)
    assert not caplog.records, caplog.text
    await calm.close()
