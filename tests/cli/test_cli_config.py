"""Settings resolution (file < environment < flags), typos, and the generated reference."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import Settings
from gateway.config_doc import field_docs, settings_markdown, toml_template
from gateway.config_file import resolve_settings
from gateway.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
OUTPOST = Path(sys.executable).parent / "outpost"


def _outpost(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OUTPOST, *map(str, args)], capture_output=True, text=True, timeout=60, env=env
    )


def test_docs_configuration_md_is_the_generated_reference() -> None:
    written = (REPO / "docs" / "configuration.md").read_text()
    assert written == settings_markdown(), (
        "docs/configuration.md is out of date: run `outpost config --markdown > docs/configuration.md`"
    )


def test_every_setting_has_a_docstring_and_a_row() -> None:
    docs = field_docs()
    for name in Settings.__dataclass_fields__:
        assert docs.get(name), f"Settings.{name} has no docstring"
        assert f"| `{name}` |" in settings_markdown()


def test_the_template_is_valid_toml_that_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "outpost.toml").write_text(toml_template())
    resolved = resolve_settings(tmp_path, environ={"HOME": str(tmp_path)})
    assert set(resolved.origins.values()) <= {
        "default",
        "derived from host and port",
        "default (XDG_DATA_HOME/outpost/<app folder name>)",
    }


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    (tmp_path / "outpost.toml").write_text(
        'port = 4001\nhost = "0.0.0.0"\nlog_level = "debug"\ncommit_interval_ms = 5\n'
        '[env]\nGREETING = "hi"\n'
    )
    environ = {"OUTPOST_PORT": "4002", "OUTPOST_LOG_LEVEL": "WARNING", "HOME": str(tmp_path)}
    resolved = resolve_settings(tmp_path, environ=environ, flags={"port": 4003, "host": None})
    s = resolved.settings
    assert (s.port, s.host, s.log_level) == (4003, "0.0.0.0", "warning")
    assert s.commit_interval_ms == 5.0 and isinstance(s.commit_interval_ms, float)
    assert s.env == {"GREETING": "hi"}
    assert s.site_url == "http://127.0.0.1:4003"
    assert resolved.origins["port"] == "--port"
    assert resolved.origins["log_level"] == "OUTPOST_LOG_LEVEL"
    assert resolved.origins["host"] == f"{tmp_path / 'outpost.toml'}:2"


def test_data_dir_default_is_outside_the_app_and_relative_paths_follow_the_file(
    tmp_path: Path,
) -> None:
    app = tmp_path / "myapp"
    app.mkdir()
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg")}
    assert resolve_settings(app, environ=env).settings.data_dir == str(
        tmp_path / "xdg" / "outpost" / "myapp"
    )
    (app / "outpost.toml").write_text('data_dir = "state"\n')
    assert resolve_settings(app, environ=env).settings.data_dir == str(app / "state")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("port = 1\nprot = 2\n", ":2: unknown setting 'prot' (did you mean 'port'?)"),
        ('port = "80"\n', ":1: port must be an integer, got '80' (a string)"),
        ("reader_threads = 1.5\n", ":1: reader_threads must be an integer"),
        ("port = 70000\n", ":1: port must be between 0 and 65535"),
        ('log_level = "loud"\n', ":1: log_level must be one of debug, info, warning, error"),
        ("[env]\nA = 1\n", ":1: env must be a table of strings"),
        ("port = \n", ": not valid TOML: Invalid value (at line 1, column 8)"),
    ],
)
def test_a_bad_file_names_the_file_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "outpost.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        resolve_settings(tmp_path, environ={})
    assert str(caught.value).startswith(f"{path}{expected}")


def test_a_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match="^OUTPOST_QUERY_BUDGET_MS: query_budget_ms must be a number"
    ):
        resolve_settings(tmp_path, environ={"OUTPOST_QUERY_BUDGET_MS": "fast"})
    resolved = resolve_settings(tmp_path, environ={"OUTPOST_PROT": "1", "OUTPOST_SOAK": "1"})
    assert resolved.warnings == (
        "OUTPOST_PROT is not a setting (did you mean OUTPOST_PORT?); ignored",
    )


def test_a_typo_in_outpost_toml_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "outpost.toml").write_text('# settings\nhost = "0.0.0.0"\nprot = 8080\n')
    for command in (["config", tmp_path], ["serve", tmp_path], ["data", "--app", tmp_path]):
        done = _outpost(*command)
        assert done.returncode == 2, done
        assert done.stderr == (
            f"outpost: {tmp_path / 'outpost.toml'}:3: unknown setting 'prot' (did you mean 'port'?)\n"
        )
        assert done.stdout == ""


def test_precedence_through_the_command(tmp_path: Path) -> None:
    (tmp_path / "outpost.toml").write_text(
        "port = 4001\nreader_threads = 3\nquery_budget_ms = 100\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "OUTPOST_PORT": "4002",
        "OUTPOST_READER_THREADS": "4",
    }
    done = _outpost("config", tmp_path, "--port", "4003", env=env)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" = ", 1) for line in done.stdout.splitlines())
    assert lines["port"] == "4003  # --port"
    assert lines["reader_threads"] == "4  # OUTPOST_READER_THREADS"
    assert lines["query_budget_ms"] == f"100.0  # {tmp_path / 'outpost.toml'}:3"
    assert lines["mutation_budget_ms"] == "250.0  # default"


def test_a_missing_config_file_or_bad_flag_is_exit_2(tmp_path: Path) -> None:
    done = _outpost("config", tmp_path, "--config", tmp_path / "nope.toml")
    assert done.returncode == 2 and "nope.toml: cannot read" in done.stderr
    done = _outpost("config", tmp_path, "--port", "eighty")
    assert done.returncode == 2 and "invalid int value: 'eighty'" in done.stderr
    assert "Traceback" not in done.stderr
