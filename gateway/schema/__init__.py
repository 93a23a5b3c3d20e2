"""Validators (``v``), function argument/return checks and ``define_schema``.

Messages are Convex's own texts (``crates/common/src/schemas/validator.rs`` and the
index rules), so a developer sees what Convex would have shown.
"""

from gateway.schema.args import (
    as_args_validator,
    as_returns_validator,
    validate_args,
    validate_returns,
)
from gateway.schema.base import NO_TABLES, IdResolver, StaticIdResolver, Validator
from gateway.schema.builder import as_validator, v
from gateway.schema.compound import (
    ArrayValidator,
    ObjectValidator,
    OptionalValidator,
    RecordValidator,
    UnionValidator,
)
from gateway.schema.definition import Schema, define_schema
from gateway.schema.display import display_value
from gateway.schema.pagination import pagination_opts, pagination_result
from gateway.schema.paths import get_field_path
from gateway.schema.scalars import (
    AnyValidator,
    BooleanValidator,
    BytesValidator,
    Float64Validator,
    IdValidator,
    Int64Validator,
    LiteralValidator,
    NullValidator,
    StringValidator,
)
from gateway.schema.table import Replication, Retention, SearchIndex, TableDefinition, define_table

__all__ = [
    "NO_TABLES",
    "AnyValidator",
    "ArrayValidator",
    "BooleanValidator",
    "BytesValidator",
    "Float64Validator",
    "IdResolver",
    "IdValidator",
    "Int64Validator",
    "LiteralValidator",
    "NullValidator",
    "ObjectValidator",
    "OptionalValidator",
    "RecordValidator",
    "Replication",
    "Retention",
    "Schema",
    "SearchIndex",
    "StaticIdResolver",
    "StringValidator",
    "TableDefinition",
    "UnionValidator",
    "Validator",
    "as_args_validator",
    "as_returns_validator",
    "as_validator",
    "define_schema",
    "define_table",
    "display_value",
    "get_field_path",
    "pagination_opts",
    "pagination_result",
    "v",
    "validate_args",
    "validate_returns",
]
