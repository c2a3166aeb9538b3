"""One settings object, read from halo.toml or [tool.halo] in pyproject.toml,
then HALO_* environment variables, then explicit arguments (last wins)."""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A setting has an invalid value; the message names the key."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 4281
    storage_path: Path = Path(".halo/data")
    persist: bool = True
    max_retention_days: float = 30.0
    # "async": the collector answers 200 once spans are in memory and writes them within
    # 0.25 s; "sync": it answers 200 only after they are written and fsynced.
    durability: str = "async"
    # Ceiling of the in-memory store (bytes); past it appends are refused (the collector
    # answers 503 with Retry-After). 0: half of this machine's physical memory.
    max_store_bytes: int = 0
    max_body_bytes: int = 64 * 1024 * 1024
    # Request bodies held at once across all connections, beyond each one's first MiB
    # (bytes); past it a request is answered 503 with Retry-After before the rest of its
    # body is read. 0: four times max_body_bytes.
    max_buffered_bytes: int = 0
    # Connections served at once; past it an idle keep-alive connection is closed to make
    # room, or, when none is idle, the new connection is answered 503.
    max_connections: int = 256
    # A request's line, headers and body must all arrive within this many seconds of its
    # first byte (OTLP exporters give up on an export after 10 s by default).
    request_timeout_seconds: float = 10.0
    # Spans with more attributes are rejected (OTLP partial success), never truncated.
    max_attributes_per_span: int = 1000
    # Largest snapshot file import reads (bytes).
    max_snapshot_bytes: int = 256 * 1024 * 1024
    analysis_depth: int = 3
    cross_trace_correlation: bool = True
    min_traces_for_systemic_analysis: int = 10
    # "smollm2" (the bundled GGUF), a path to a .gguf file, "openai:<base url>", or "none".
    model: str = "smollm2"
    model_seed: int = 42

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port: must be 0..65535 (0 picks a free port), got {self.port!r}")
        _check_positive("max_body_bytes", self.max_body_bytes)
        _check_positive("max_attributes_per_span", self.max_attributes_per_span)
        _check_positive("max_connections", self.max_connections)
        if self.max_buffered_bytes and self.max_buffered_bytes < self.max_body_bytes:
            raise ConfigError(f"max_buffered_bytes: must be 0 (four times max_body_bytes) or "
                              f">= max_body_bytes ({self.max_body_bytes}), else a body of "
                              f"the largest size is never accepted; got "
                              f"{self.max_buffered_bytes!r}")
        _check_positive("max_snapshot_bytes", self.max_snapshot_bytes)
        if not 0 < self.request_timeout_seconds <= 3600:
            raise ConfigError("request_timeout_seconds: must be > 0 and <= 3600, "
                              f"got {self.request_timeout_seconds!r}")
        _check_positive("analysis_depth", self.analysis_depth)
        _check_positive("min_traces_for_systemic_analysis", self.min_traces_for_systemic_analysis)
        if self.durability not in ("async", "sync"):
            raise ConfigError(f"durability: must be \"async\" or \"sync\", got "
                              f"{self.durability!r}")
        if self.max_store_bytes < 0:
            raise ConfigError(f"max_store_bytes: must be >= 0 (0: half of physical memory), "
                              f"got {self.max_store_bytes!r}")
        if not self.max_retention_days > 0:
            raise ConfigError(f"max_retention_days: must be > 0, got {self.max_retention_days!r}")
        if not self.host:
            raise ConfigError("host: must not be empty")

    def replace(self, **changes: Any) -> Settings:
        return load_settings(base=self, **changes)

    def differs(self, other: Settings, names: tuple[str, ...]) -> bool:
        """Whether any of the settings ``names`` has another value in ``other``."""
        return any(getattr(self, name) != getattr(other, name) for name in names)


# Settings a running part reads only when it starts: changing one restarts that part.
STORE_SETTINGS = ("storage_path", "persist", "max_retention_days", "durability",
                  "max_store_bytes")
COLLECTOR_SETTINGS = ("host", "port", "max_body_bytes", "max_buffered_bytes", "max_connections",
                      "request_timeout_seconds", "max_attributes_per_span")


def store_memory_ceiling(settings: Settings) -> int:
    """``max_store_bytes`` in bytes, with 0 resolved to half of physical memory."""
    if settings.max_store_bytes:
        return settings.max_store_bytes
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def _check_positive(key: str, value: int) -> None:
    if value < 1:
        raise ConfigError(f"{key}: must be >= 1, got {value!r}")


_FIELDS = {f.name: f for f in fields(Settings)}
# Each setting's type is its default's (a Path subclass counts as Path).
_TYPES = {f.name: Path if isinstance(f.default, Path) else type(f.default)
          for f in fields(Settings)}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(key: str, value: Any, source: str | None = None) -> Any:
    """``value`` as the type of setting ``key``; errors name the key (and ``source``)."""
    try:
        return _coerce_value(key, value)
    except ConfigError as exc:
        if source is None:
            raise
        raise ConfigError(f"{exc} ({source})") from None


