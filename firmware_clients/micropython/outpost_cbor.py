# A minimal CBOR encoder (RFC 8949) for MicroPython, which has no cbor2.
#
# It writes what a reading holds: maps with text keys, lists, integers, floats, text,
# bytes, True/False/None. Written for MicroPython as much as for CPython: only `struct`,
# no annotations evaluated at runtime, f-strings only as MicroPython 1.17+ has them.
#
# Integers stay within +-2^53: the gateway refuses larger ones (docs/mqtt.md) rather
# than round them, so refusing them here tells the device's developer at once.
# Floats are always written as float64 (major type 7, additional info 27): exact for
# both CPython doubles and the single-precision floats of ESP32/RP2 builds.

import struct

MAX_INT = 1 << 53


def dumps(value):
    """The CBOR bytes of `value`; ValueError for what the gateway would refuse."""
    out = []
    _encode(value, out)
    return b"".join(out)


def _head(major, length, out):
    # RFC 8949 section 3: the argument inline below 24, else in 1, 2, 4 or 8 bytes.
    top = major << 5
    if length < 24:
        out.append(bytes((top | length,)))
    elif length < 0x100:
        out.append(bytes((top | 24, length)))
    elif length < 0x10000:
        out.append(struct.pack(">BH", top | 25, length))
    elif length < 0x100000000:
        out.append(struct.pack(">BI", top | 26, length))
    else:
        out.append(struct.pack(">BQ", top | 27, length))


def _encode(value, out):
    # bool before int: True is an int in Python.
    if value is None:
        out.append(b"\xf6")
    elif value is True:
        out.append(b"\xf5")
    elif value is False:
        out.append(b"\xf4")
    elif isinstance(value, int):
        _encode_int(value, out)
    elif isinstance(value, float):
        out.append(b"\xfb" + struct.pack(">d", value))
    elif isinstance(value, str):
        data = value.encode("utf-8")
        _head(3, len(data), out)
        out.append(data)
    elif isinstance(value, (bytes, bytearray)):
        _head(2, len(value), out)
        out.append(bytes(value))
    elif isinstance(value, dict):
        _encode_map(value, out)
    elif isinstance(value, (list, tuple)):
        _head(4, len(value), out)
        for item in value:
            _encode(item, out)
    else:
        raise ValueError(f"cannot encode {type(value)} as CBOR")


def _encode_int(value, out):
    if not -MAX_INT <= value <= MAX_INT:
        raise ValueError(f"integer {value} beyond +-2^53: send it as a string")
    if value >= 0:
        _head(0, value, out)
    else:
        _head(1, -1 - value, out)  # major type 1 holds -1 - n


def _encode_map(value, out):
    _head(5, len(value), out)
    for key in value:
        if not isinstance(key, str):
            raise ValueError(f"map key {key!r} is not text")
        _encode(key, out)
        _encode(value[key], out)
