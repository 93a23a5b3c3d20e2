"""The Arduino sketch's C++ CBOR writer and ack parser, compiled with g++ on the host.

A driver program (cbor_writer_driver.cpp) turns lines of commands into calls of the
writer and prints the bytes; the tests check them with cbor2 against the values the
commands describe: random readings (one seed a run, printed on failure), then the
edges: float bits, negative integers, lengths needing 1-, 2- and 4-byte heads. The
sketch itself is compiled (not linked) against declarations of the Arduino APIs it uses
(arduino_stubs/), so a typo or a wrong call fails here rather than in the Arduino IDE.
"""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cbor_values import typed
from debian import ensure_programs

HERE = Path(__file__).resolve().parent
SKETCH = HERE.parent.parent / "firmware_clients" / "arduino" / "outpost_sensor"
SOURCES = [HERE / "cbor_writer_driver.cpp", SKETCH / "cbor_writer.cpp", SKETCH / "outpost_ack.cpp"]
MAX_INT = 2**53


STUBS = HERE / "arduino_stubs"
WARNINGS = ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic"]


def gxx() -> str:
    return ensure_programs(["g++"], ["g++"], "the Arduino sketch's tests")["g++"]


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    program = tmp_path_factory.mktemp("cbor_cpp") / "driver"
    flags = [*WARNINGS, "-O1", f"-I{SKETCH}"]
    done = subprocess.run(
        [gxx(), *flags, *map(str, SOURCES), "-o", str(program)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return program


def run(driver: Path, lines: list[str]) -> list[str]:
    done = subprocess.run(
        [str(driver)], input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def commands(value: Any) -> list[str]:
    """The driver's commands that write ``value``."""
    if value is None:
        return ["null"]
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, int):
        return [f"int {value}"]
    if isinstance(value, float):
        return [f"float {struct.pack('>d', value).hex()}"]
    if isinstance(value, str):
        return [f"text {value.encode().hex()}"]
    if isinstance(value, bytes):
        return [f"bytes {value.hex()}"]
    if isinstance(value, list):
        return [f"array {len(value)}"] + [line for item in value for line in commands(item)]
    assert isinstance(value, dict)
    out = [f"map {len(value)}"]
    for key, item in value.items():
        out += commands(key) + commands(item)
    return out


def encode_all(driver: Path, values: list[Any]) -> list[bytes]:
    lines = [line for value in values for line in [*commands(value), "end"]]
    return [bytes.fromhex(hex_) for hex_ in run(driver, lines)]


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 7)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.randint(-MAX_INT, MAX_INT)
    if kind == 2:
        return rng.choice([0, 23, 24, 255, 256, 65535, 65536, 2**32, -1, -24, -25, -(2**32) - 1])
    if kind == 3:
        return struct.unpack(">d", rng.randbytes(8))[0]  # any bits: NaNs, infinities, subnormals
    if kind == 4:
        return rng.choice([0.0, -0.0, 1.5, -2.25, 1e300, float("inf")])
    if kind == 5:
        return "".join(
            chr(rng.choice([rng.randint(32, 126), rng.randint(160, 0xD7FF)]))
            for _ in range(rng.randint(0, 40))
        )
    if kind == 6:
        return rng.randbytes(rng.randint(0, 40))
    if kind == 7:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    return {
        f"k{rng.randint(0, 999)}": random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))
    }


def test_random_readings_decode_with_cbor2(driver: Path) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    values = [{f"f{i}": random_value(rng) for i in range(rng.randint(0, 8))} for _ in range(300)]
    for value, encoded in zip(values, encode_all(driver, values), strict=True):
        assert typed(cbor2.loads(encoded)) == typed(value), f"seed {seed}: {value!r}"


@pytest.mark.parametrize("length", [0, 23, 24, 255, 256, 65535, 65536, 100_000])
def test_lengths_need_one_two_or_four_byte_heads(driver: Path, length: int) -> None:
    entries = min(length, 70_000) // 10
    value = {
        "t": "x" * length,
        "b": b"\xff" * length,
        "a": [-1] * min(length, 300),
        "m": {f"k{i}": i for i in range(entries)},
    }
    (encoded,) = encode_all(driver, [value])
    assert typed(cbor2.loads(encoded)) == typed(value)
    assert encoded == cbor2.dumps(value)  # no floats: byte for byte what cbor2 writes


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (-1, "20"),
        (-25, "3818"),
        (-(2**53), "3b001fffffffffffff"),
        (2**53, "1b0020000000000000"),
        (1.5, "fb3ff8000000000000"),
        (-0.0, "fb8000000000000000"),
        ("ü", "62c3bc"),
    ],
)
def test_known_encodings(driver: Path, value: Any, expected: str) -> None:
    assert [e.hex() for e in encode_all(driver, [value])] == [expected]


def test_errors_stop_the_writer(driver: Path) -> None:
    lines = ["int 9007199254740993", "end", "int -9007199254740993", "end"]
    lines += ["capacity 5", "text 68656c6c6f", "end", "capacity 6", "text 68656c6c6f", "end"]
    assert run(driver, lines) == ["error", "error", "error", "6568656c6c6f"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"boot": 12345, "seq": 7}', "12345 7"),
        ('{"seq":7,"boot":1}', "1 7"),
        (
            '{"boot": 2147483647, "seq": 9007199254740992, "at": "x", "n": null}',
            "2147483647 9007199254740992",
        ),
        ('{"boot": 3, "seq": 7.0}', "3 7"),
        (' { "boot" : 1 , "seq" : 2 } ', "1 2"),
        ("", "none"),
        ("{}", "none"),
        ('{"boot": 1}', "none"),
        ('{"boot": -1, "seq": 2}', "none"),
        ('{"boot": 1, "seq": 2', "none"),
        ('{"boot": 1, "seq": 2} x', "none"),
        ('{"boot": 1, "seq": {"x": 1}}', "none"),
        ('{"boot": 1, "seq": 99999999999999999999}', "none"),
    ],
)
def test_ack_parser(driver: Path, text: str, expected: str) -> None:
    assert run(driver, [f"ack {text.encode().hex()}"]) == [expected]


def test_the_sketch_compiles_against_the_apis_it_uses(tmp_path: Path) -> None:
    sketch = tmp_path / "outpost_sensor.cpp"  # what the Arduino IDE makes of the .ino
    shutil.copy(SKETCH / "outpost_sensor.ino", sketch)
    shutil.copy(SKETCH / "secrets.example.h", tmp_path / "secrets.h")
    command = [gxx(), *WARNINGS, "-fsyntax-only", f"-I{STUBS}", f"-I{SKETCH}", str(sketch)]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
