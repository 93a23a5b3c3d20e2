"""``outpost mqtt config [APP_DIR] [--dir DIR]``: the broker files for a system-wide Mosquitto.

The managed broker runs on files the gateway writes at each start (``broker_files``).
A machine that runs Debian's own ``mosquitto`` service instead gets the same config,
as a ``conf.d`` drop-in, and the same ACL from this command; the gateway then connects
to it as an external broker (``mqtt_broker = "external"``).

The drop-in leaves out what the stock ``/etc/mosquitto/mosquitto.conf`` already sets
(``pid_file``, ``persistence``, ``persistence_location``, ``log_dest``) and the options
that only make sense for a broker the gateway runs (``user``, ``log_type``, ``log_timestamp``,
``persistence_file``): Mosquitto refuses some options given twice, and the stock file's
choices (the journal-friendly log file, ``/var/lib/mosquitto``) are the service's. The
rest is kept as the managed broker has it: no anonymous access, persistence saved after
every 1000 changes, queues bounded by bytes, ``max_packet_size``.

Printed: the drop-in and the ACL, each after a ``# file: NAME`` line. Never printed: the
password file, which holds the devices' hashes; ``--dir`` writes it (0600) beside the
others, with a bridge password of its own whose URL goes to ``DIR/bridge-url`` (0600).
With ``mqtt_tls_port`` the drop-in has a TLS listener too, and ``--dir`` copies the
gateway's certificate and key there (``server.crt``, ``server.key``: the local CA's,
issued if needed, or ``tls_cert``/``tls_key``), where the ``mosquitto`` user can be given
them without reading the gateway's data directory.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.cli.common import settings_for
from gateway.config import Settings
from gateway.mqtt.broker_files import (
    ACL_FILE_NAME,
    BRIDGE_USER,
    PASSWORD_FILE_NAME,
    BrokerSpec,
    BrokerTls,
    acl_text,
    config_text,
)
from gateway.mqtt.broker_pid import broker_directory
from gateway.mqtt.passwords import (
    generate_password,
    hash_password,
    read_password_file,
    write_password_file,
)
from gateway.mqtt.routes import check_routes
from gateway.mqtt.supervisor import route_patterns
from gateway.private_files import files_lock, write_private_file
from gateway.runtime.loader import load_app
from gateway.store.datadir import make_private_dir
from gateway.tls import cert_files

DROP_IN_NAME = "outpost.conf"
BRIDGE_URL_NAME = "bridge-url"
TLS_CERT_NAME = "server.crt"
TLS_KEY_NAME = "server.key"
DEFAULT_FILES_DIR = Path("/etc/mosquitto/outpost")
# Set by Debian's stock mosquitto.conf, or meaningful only for the managed broker.
STOCK_OPTIONS = frozenset(
    {"pid_file", "persistence", "persistence_location", "persistence_file", "log_dest"}
)
MANAGED_ONLY_OPTIONS = frozenset({"user", "log_timestamp", "log_type"})
# A placeholder hash: the drop-in's text does not depend on the users.
_ANY_HASH = hash_password("")


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    mqtt = commands.add_parser("mqtt", help="MQTT broker files for a system-wide Mosquitto")
    actions = mqtt.add_subparsers(dest="action", metavar="ACTION", required=True)
    config = actions.add_parser(
        "config",
        parents=[common],
        help="print the broker config (a conf.d drop-in) and ACL for the app's routes",
        description=(
            "Print the Mosquitto config drop-in and ACL the managed broker would use, for "
            "Debian's own mosquitto service. With --dir, write them and the password file."
        ),
    )
    config.add_argument("app_dir", metavar="APP_DIR", nargs="?", default=".", type=Path)
    config.add_argument(
        "--dir",
        type=Path,
        metavar="DIR",
        help=f"write {DROP_IN_NAME}, {ACL_FILE_NAME} and {PASSWORD_FILE_NAME} here "
        f"(the config names them here; default {DEFAULT_FILES_DIR})",
    )
    config.set_defaults(handler=print_config)


def print_config(args: argparse.Namespace) -> int:
    settings = settings_for(args, args.app_dir)
    files_dir = (args.dir or DEFAULT_FILES_DIR).absolute()
    ingest, publish = _patterns(args.app_dir)
    texts = {
        DROP_IN_NAME: drop_in_text(settings, files_dir),
        ACL_FILE_NAME: acl_text(BRIDGE_USER, ingest, publish),
    }
    for name, text in texts.items():
        print(f"# file: {name}")
        print(text)
    if args.dir is not None:
        _write(files_dir, texts, settings)
    _advise(files_dir, written=args.dir is not None, tls=settings.mqtt_tls_port > 0)
    return 0


def drop_in_text(settings: Settings, files_dir: Path) -> str:
    """The managed broker's config without what the stock config sets, naming files in
    ``files_dir``."""
    tls = None
    if settings.mqtt_tls_port:
        tls = BrokerTls(settings.mqtt_tls_port, files_dir / TLS_CERT_NAME, files_dir / TLS_KEY_NAME)
    spec = BrokerSpec(
        settings.mqtt_host, settings.mqtt_port, Path(settings.data_dir), BRIDGE_USER,
        {BRIDGE_USER: _ANY_HASH}, tls=tls,
    )  # fmt: skip
    moved = {
        "password_file": f"password_file {files_dir / PASSWORD_FILE_NAME}",
        "acl_file": f"acl_file {files_dir / ACL_FILE_NAME}",
    }
    lines = [f"# Install as /etc/mosquitto/conf.d/{DROP_IN_NAME}; made by `outpost mqtt config`."]
    lines += _without(config_text(spec).splitlines()[1:], STOCK_OPTIONS | MANAGED_ONLY_OPTIONS)
    return "\n".join(moved.get(line.split(" ", 1)[0], line) for line in lines) + "\n"


def _without(lines: list[str], options: frozenset[str]) -> list[str]:
    """``lines`` without the ``options``, and without comments that explained only them:
    a run of comments is kept once an option after it (before the next run) is kept."""
    kept: list[str] = []
    pending: list[str] = []
    previous = ""
    for line in lines:
        if line.startswith("#"):
            pending = [*pending, line] if previous.startswith("#") else [line]
        elif not line:
            pending = []
            kept.append(line)
        elif line.split(" ", 1)[0] not in options:
            kept += [*pending, line]
            pending = []
        previous = line
    return kept


def _patterns(app_dir: Path) -> tuple[list[str], list[str]]:
    app = load_app(app_dir)
    try:
        check_routes(app.mqtt, app)
        return route_patterns(app.mqtt)
    finally:
        app.unload()


def _write(files_dir: Path, texts: dict[str, str], settings: Settings) -> None:
    """The drop-in, the ACL, and the password file (devices + a bridge entry), all 0600."""
    make_private_dir(files_dir)
    registry = broker_directory(Path(settings.data_dir)) / PASSWORD_FILE_NAME
    users: dict[str, str] = {}
    if registry.parent.is_dir():  # no devices yet: nothing to lock, nothing to create
        with files_lock(registry.parent):
            users = read_password_file(registry)
    users.pop(BRIDGE_USER, None)  # the managed broker's, which changes at each start
    ours = read_password_file(files_dir / PASSWORD_FILE_NAME).get(BRIDGE_USER)
    if ours is None:  # first time: a bridge password of this broker's own
        password = generate_password()
        ours = hash_password(password)
        url = f"mqtt://{BRIDGE_USER}:{password}@127.0.0.1:{settings.mqtt_port}\n"
        write_private_file(files_dir / BRIDGE_URL_NAME, url)
    if settings.mqtt_tls_port:  # before the drop-in that names them
        source = cert_files(settings)
        write_private_file(files_dir / TLS_CERT_NAME, source.cert.read_text())
        write_private_file(files_dir / TLS_KEY_NAME, source.key.read_text())
    for name, text in texts.items():
        write_private_file(files_dir / name, text)
    write_password_file(files_dir / PASSWORD_FILE_NAME, {**users, BRIDGE_USER: ours})


def _advise(files_dir: Path, *, written: bool, tls: bool) -> None:
    steps = [
        f"install {DROP_IN_NAME} as /etc/mosquitto/conf.d/{DROP_IN_NAME}",
        f"`chown -R mosquitto: {files_dir}` (the service reads the files as mosquitto)",
        f'set mqtt_broker = "external" and mqtt_url = the URL in {files_dir / BRIDGE_URL_NAME}',
        "after `outpost device add/remove`, run this again with --dir, chown again and "
        "`systemctl reload mosquitto`",
    ]
    if tls:
        steps.append(
            f"the TLS listener's {TLS_CERT_NAME} and {TLS_KEY_NAME} are copies: run this again "
            "after the gateway issues a new certificate (a new name, or a month before its end)"
        )
    if not written:
        steps.insert(
            0, f"write the files with --dir {files_dir} (the password file is not printed)"
        )
    print("outpost: for Debian's mosquitto service:", file=sys.stderr)
    for step in steps:
        print(f"  - {step}", file=sys.stderr)
