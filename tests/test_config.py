"""Settings: halo.toml / [tool.halo] in pyproject.toml, then HALO_* variables, then arguments."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import halo_nb
from halo_nb.config import ConfigError, Settings, as_dict, find_file_settings, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("HALO_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_any_source(tmp_path: Path) -> None:
    settings = load_settings(start=tmp_path)
    assert settings == Settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 4281
    assert settings.max_body_bytes == 64 * 1024 * 1024
    assert settings.cross_trace_correlation is True


def test_halo_toml_sets_every_kind_of_value(tmp_path: Path) -> None:
    write(tmp_path / "halo.toml", """
        host = "0.0.0.0"
        port = 5000
        storage_path = "/var/halo"
        persist = false
        max_retention_days = 7.5
        durability = "sync"
        max_store_bytes = 1_073_741_824
        max_body_bytes = 1_048_576
        max_buffered_bytes = 4_194_304
        max_connections = 32
        request_timeout_seconds = 2.5
        max_attributes_per_span = 64
        max_snapshot_bytes = 1_000_000
        analysis_depth = 5
        cross_trace_correlation = false
        min_traces_for_systemic_analysis = 3
        model = "none"
        model_seed = 7
    """.replace("\n        ", "\n"))
    settings = load_settings(start=tmp_path)
    assert as_dict(settings) == {
        "host": "0.0.0.0", "port": 5000, "storage_path": "/var/halo", "persist": False,
        "max_retention_days": 7.5, "durability": "sync", "max_store_bytes": 1_073_741_824,
        "max_body_bytes": 1_048_576, "max_buffered_bytes": 4_194_304, "max_connections": 32,
        "request_timeout_seconds": 2.5,
        "max_attributes_per_span": 64, "max_snapshot_bytes": 1_000_000, "analysis_depth": 5,
        "cross_trace_correlation": False, "min_traces_for_systemic_analysis": 3,
        "model": "none", "model_seed": 7,
    }


def test_halo_toml_may_use_a_halo_table(tmp_path: Path) -> None:
    write(tmp_path / "halo.toml", "[halo]\nport = 4999\nanalysis_depth = 2\n")
    settings = load_settings(start=tmp_path)
    assert (settings.port, settings.analysis_depth) == (4999, 2)


def test_tool_halo_table_in_pyproject(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml",
          '[project]\nname = "agent"\n\n[tool.halo]\nport = 4400\nmodel = "none"\n')
    settings = load_settings(start=tmp_path)
    assert (settings.port, settings.model) == (4400, "none")
    assert find_file_settings(tmp_path)[1] == tmp_path / "pyproject.toml"


def test_pyproject_without_tool_halo_is_ignored(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "agent"\n[tool.ruff]\nline-length = 90\n')
    assert load_settings(start=tmp_path) == Settings()


def test_halo_toml_wins_over_pyproject_in_the_same_folder(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool.halo]\nport = 4400\n")
    write(tmp_path / "halo.toml", "port = 4500\n")
    assert load_settings(start=tmp_path).port == 4500


def test_file_is_found_from_a_subfolder(tmp_path: Path) -> None:
    write(tmp_path / "halo.toml", "port = 4600\n")
    notebooks = tmp_path / "notebooks" / "deep"
    notebooks.mkdir(parents=True)
    assert load_settings(start=notebooks).port == 4600


def test_working_directory_is_the_default_start(tmp_path: Path) -> None:
    write(tmp_path / "halo.toml", "analysis_depth = 9\n")
    assert load_settings().analysis_depth == 9


def test_relative_storage_path_resolves_against_the_files_folder(tmp_path: Path) -> None:
    project = tmp_path / "project"
    write(project / "halo.toml", 'storage_path = "traces/data"\n')
    sub = project / "notebooks"
    sub.mkdir()
    settings = load_settings(start=sub)
    assert settings.storage_path == project / "traces" / "data"
    assert settings.storage_path.is_absolute()


def test_relative_storage_path_in_pyproject_resolves_against_its_folder(tmp_path: Path) -> None:
    write(tmp_path / "repo" / "pyproject.toml", '[tool.halo]\nstorage_path = ".halo"\n')
    assert load_settings(start=tmp_path / "repo").storage_path == tmp_path / "repo" / ".halo"


def test_absolute_and_home_storage_paths_are_kept(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "halo.toml", f'storage_path = "{tmp_path / "abs"}"\n')
    assert load_settings(start=tmp_path).storage_path == tmp_path / "abs"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    write(tmp_path / "halo.toml", 'storage_path = "~/halo-data"\n')
    assert load_settings(start=tmp_path).storage_path == tmp_path / "home" / "halo-data"


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "halo.toml", "port = 4700\nanalysis_depth = 2\npersist = true\n")
    monkeypatch.setenv("HALO_PORT", "4701")
    monkeypatch.setenv("HALO_PERSIST", "off")
    monkeypatch.setenv("HALO_MAX_BODY_BYTES", "2_000_000")
    monkeypatch.setenv("HALO_MAX_RETENTION_DAYS", "0.5")
    monkeypatch.setenv("HALO_CROSS_TRACE_CORRELATION", "No")
    settings = load_settings(start=tmp_path)
    assert settings.port == 4701
    assert settings.analysis_depth == 2  # from the file, not overridden
    assert settings.persist is False
    assert settings.max_body_bytes == 2_000_000
    assert settings.max_retention_days == 0.5
    assert settings.cross_trace_correlation is False


def test_environment_storage_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HALO_STORAGE_PATH", str(tmp_path / "from-env"))
    assert load_settings(start=tmp_path).storage_path == tmp_path / "from-env"


def test_arguments_override_environment_and_file(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "halo.toml", "port = 4800\nmodel = \"smollm2\"\n")
    monkeypatch.setenv("HALO_PORT", "4801")
    monkeypatch.setenv("HALO_MODEL", "none")
    settings = load_settings(start=tmp_path, port=4802, analysis_depth=4)
    assert (settings.port, settings.model, settings.analysis_depth) == (4802, "none", 4)


def test_none_arguments_leave_values_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HALO_PORT", "4900")
    assert load_settings(start=tmp_path, port=None).port == 4900


def test_replace_changes_only_what_is_given() -> None:
    base = Settings(port=5001, model="none")
    changed = base.replace(analysis_depth=6)
    assert (changed.port, changed.model, changed.analysis_depth) == (5001, "none", 6)
    assert base.analysis_depth == 3
    with pytest.raises(ConfigError, match="port"):
        base.replace(port=70000)


@pytest.mark.parametrize(("text", "key"), [
    ('port = "high"', "port"),
    ("port = 70000", "port"),
    ("port = -1", "port"),
    ("port = 4281.5", "port"),
    ("port = true", "port"),
    ('persist = "sometimes"', "persist"),
    ("max_retention_days = 0", "max_retention_days"),
    ('max_retention_days = "a week"', "max_retention_days"),
    ("max_retention_days = true", "max_retention_days"),
    ("max_body_bytes = 0", "max_body_bytes"),
    ("analysis_depth = 0", "analysis_depth"),
    ("min_traces_for_systemic_analysis = 0", "min_traces_for_systemic_analysis"),
    ("cross_trace_correlation = 1.5", "cross_trace_correlation"),
    ("storage_path = 3", "storage_path"),
    ('storage_path = ""', "storage_path"),
    ('durability = "always"', "durability"),
    ("max_store_bytes = -1", "max_store_bytes"),
    ("request_timeout_seconds = 0", "request_timeout_seconds"),
    ("max_attributes_per_span = 0", "max_attributes_per_span"),
    ("max_connections = 0", "max_connections"),
    ("max_buffered_bytes = 1024", "max_buffered_bytes"),
    ("max_buffered_bytes = -1", "max_buffered_bytes"),
    ("max_snapshot_bytes = 0", "max_snapshot_bytes"),
    ("model = 5", "model"),
    ('host = ""', "host"),
])
def test_invalid_file_values_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    write(tmp_path / "halo.toml", text + "\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(start=tmp_path)
    assert str(caught.value).startswith(f"{key}:")


@pytest.mark.parametrize(("variable", "value", "key"), [
    ("HALO_PORT", "eighty", "port"),
    ("HALO_PORT", "99999", "port"),
    ("HALO_PERSIST", "maybe", "persist"),
    ("HALO_ANALYSIS_DEPTH", "-2", "analysis_depth"),
    ("HALO_MAX_RETENTION_DAYS", "forever", "max_retention_days"),
])
def test_invalid_environment_values_name_the_key_and_variable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str,
        key: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(start=tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{key}:")
    if "expected" in message:
        assert variable in message


def test_invalid_file_value_message_names_the_file(tmp_path: Path) -> None:
    source = write(tmp_path / "halo.toml", 'port = "high"\n')
    with pytest.raises(ConfigError, match="port: expected an integer") as caught:
        load_settings(start=tmp_path)
    assert str(source) in str(caught.value)


def test_invalid_argument_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="^analysis_depth:"):
        load_settings(start=tmp_path, analysis_depth="deep")
    with pytest.raises(ConfigError, match="^port:"):
        load_settings(start=tmp_path, port=65536)


def test_unknown_keys_are_rejected(tmp_path: Path) -> None:
    source = write(tmp_path / "halo.toml", "port = 4281\ncolour = \"blue\"\n")
    with pytest.raises(ConfigError, match="colour: unknown setting") as caught:
        load_settings(start=tmp_path)
    assert str(source) in str(caught.value)
    (tmp_path / "halo.toml").unlink()
    with pytest.raises(ConfigError, match="^prot: unknown setting"):
        load_settings(start=tmp_path, prot=1)


def test_unknown_key_in_tool_halo_is_rejected(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool.halo]\nretention = 3\n")
    with pytest.raises(ConfigError, match="retention: unknown setting"):
        load_settings(start=tmp_path)


def test_tool_halo_must_be_a_table(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool]\nhalo = "on"\n')
    with pytest.raises(ConfigError, match=r"tool\.halo"):
        load_settings(start=tmp_path)


def test_unknown_halo_environment_variables_are_ignored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HALO_SOMETHING_ELSE", "1")
    assert load_settings(start=tmp_path) == Settings()


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    source = write(tmp_path / "halo.toml", "port = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML") as caught:
        load_settings(start=tmp_path)
    assert str(source) in str(caught.value)


def test_configure_goes_through_the_same_rules(halo_runtime: Path) -> None:
    settings = halo_nb.configure(analysis_depth="7", persist="false")
    assert settings.analysis_depth == 7 and settings.persist is False
    assert halo_nb.settings() is settings
    with pytest.raises(ConfigError, match="^port:"):
        halo_nb.configure(port="x")
    assert halo_nb.settings() is settings  # a rejected change leaves the settings as they were


def test_runtime_reads_the_working_directorys_file(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from halo_nb import runtime

    write(tmp_path / "halo.toml", 'storage_path = "data"\nmin_traces_for_systemic_analysis = 4\n')
    monkeypatch.setenv("HALO_MODEL", "none")
    runtime.reset()
    try:
        settings = halo_nb.settings()
        assert settings.storage_path == tmp_path / "data"
        assert settings.min_traces_for_systemic_analysis == 4
        assert settings.model == "none"
    finally:
        runtime.reset()


def test_every_setting_a_running_part_reads_at_start_restarts_it():
    """Each setting is in at most one restart group, and the groups name real settings."""
    from dataclasses import fields

    from halo_nb.config import COLLECTOR_SETTINGS, STORE_SETTINGS, Settings

    names = {f.name for f in fields(Settings)}
    assert set(STORE_SETTINGS) <= names and set(COLLECTOR_SETTINGS) <= names
    assert not set(STORE_SETTINGS) & set(COLLECTOR_SETTINGS)
    base = Settings()
    assert base.replace(durability="sync").differs(base, STORE_SETTINGS)
    assert not base.replace(analysis_depth=5).differs(base, STORE_SETTINGS + COLLECTOR_SETTINGS)
