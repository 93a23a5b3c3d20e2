"""Resolve ``Settings`` once: defaults < ``outpost.toml`` < environment < flags.

The only place that reads ``OUTPOST_*`` variables (from the mapping it is given).
Every value is type-checked against the ``Settings`` field it sets, and a bad one
raises ``ConfigError`` with one line naming where it came from (file and line,
variable or flag), so a typo never becomes a traceback or a silent default.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import urlsplit, urlunsplit

from gateway.config import Settings
from gateway.errors import ConfigError

CONFIG_FILENAME = "outpost.toml"
ENV_PREFIX = "OUTPOST_"
LOG_LEVELS = ("debug", "info", "warning", "error")
MQTT_BROKERS = ("managed", "external", "off")
MQTT_URL_SCHEMES = ("mqtt", "mqtts")

# Paths: relative to the file that sets them, or to the working directory.
_PATHS = ("data_dir", "tls_cert", "tls_key")
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_TYPES: dict[str, Any] = get_type_hints(Settings)
_NAMES = tuple(f.name for f in fields(Settings))


@dataclass(frozen=True)
class Resolved:
    """The settings, where each value came from, and warnings worth printing."""

    settings: Settings
    origins: Mapping[str, str]
    warnings: tuple[str, ...] = ()


def resolve_settings(
    app_dir: Path,
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Resolved:
    """Merge the sources for the app in ``app_dir``; ``config_file`` overrides the
    default ``<app_dir>/outpost.toml`` (which may be absent)."""
    values: dict[str, Any] = {}
    origins: dict[str, str] = dict.fromkeys(_NAMES, "default")
    path = config_file if config_file is not None else app_dir / CONFIG_FILENAME
    if config_file is not None or path.is_file():
        _merge(values, origins, _read_file(path))
    env_values, warnings = _read_environ(environ or {})
    _merge(values, origins, env_values)
    _merge(values, origins, _read_flags(flags or {}))
    _derive(values, origins, app_dir, environ or {})
    if "log_level" in values:
        values["log_level"] = values["log_level"].lower()
    for name, value in values.items():
        _check_rules(name, value, origins[name])
    return Resolved(Settings(**values), origins, tuple(warnings))


def _merge(
    values: dict[str, Any], origins: dict[str, str], found: dict[str, tuple[Any, str]]
) -> None:
    for name, (value, origin) in found.items():
        values[name] = value
        origins[name] = origin


# --- sources ----------------------------------------------------------------------------


def _read_file(path: Path) -> dict[str, tuple[Any, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the configuration file ({exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    found: dict[str, tuple[Any, str]] = {}
    for key, value in data.items():
        where = _where(path, text, key)
        if key not in _TYPES:
            raise ConfigError(f"{where}: unknown setting {key!r}{_suggest(key)}")
        value = _checked(key, value, where)
        if key in _PATHS and value:
            value = str((path.parent / value).resolve())
        found[key] = (value, where)
    return found


def _where(path: Path, text: str, key: str) -> str:
    """``file:line`` of the line that sets (or opens the table of) ``key``."""
    pattern = re.compile(rf"^\s*(\[\s*)?[\"']?{re.escape(key)}[\"']?\s*[=\]]")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return f"{path}:{number}"
    return str(path)


def _read_environ(environ: Mapping[str, str]) -> tuple[dict[str, tuple[Any, str]], list[str]]:
    found: dict[str, tuple[Any, str]] = {}
    warnings: list[str] = []
    for variable, text in environ.items():
        if not variable.startswith(ENV_PREFIX):
            continue
        name = variable[len(ENV_PREFIX) :].lower()
        if name not in _TYPES:
            near = difflib.get_close_matches(name, _NAMES, n=1)
            if near:  # other OUTPOST_* variables exist (test knobs); warn on near misses only
                hint = f"{ENV_PREFIX}{near[0].upper()}"
                warnings.append(f"{variable} is not a setting (did you mean {hint}?); ignored")
            continue
        value = _parsed(name, text, variable)
        if name in _PATHS and value:
            value = str(Path(value).resolve())
        found[name] = (value, variable)
    return found, warnings


def _read_flags(flags: Mapping[str, Any]) -> dict[str, tuple[Any, str]]:
    found: dict[str, tuple[Any, str]] = {}
    for name, value in flags.items():
        if value is None:
            continue
        flag = "--" + name.replace("_", "-")
        if name == "data_dir":
            value = str(Path(value).resolve())
        found[name] = (_checked(name, value, flag), flag)
    return found


def _derive(
    values: dict[str, Any], origins: dict[str, str], app_dir: Path, environ: Mapping[str, str]
) -> None:
    """Defaults that depend on other values: the data directory and the site URL."""
    if not values.get("data_dir"):
        base = environ.get("XDG_DATA_HOME") or str(
            Path(environ.get("HOME") or Path.home()) / ".local" / "share"
        )
        name = app_dir.resolve().name or "app"
        values["data_dir"] = str(Path(base) / "outpost" / name)
        origins["data_dir"] = "default (XDG_DATA_HOME/outpost/<app folder name>)"
    if "site_url" not in values:
        host = values.get("host", Settings.host)
        scheme = "https" if values.get("tls") else "http"
        values["site_url"] = f"{scheme}://{url_host(host)}:{values.get('port', Settings.port)}"
        origins["site_url"] = "derived from host and port"


def url_host(host: str) -> str:
    """The host part of a URL that reaches a server bound to ``host``."""
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


# --- types and rules --------------------------------------------------------------------


def _checked(name: str, value: Any, where: str) -> Any:
    """``value`` as the field's type, or a ConfigError naming ``where``."""
    kind = _TYPES[name]
    if kind is bool and isinstance(value, bool):
        return value
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is str and isinstance(value, str):
        return value
    if kind not in (int, float, str) and _is_str_table(value):
        return dict(value)
    raise ConfigError(f"{where}: {name} must be {_describe(kind)}, got {_show(value)}")


