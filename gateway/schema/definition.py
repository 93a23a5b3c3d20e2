"""``define_schema`` and ``Schema``: the app's tables, checked as Convex checks a push.

``Schema.validate_document`` is schema enforcement on every write: with validation on,
a document of a declared table must match its validator (system fields aside), or
``SchemaEnforcementError`` carries Convex's message. Tables not in the schema are
not checked.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from gateway.errors import SchemaEnforcementError
from gateway.schema.base import NO_TABLES, IdResolver, Mismatch
from gateway.schema.flat import FlatObjectCheck, plain_document
from gateway.schema.scalars import AnyValidator
from gateway.schema.table import TableDefinition
from gateway.schema.table_rules import check_index_references, check_table

__all__ = ["Schema", "define_schema"]

# (document, ids) -> whether the document is stored as it is
DocumentCheck = Callable[[Any, IdResolver], bool]


class Schema:
    """The checked result of ``define_schema`` (``convex/schema.py`` defines ``schema``)."""

    def __init__(
        self,
        tables: Mapping[str, TableDefinition],
        *,
        schema_validation: bool = True,
        strict_table_name_types: bool = False,
    ) -> None:
        self._tables = dict(tables)
        self.tables: Mapping[str, TableDefinition] = MappingProxyType(self._tables)
        self.schema_validation = schema_validation
        #: Only affects TypeScript types in Convex; kept for fidelity, no effect here.
        self.strict_table_name_types = strict_table_name_types

    def validate_document(
        self, table: str, doc: dict[str, Any], ids: IdResolver | None = None
    ) -> dict[str, Any]:
        """Check a document about to be inserted or updated in ``table``.

        Top-level ``_``-prefixed fields (``_id``, ``_creationTime``) are not checked.
        Returns the document normalised (a plain ``int`` in a ``v.int64()`` field becomes
        an ``Int64``, one in a ``v.float64()`` field a ``float``; ``UNSET`` fields are
        dropped): store what is returned. Raises ``SchemaEnforcementError``.
        """
        validator = self._checking(table)
        if validator is None:
            return doc
        user = {k: x for k, x in doc.items() if not (isinstance(k, str) and k.startswith("_"))}
        try:
            checked = validator._check(user, "", ids if ids is not None else NO_TABLES, False)
        except Mismatch as m:
            raise SchemaEnforcementError(
                f'Failed to insert or update a document in table "{table}" because it does not '
                f"match the schema: {m.render()}"
            ) from None
        if len(user) == len(doc):  # no system fields to put back: ``checked`` is it
            return checked  # type: ignore[no-any-return]
        return {
            k: (checked[k] if k in user else x)
            for k, x in doc.items()
            if k not in user or k in checked
        }

    def flat_check(self, table: str) -> FlatObjectCheck | None:
        """The one-pass check of ``table``'s documents when they are flat objects of
        scalars (``None``: use ``validate_document``). See ``gateway.schema.flat``."""
        definition = self._tables.get(table)
        if not self.schema_validation or definition is None:
            return None
        return getattr(definition.document_validator, "flat", None)

    def document_check(self, table: str) -> DocumentCheck | None:
        """The one-pass check of ``table``'s documents in their stored form (``_id``,
        ``_creationTime``, fields) when they are flat objects of scalars, or ``None``
        (use ``validate_document``). See ``gateway.schema.flat``."""
        validator = self._checking(table)
        if validator is None:
            return plain_document
        flat: FlatObjectCheck | None = getattr(validator, "flat", None)
        return None if flat is None else flat.document

    def _checking(self, table: str) -> Any:
        """The validator ``table``'s documents are checked with; ``None``: not checked."""
        definition = self._tables.get(table)
        if not self.schema_validation or definition is None:
            return None
        validator = definition.document_validator
        return None if isinstance(validator, AnyValidator) else validator

    def to_json(self) -> dict[str, Any]:
        """Convex's ``DatabaseSchemaJson`` (tables sorted by name), with Outpost's
        ``replication`` and ``retention`` per table."""
        return {
            "tables": [self._tables[name].to_json(name) for name in sorted(self._tables)],
            "schemaValidation": self.schema_validation,
        }

    def fingerprint(self) -> str:
        """A stable hash of ``to_json()``: equal schemas give equal fingerprints, whatever
        the order tables and indexes were declared in."""
        text = json.dumps(
            self.to_json(),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=True,
            allow_nan=False,
        )
        return hashlib.sha256(text.encode("ascii")).hexdigest()

    def __repr__(self) -> str:
        return f"Schema(tables={sorted(self._tables)}, schema_validation={self.schema_validation})"


def define_schema(
    tables: Mapping[str, TableDefinition],
    *,
    schema_validation: bool = True,
    strict_table_name_types: bool = False,
) -> Schema:
    """The app's schema: ``{"table": define_table(...)...}``.

    Checks Convex's rules (table and index names, index fields, limits, and with
    ``schema_validation`` that indexed fields exist) and raises
    ``SchemaDefinitionError`` with Convex's message for the first one broken.
    """
    if not isinstance(tables, Mapping):
        raise TypeError(f"define_schema() takes a dict of tables, not {type(tables).__name__}")
    for name, definition in tables.items():
        if not isinstance(definition, TableDefinition):
            raise TypeError(
                f"define_schema(): table {name!r} must be define_table(...), "
                f"not {type(definition).__name__}"
            )
        check_table(name, definition)
    if schema_validation:
        for name, definition in tables.items():
            check_index_references(name, definition)
    return Schema(
        tables,
        schema_validation=bool(schema_validation),
        strict_table_name_types=bool(strict_table_name_types),
    )
