"""Convex values in Python: types, validation, sizes, the JSON wire codec, the
order-preserving index-key codec and document ids.

Everything other packages need is re-exported here; import from ``gateway.values``.
"""

from gateway.values.compare import compare_values, values_equal
from gateway.values.core import INT64_MAX, INT64_MIN, UNSET, Int64, Unset, Value
from gateway.values.ids import (
    MAX_TABLE_NUMBER,
    MIN_TABLE_NUMBER,
    IdGenerator,
    decode_id,
    encode_id,
    is_id,
)
from gateway.values.json_codec import (
    decode_json,
    dumps,
    dumps_yielding,
    encode_clean_json,
    encode_json,
    loads,
)
from gateway.values.normalize import (
    DOCUMENT_MAX_DEPTH,
    MAX_ARRAY_LENGTH,
    MAX_DOCUMENT_BYTES,
    MAX_FIELD_NAME_LENGTH,
    MAX_OBJECT_FIELDS,
    SYSTEM_FIELDS,
    VALUE_MAX_DEPTH,
    check_document_fields,
    check_field_name,
    is_field_name,
    to_convex,
)
from gateway.values.size import convex_size
from gateway.values.sort_key import (
    creation_id_key,
    encode_index_key,
    encode_key,
    key_successor,
)

__all__ = [
    "DOCUMENT_MAX_DEPTH",
    "INT64_MAX",
    "INT64_MIN",
    "MAX_ARRAY_LENGTH",
    "MAX_DOCUMENT_BYTES",
    "MAX_FIELD_NAME_LENGTH",
    "MAX_OBJECT_FIELDS",
    "MAX_TABLE_NUMBER",
    "MIN_TABLE_NUMBER",
    "SYSTEM_FIELDS",
    "UNSET",
    "VALUE_MAX_DEPTH",
    "IdGenerator",
    "Int64",
    "Unset",
    "Value",
    "check_document_fields",
    "check_field_name",
    "is_field_name",
    "compare_values",
    "convex_size",
    "decode_id",
    "decode_json",
    "dumps",
    "dumps_yielding",
    "encode_clean_json",
    "encode_id",
    "creation_id_key",
    "encode_index_key",
    "encode_json",
    "encode_key",
    "is_id",
    "key_successor",
    "loads",
    "to_convex",
    "values_equal",
]