def _parsed(name: str, text: str, where: str) -> Any:
    """An environment variable's text as the field's type."""
    kind = _TYPES[name]
    try:
        if kind is bool:
            return _BOOLEANS[text.strip().lower()]
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind is str:
            return text
        return _checked(name, json.loads(text), where)
    except (ValueError, KeyError):
        raise ConfigError(f"{where}: {name} must be {_describe(kind)}, got {text!r}") from None


def _is_str_table(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def _describe(kind: Any) -> str:
    names = {
        bool: "a boolean (true or false)",
        int: "an integer",
        float: "a number",
        str: "a string",
    }
    return names.get(kind, 'a table of strings (NAME = "value")')


def _show(value: Any) -> str:
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    what = kind.get(type(value), "a table" if isinstance(value, dict) else type(value).__name__)
    return f"{value!r} ({what})"


def _suggest(key: str) -> str:
    near = difflib.get_close_matches(key, _NAMES, n=1)
    return f" (did you mean {near[0]!r}?)" if near else f"; known settings: {', '.join(_NAMES)}"


_POSITIVE = (
    "max_batch_mutations",
    "reader_threads",
    "query_budget_ms",
    "mutation_budget_ms",
    "action_budget_s",
    "max_request_bytes_in_flight",
    "max_upload_bytes",
    "request_header_timeout_s",
    "request_body_timeout_s",
    "max_socket_query_bytes",
    "max_total_query_bytes",
    "shutdown_timeout_s",
    "disk_check_interval_s",
)
_NON_NEGATIVE = (
    "commit_interval_ms",
    "retention_interval_s",
    "gc_young_threshold",
    "max_connections",
    "disk_reserve_bytes",
)


def _check_rules(name: str, value: Any, where: str) -> None:
    problem = None
    if name == "port" and not 0 <= value <= 65535:
        problem = "must be between 0 and 65535"
    elif name == "mqtt_port" and not 1 <= value <= 65535:
        problem = "must be between 1 and 65535"
    elif name == "mqtt_tls_port" and not 0 <= value <= 65535:
        problem = "must be between 0 (no TLS listener) and 65535"
    elif name == "log_level" and value not in LOG_LEVELS:
        problem = f"must be one of {', '.join(LOG_LEVELS)}"
    elif name == "mqtt_broker" and value not in MQTT_BROKERS:
        problem = f"must be one of {', '.join(MQTT_BROKERS)}"
    elif name == "mqtt_url" and value:
        problem = _mqtt_url_problem(value)
    elif name in _POSITIVE and value <= 0:
        problem = "must be greater than 0"
    elif name in _NON_NEGATIVE and value < 0:
        problem = "must not be negative"
    if problem:
        shown = redact_url(value) if name == "mqtt_url" else value
        raise ConfigError(f"{where}: {name} {problem}, got {shown!r}")


def _mqtt_url_problem(url: str) -> str | None:
    """What is wrong with an external broker's URL, or None."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unclosed '[' of an IPv6 address
        return f"is not a URL ({exc})"
    if parts.scheme not in MQTT_URL_SCHEMES:
        found = f"'{parts.scheme}://'" if parts.scheme else "no scheme"
        return f"must start with mqtt:// or mqtts:// (TLS), not {found}"
    if not parts.hostname:
        return f"must name the broker's host ({parts.scheme}://user:password@host:port)"
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked for it
    except ValueError:
        return "has a port that is not a number between 0 and 65535"
    return None


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and printouts)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<not a URL>"  # may still hold a password: show none of it
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
