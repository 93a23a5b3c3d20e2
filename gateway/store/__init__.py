"""The SQLite document store: layout, serial writer with group commit, readers, clock."""

from gateway.store.catalog import (
    BY_CREATION_TIME,
    BY_ID,
    Catalog,
    IndexInfo,
    Replication,
    SearchIndexInfo,
    TableInfo,
)
from gateway.store.fields import field_value
from gateway.store.hlc import ClockDriftError, HybridClock
from gateway.store.store import Store
from gateway.store.transaction import DocChange, Document, Transaction, index_key
from gateway.store.writelog import WriteLog
from gateway.store.writer import Committed, Writer

__all__ = [
    "BY_CREATION_TIME",
    "BY_ID",
    "Catalog",
    "ClockDriftError",
    "Committed",
    "DocChange",
    "Document",
    "HybridClock",
    "IndexInfo",
    "Replication",
    "SearchIndexInfo",
    "Store",
    "TableInfo",
    "Transaction",
    "WriteLog",
    "Writer",
    "field_value",
    "index_key",
]
