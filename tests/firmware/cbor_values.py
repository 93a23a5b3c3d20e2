"""Random readings for the CBOR encoders, and an exact comparison of decoded values.

``typed`` makes equality strict where Python's is loose: ``True == 1``, ``1 == 1.0`` and
``0.0 == -0.0`` hold in Python, and ``nan != nan``; an encoder that mixed them up must
fail the tests, so floats compare by their bits and every value by its type.
"""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import strategies as st

MAX_INT = 2**53

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-MAX_INT, MAX_INT)
    | st.sampled_from([0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, -24, -25, -257])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.binary(max_size=300)
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=30,
)
readings = st.dictionaries(st.text(), values, max_size=8)


def typed(value: Any) -> Any:
    """``value`` with every leaf tagged by its type; floats by their IEEE 754 bits."""
    if isinstance(value, float):
        return ("float", struct.pack(">d", value))
    if isinstance(value, dict):
        return ("map", [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, list | tuple):
        return ("array", [typed(v) for v in value])
    return (type(value).__name__, value)
