"""A throwaway Debian 12 root for ``deploy/install.sh``: made by ``debootstrap``, cached.

The first run on a machine builds a minimal bookworm root (what a Raspberry Pi OS Lite
has that matters here: systemd, Python 3.11, CA certificates) and keeps it as a tar file
under ``/var/cache/outpost-tests``, named by a hash of everything that goes into it; each
test unpacks its own copy into ``tmp_path``. A lock makes parallel first runs build it
once.

Commands run in the root through ``unshare --mount`` then ``chroot``: ``/proc``, ``/dev``
and the pip cache are mounted in a mount namespace of that one command, so they vanish
with it, even when the test is killed. ``remove_root`` is the finalizer's second line of
defence for anything that was mounted outside one.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from debian import ensure_programs

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# minbase has apt, passwd (useradd), util-linux (runuser), coreutils, findutils.
INCLUDE = ("systemd", "python3", "ca-certificates")
CACHE = Path("/var/cache/outpost-tests")
BUILD_DEADLINE_S = 900.0
# Inside the root: no host variables (the host's pip settings name host paths).
ROOT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
}
# invoke-rc.d asks this before a package's postinst starts its daemon: 101 = "not
# here". Without it, installing mosquitto in the root would start one on the host's
# network, outliving the test (the convention of Debian's chroot builders).
POLICY_RC_D = "#!/bin/sh\n# No daemons in a test root (invoke-rc.d(8)).\nexit 101\n"
CA_DIR = Path("/usr/local/share/ca-certificates")
# ``DebianRoot.boot``: a unit that runs the test's script once the system is up, then
# powers off, within its own time limit so that the container always stops.
BOOT_SCRIPT = "/root/boot-script.sh"
BOOT_RUNNER = "/root/boot-runner.sh"
BOOT_LOG = "/root/boot.log"
BOOT_RC = "/root/boot.rc"
BOOT_UNIT = "outpost-test-boot.service"
BOOT_UNIT_TEXT = f"""[Unit]
Description=The test's script, then power off
After=multi-user.target

[Service]
Type=oneshot
TimeoutStartSec={{timeout_s}}
ExecStart=/bin/sh {BOOT_RUNNER}
ExecStopPost=/bin/systemctl poweroff --no-block
"""


@dataclass
class Done:
    """What a command in the root did."""

    returncode: int
    output: str  # stdout and stderr, interleaved as they came


class DebianRoot:
    """An unpacked Debian root at ``path``; ``run`` runs a shell command in it as root."""

    def __init__(self, path: Path, pip_cache: Path) -> None:
        self.path = path
        self.pip_cache = pip_cache

    def run(self, script: str, *, timeout_s: float = 600.0, isolated: bool = False) -> Done:
        """``sh -c script`` in the root, with /proc, /dev and the pip cache mounted for it.

        ``isolated``: in a network namespace of its own (only a loopback, so daemons bind
        their fixed ports beside any on the host) and a PID namespace, whose end kills
        every process the script left running."""
        root = shlex.quote(str(self.path))
        cache = shlex.quote(str(self.pip_cache))
        mounts = (
            f"mount -t proc proc {root}/proc && mount --bind /dev {root}/dev && "
            f"mkdir -p {root}/root/.cache/pip && mount --bind {cache} {root}/root/.cache/pip"
        )
        inner = f"exec chroot {root} /bin/sh -c {shlex.quote(script)}"
        unshare = ["unshare", "--mount", "--propagation", "private"]
        if isolated:
            unshare += ["--net", "--pid", "--fork", "--kill-child"]
            mounts = f"ip link set lo up && {mounts}"
        done = subprocess.run(
            [*unshare, "sh", "-c", f"{mounts} && {inner}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout_s,
            env=ROOT_ENV,
        )
        return Done(done.returncode, done.stdout)

    def boot(self, script: str, *, timeout_s: float) -> Done:
        """Boot the root with systemd as PID 1 (``systemd-nspawn -b``, a network of its
        own with only a loopback), run ``script`` as a unit once the system is up, and
        power off: the script's output and exit status."""
        nspawn = ensure_programs(
            ["systemd-nspawn"], ["systemd-container"], "booting the Debian root"
        )["systemd-nspawn"]
        self.file(BOOT_SCRIPT).write_text(script)
        self.file(BOOT_RUNNER).write_text(
            f"sh {BOOT_SCRIPT} >{BOOT_LOG} 2>&1\necho $? >{BOOT_RC}\n"
            "systemctl poweroff --no-block\n"
        )
        unit = self.file(f"/etc/systemd/system/{BOOT_UNIT}")
        unit.write_text(BOOT_UNIT_TEXT.format(timeout_s=int(timeout_s)))
        wants = self.file(f"/etc/systemd/system/multi-user.target.wants/{BOOT_UNIT}")
        wants.symlink_to(f"/etc/systemd/system/{BOOT_UNIT}")
        self.file(BOOT_RC).unlink(missing_ok=True)
        # A name of its own: nspawn keeps per-machine state under /run by name, and two
        # tests may boot at once.
        machine = f"outpost-test-{uuid.uuid4().hex[:12]}"
        cmd = [nspawn, "-D", str(self.path), f"--machine={machine}", "--quiet"]
        cmd += ["--register=no", "--keep-unit"]
        cmd += ["--private-network", "--boot", "--console=pipe"]
        container = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            console, _ = container.communicate(timeout=timeout_s + 60)
        except subprocess.TimeoutExpired:
            container.terminate()  # nspawn halts the container in order
            try:
                console, _ = container.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                container.kill()
                console, _ = container.communicate()
        finally:
            wants.unlink()
            unit.unlink()
        log = self.file(BOOT_LOG)
        output = log.read_text() if log.exists() else console.decode(errors="replace")
        rc = self.file(BOOT_RC)
        return Done(int(rc.read_text()) if rc.exists() else -1, output)

    def ok(self, script: str, *, timeout_s: float = 600.0) -> str:
        """``run``, failing the test with the output if the command fails."""
        done = self.run(script, timeout_s=timeout_s)
        if done.returncode != 0:
            pytest.fail(f"in the Debian root, `{script}` exited {done.returncode}:\n{done.output}")
        return done.output

    def file(self, path: str) -> Path:
        """The host path of ``path`` inside the root."""
        return self.path / path.lstrip("/")

    def ids(self, name: str, database: str = "passwd") -> int | None:
        """The uid (``passwd``) or gid (``group``) of ``name`` in the root, or None."""
        for line in self.file(f"/etc/{database}").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == name:
                return int(fields[2])
        return None