def _coerce_value(key: str, value: Any) -> Any:
    kind = _TYPES[key]
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if kind is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        try:
            return int(str(value).replace("_", ""), 10) if isinstance(value, str) else int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
    if kind is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if kind is Path:
        if not isinstance(value, (str, os.PathLike)):
            raise ConfigError(f"{key}: expected a path, got {value!r}")
        if not os.fspath(value).strip():
            raise ConfigError(f"{key}: must not be empty (\".\" means this folder)")
        return Path(value).expanduser()
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def find_file_settings(start: Path | None = None) -> tuple[dict[str, Any], Path | None]:
    """Settings from the nearest halo.toml, else [tool.halo] of the nearest pyproject.toml,
    searching from ``start`` (default: the working directory) upwards."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        halo_toml = folder / "halo.toml"
        if halo_toml.is_file():
            return _read_toml(halo_toml), halo_toml
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            table = _read_toml(pyproject).get("tool", {}).get("halo")
            if table is not None:
                if not isinstance(table, dict):
                    raise ConfigError(f"tool.halo: must be a table in {pyproject}")
                return table, pyproject
    return {}, None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return data.get("halo", data) if path.name == "halo.toml" else data


def load_settings(base: Settings | None = None, start: Path | None = None,
                  **overrides: Any) -> Settings:
    """File, then environment, then ``overrides``. With ``base``, only overrides apply."""
    values: dict[str, Any] = {}
    if base is not None:
        values = {f: getattr(base, f) for f in _FIELDS}
    else:
        file_values, source = find_file_settings(start)
        for key, value in file_values.items():
            if key not in _FIELDS:
                raise ConfigError(f"{key}: unknown setting in {source}")
            values[key] = _coerce(key, value, f"in {source}")
        if source is not None and "storage_path" in file_values:
            path = values["storage_path"]
            values["storage_path"] = path if path.is_absolute() else source.parent / path
        for key in _FIELDS:
            env = os.environ.get(f"HALO_{key.upper()}")
            if env is not None:
                values[key] = _coerce(key, env, f"from HALO_{key.upper()}")
    for key, value in overrides.items():
        if key not in _FIELDS:
            raise ConfigError(f"{key}: unknown setting")
        if value is not None:
            values[key] = _coerce(key, value)
    return Settings(**values)


def as_dict(settings: Settings) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v)
            for k, v in dataclasses.asdict(settings).items()}


# What ``halo init`` writes above each group of settings, in Settings' field order.
_TOML_COMMENTS = {
    "host": "Where the collector listens for OTLP/HTTP (POST /v1/traces). Loopback keeps\n"
            "traces on this machine; port 0 picks a free port.",
    "storage_path": "Where spans are kept (Parquet files), whether they are kept on disk at\n"
                    "all, how many days a trace is kept after its newest span arrived,\n"
                    "whether 200 waits until spans are fsynced (\"sync\") or not (\"async\":\n"
                    "written within 0.25 s), and the in-memory ceiling in bytes (0: half\n"
                    "of physical memory).",
    "max_body_bytes": "Limits on what the collector accepts: the largest request body after\n"
                      "decompression (bytes), the bodies held at once across connections\n"
                      "beyond each one's first MiB (bytes; 0: four times the largest body;\n"
                      "past it 503), the connections\n"
                      "served at once, the seconds a request may take to arrive, the\n"
                      "attributes a span may carry (more are rejected, never truncated), and\n"
                      "the largest snapshot file import reads (bytes).",
    "analysis_depth": "Analysis: how many span layers the recursive walk decomposes, whether\n"
                      "findings are correlated across traces, and from how many traces\n"
                      "systemic analysis starts.",
    "model": "The model that phrases hypotheses: \"smollm2\" (bundled, runs on CPU), a path\n"
             "to a .gguf file, \"openai:<base url>\" (a local OpenAI-compatible server), or\n"
             "\"none\". It never decides what is true.",
}


def settings_toml(settings: Settings) -> str:
    """A commented halo.toml holding every setting of ``settings`` (what ``halo init`` writes)."""
    lines = ["# halo.toml: settings for halo_nb (the notebook API and the `halo` command).",
             "# Every key is optional; HALO_<KEY> environment variables and explicit arguments win",
             "# over this file. Relative paths are relative to this file's folder."]
    for name in _FIELDS:
        comment = _TOML_COMMENTS.get(name)
        if comment is not None:
            lines += ["", *(f"# {line}" for line in comment.splitlines())]
        lines.append(f"{name} = {_toml_value(getattr(settings, name))}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))
