"""Two network namespaces joined by a veth pair: a LAN of two machines for mDNS tests.

Made with iproute2 (``ip netns``, ``ip link ... type veth``); each end gets an address
of one /24 (no route leaves the pair: the namespaces hold nothing else), loopback and
the veth up with multicast on. Names carry the pid and a random part, so several test
runs on one machine never meet; ``remove`` deletes both (the veth goes with them).
Where namespaces cannot be made (not root, a container without CAP_SYS_ADMIN) the test
is skipped with the reason ``ip`` gave.
"""

from __future__ import annotations

import os
import secrets
import select
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from debian import ensure_programs

ANNOUNCER_ADDRESS = "10.213.0.1"
BROWSER_ADDRESS = "10.213.0.2"


@dataclass
class NamespacePair:
    """``announcer`` and ``browser``: namespace names, each with one veth end."""

    announcer: str
    browser: str
    made: list[str] = field(default_factory=list)

    def exec(self, namespace: str, *argv: str) -> list[str]:
        """``argv`` run inside ``namespace``."""
        return [ip(), "netns", "exec", namespace, *argv]


def ip() -> str:
    return ensure_programs(["ip"], ["iproute2"], "the LAN discovery tests")["ip"]


def make_pair(*, announcer_address: bool = True) -> NamespacePair:
    """Both namespaces set up, or the test skipped saying why they cannot be made;
    without ``announcer_address`` the announcer's end has none until ``give_address``."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (ip netns add); run the tests as root")
    tag = f"{os.getpid()}-{secrets.token_hex(3)}"
    pair = NamespacePair(f"outpost-a-{tag}", f"outpost-b-{tag}")
    first = subprocess.run([ip(), "netns", "add", pair.announcer], capture_output=True, text=True)
    if first.returncode != 0:
        pytest.skip(f"cannot make a network namespace here: {first.stderr.strip()}")
    pair.made.append(pair.announcer)
    try:
        _run("netns", "add", pair.browser)
        pair.made.append(pair.browser)
        _run("link", "add", "veth-a", "netns", pair.announcer, "type", "veth", "peer", "name",
             "veth-b", "netns", pair.browser)  # fmt: skip
        for namespace, device in ((pair.announcer, "veth-a"), (pair.browser, "veth-b")):
            _run("-n", namespace, "link", "set", "lo", "up")
            _run("-n", namespace, "link", "set", device, "up", "multicast", "on")
        _run("-n", pair.browser, "address", "add", f"{BROWSER_ADDRESS}/24", "dev", "veth-b")
        if announcer_address:
            give_address(pair)
    except BaseException:
        remove(pair)
        raise
    return pair


def give_address(pair: NamespacePair) -> None:
    """The announcer's end gets its address (as DHCP would give one, late)."""
    _run("-n", pair.announcer, "address", "add", f"{ANNOUNCER_ADDRESS}/24", "dev", "veth-a")


def remove(pair: NamespacePair) -> None:
    """Delete the namespaces made (their processes must have been stopped first)."""
    for namespace in reversed(pair.made):
        subprocess.run([ip(), "netns", "delete", namespace], capture_output=True, check=False)
    pair.made.clear()


def _run(*args: str) -> None:
    done = subprocess.run([ip(), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")


class Lines:
    """A process's merged output read line by line, each wait bounded by a deadline."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        self.process = process
        self._fd = process.stdout.fileno()
        self._buffer = b""
        self.seen: list[str] = []

    def wait_for(self, text: str, timeout_s: float = 20.0) -> str:
        """The first line (seen before or arriving) that contains ``text``."""
        deadline = time.monotonic() + timeout_s
        while True:
            for line in self.seen:
                if text in line:
                    return line
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                raise AssertionError(f"no line with {text!r} in time; output:\n{self.text()}")

    def _read(self, timeout_s: float) -> bool:
        ready, _, _ = select.select([self._fd], [], [], timeout_s)
        if not ready:
            return False
        chunk = os.read(self._fd, 65536)
        if not chunk:
            return False  # the process closed its output: it has ended
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        self.seen += [line.decode(errors="replace") for line in lines]
        return True

    def rest(self, timeout_s: float = 20.0) -> None:
        """Read until the process closes its output."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self._read(deadline - time.monotonic()):
            pass

    def text(self) -> str:
        return "\n".join(self.seen)


def start(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen[bytes], Lines]:
    """``argv`` with stdout and stderr merged into one pipe read as ``Lines``."""
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=env, cwd=cwd,
    )  # fmt: skip
    return process, Lines(process)
