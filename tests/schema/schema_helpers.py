"""Helpers for the schema tests: a table mapping and ids in it."""

from __future__ import annotations

from gateway.schema import StaticIdResolver
from gateway.values import encode_id

USERS, MESSAGES, STORAGE = 1, 2, 3

IDS = StaticIdResolver({USERS: "users", MESSAGES: "messages", STORAGE: "_storage"})


def make_id(table_number: int, seed: int = 0) -> str:
    return encode_id(table_number, bytes((seed + i) % 256 for i in range(16)))


USER_ID = make_id(USERS)
MESSAGE_ID = make_id(MESSAGES, 7)
STORAGE_ID = make_id(STORAGE, 3)
UNKNOWN_TABLE_ID = make_id(99, 5)
