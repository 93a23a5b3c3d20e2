"""Convex's per-transaction limits (convex-semantics 4.3), shared by nested calls."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import LimitExceededError

MAX_DOCUMENTS_READ = 32_000
MAX_BYTES_READ = 16 * 1024 * 1024
MAX_INDEX_RANGES = 4_096
MAX_DOCUMENTS_WRITTEN = 16_000
MAX_BYTES_WRITTEN = 16 * 1024 * 1024
MAX_SCHEDULED = 1_000


@dataclass
class TransactionLimits:
    """Counters for one top-level query or mutation; nested calls add to the same."""

    documents_read: int = 0
    bytes_read: int = 0
    index_ranges: int = 0
    documents_written: int = 0
    bytes_written: int = 0
    scheduled: int = 0

    def read_range(self) -> None:
        self.index_ranges += 1
        if self.index_ranges > MAX_INDEX_RANGES:
            raise LimitExceededError(
                f"TooManyReads: this function read more than {MAX_INDEX_RANGES} index ranges "
                "(db.get and db.query calls); read fewer documents per call or paginate"
            )

    def read_document(self, size: int) -> None:
        self.documents_read += 1
        self.bytes_read += size
        if self.documents_read > MAX_DOCUMENTS_READ:
            raise LimitExceededError(
                f"TooManyDocumentsRead: this function read more than {MAX_DOCUMENTS_READ} "
                "documents (filtered-out ones count too); use an index or paginate"
            )
        if self.bytes_read > MAX_BYTES_READ:
            raise LimitExceededError(
                f"TooManyBytesRead: this function read more than {MAX_BYTES_READ} bytes; "
                "use an index or paginate"
            )

    def write_document(self, size: int) -> None:
        self.documents_written += 1
        self.bytes_written += size
        if self.documents_written > MAX_DOCUMENTS_WRITTEN:
            raise LimitExceededError(
                f"TooManyWrites: this mutation wrote more than {MAX_DOCUMENTS_WRITTEN} "
                "documents; split the work over several mutations"
            )
        if self.bytes_written > MAX_BYTES_WRITTEN:
            raise LimitExceededError(
                f"TooManyBytesWritten: this mutation wrote more than {MAX_BYTES_WRITTEN} "
                "bytes; split the work over several mutations"
            )

    def schedule(self) -> None:
        self.scheduled += 1
        if self.scheduled > MAX_SCHEDULED:
            raise LimitExceededError(
                f"TooManyFunctionsScheduled: a mutation may schedule at most {MAX_SCHEDULED} "
                "functions"
            )