def _architecture() -> str:
    done = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True)
    return done.stdout.strip() or os.uname().machine


def _key() -> str:
    recipe = f"{SUITE} {MIRROR} minbase {','.join(INCLUDE)} {POLICY_RC_D} {_architecture()}"
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def cached_root_tar() -> Path:
    """The tar of a pristine root; built (debootstrap) on the first run on this machine."""
    tools = ensure_programs(["debootstrap"], ["debootstrap"], "the install.sh end-to-end test")
    CACHE.mkdir(parents=True, exist_ok=True)
    tar = CACHE / f"debian-{SUITE}-{_key()}.tar"
    with open(CACHE / "debian-root.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a parallel run may be building it right now
        if not tar.exists():
            _build(tar, tools["debootstrap"])
    return tar


def _build(tar: Path, debootstrap: str) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="root-", dir=CACHE))
    try:
        root = scratch / "root"
        cmd = [debootstrap, "--variant=minbase", f"--include={','.join(INCLUDE)}"]
        done = subprocess.run(
            [*cmd, SUITE, str(root), MIRROR],
            capture_output=True,
            text=True,
            timeout=BUILD_DEADLINE_S,
        )
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
            pytest.fail(f"debootstrap exited {done.returncode}:\n{tail}", pytrace=False)
        policy = root / "usr/sbin/policy-rc.d"
        policy.write_text(POLICY_RC_D)
        policy.chmod(0o755)
        shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
        (root / "var/cache/apt/archives/partial").mkdir(parents=True)
        partial = scratch / "root.tar"
        subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True)
        partial.rename(tar)  # whole or absent: a killed build leaves no half tar
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def unpack_root(tmp_path: Path) -> DebianRoot:
    """A fresh root in ``tmp_path``, with the host's DNS and CA certificates (a machine
    behind a TLS-inspecting egress needs its CA for PyPI)."""
    ensure_programs(
        ["unshare", "chroot", "ip"], ["util-linux", "coreutils", "iproute2"], "the Debian root"
    )
    tar = cached_root_tar()
    path = tmp_path / "root"
    path.mkdir()
    subprocess.run(["tar", "-C", str(path), "-xf", str(tar)], check=True)
    shutil.copyfile("/etc/resolv.conf", path / "etc/resolv.conf", follow_symlinks=True)
    pip_cache = CACHE / "pip"
    pip_cache.mkdir(parents=True, exist_ok=True)
    root = DebianRoot(path, pip_cache)
    extra = sorted(CA_DIR.glob("*.crt")) if CA_DIR.is_dir() else []
    for cert in extra:
        shutil.copyfile(cert, root.file(str(CA_DIR / cert.name)))
    if extra:
        root.ok("update-ca-certificates >/dev/null")
    return root


def _mounted_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    return sorted((p for p in points if p.startswith(prefix)), reverse=True)


def remove_root(root: DebianRoot) -> None:
    """Unmount whatever is still mounted in the root, deepest first; then delete it (a
    few hundred MB), but never through a mount that would not go (a bound /dev)."""
    for point in _mounted_under(root.path):
        subprocess.run(["umount", "-l", point], check=False)
    if not _mounted_under(root.path):
        shutil.rmtree(root.path, ignore_errors=True)
