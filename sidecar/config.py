"""Load and validate the sidecar config: YAML (``servers:`` list) or ``mcpServers`` JSON.

Pure: the only I/O is reading the file in :func:`load_config`. Every problem found is reported,
one line each, as ``{source}: {where}: {message}``; ``where`` names a server by index and name
(``servers[1] (db).url``) or, for ``mcpServers`` JSON, by key (``mcpServers.db.url``).
"""

from __future__ import annotations

import datetime
import difflib
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .redact import printable, redact

__all__ = [
    "ConfigError",
    "Criticality",
    "Duration",
    "GatewayConfig",
    "HealthConfig",
    "PositiveDuration",
    "Protocol",
    "ReconnectConfig",
    "ServerConfig",
    "ServerGatewayConfig",
    "SidecarConfig",
    "SidecarSettings",
    "Transport",
    "load_config",
    "parse_config",
    "parse_duration",
]

Loc = tuple[str | int, ...]
_Located = list[tuple[str, str]]  # (where, message), already formatted
Transport = Literal["stdio", "streamable-http", "sse"]
Criticality = Literal["critical", "optional"]
_MIN_SECRET_LEN = 4  # shorter values would redact noise ("1", "on") everywhere
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)
_HEADER_VALUE = re.compile(r"[\x20-\x7e\t]*")


class ConfigError(Exception):
    """The config cannot be used; ``problems`` holds one line per problem."""

    def __init__(self, problems: Iterable[str]) -> None:
        # A key or name from the file holding a newline, a carriage return or a bidi override
        # must not split, overwrite or reorder its line.
        self.problems: list[str] = [printable(problem) for problem in problems]
        super().__init__("\n".join(self.problems))


def _shown(value: object) -> str:
    """A key or name from the file as a message shows it: a 10 KB name would bury the message."""
    text = str(value)
    if not text.strip():  # an empty or blank key would leave a gap where the field's name belongs
        return repr(text)
    return text if len(text) <= 80 else text[:77] + "..."


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """Seconds from ``250ms``, ``5s``, ``1.5s``, ``1m``, ``1h`` or a plain number of seconds."""
    if isinstance(value, bool):  # bool is an int; `timeout: yes` is a mistake, not 1 second
        raise ValueError("must be a duration like 250ms, 5s, 1m or a number of seconds")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int of 400 digits
            raise ValueError("must be a finite duration") from None
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value.strip().lstrip("-").strip())):
        seconds = float(match[1]) * _UNIT_SECONDS[match[2]]
        seconds = -seconds if value.strip().startswith("-") else seconds
    else:
        raise ValueError("must be a duration like 250ms, 5s, 1m or a number of seconds")
    if not math.isfinite(seconds):
        raise ValueError("must be a finite duration")
    if seconds < 0:
        raise ValueError("must not be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds (float), written as ``250ms``, ``5s``, ``1m``, ``1h`` or a number; never negative."""
PositiveDuration = Annotated[Duration, Field(gt=0)]


def _scalar_to_str(value: Any) -> Any:
    # YAML turns `PORT: 8080` and `DEBUG: true` into int/bool; env, args and headers want the text.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | float) else value


def _date_to_str(value: Any) -> Any:
    # Unquoted `protocol: 2026-07-28` is a date to YAML.
    return value.isoformat() if isinstance(value, datetime.date) else value


_Str = Annotated[str, BeforeValidator(_scalar_to_str)]
Protocol = Annotated[Literal["auto", "legacy", "2026-07-28"], BeforeValidator(_date_to_str)]
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_EXPOSED_CHARS = re.compile(r"[A-Za-z0-9_.-]*")  # what MCP clients and LLM APIs accept in a tool name


def _rules(problems: list[tuple[str, str]]) -> None:
    """Raise cross-field problems as one pydantic error; ``_translate`` splits it per field."""
    if problems:
        summary = "; ".join(f"{field}: {message}" for field, message in problems)
        raise PydanticCustomError("config_rule", "{summary}", {"summary": summary, "problems": problems})


def _check_listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()):  # "²".isdigit() is True
        raise ValueError("must be host:port, e.g. 127.0.0.1:9464")
    if int(port) > 65535:
        raise ValueError("port must be 0-65535")
    return value


def _check_env_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise ValueError("must be an environment variable name")
    return value


_Listen = Annotated[str, AfterValidator(_check_listen)]


# The two cross-field rules run on validated models and, in parse_config, on the raw dicts too:
# pydantic skips "after" validators when any field failed, and a user should see every problem at once.
def _transport_rules(transport: Any, has: Callable[[str], bool]) -> list[tuple[str, str]]:
    if transport == "stdio":
        needed, forbidden = "command", ("url", "headers")
    elif transport in ("streamable-http", "sse"):
        needed, forbidden = "url", ("command", "args", "env", "cwd")
    else:
        return []
    problems = [] if has(needed) else [(needed, f"{transport} transport needs '{needed}'")]
    return problems + [(key, f"{transport} transport does not take '{key}'") for key in forbidden if has(key)]


def _duplicate_rules(names: list[Any]) -> list[tuple[str, str]]:
    first: dict[Any, int] = {}
    problems = []
    for i, name in enumerate(names):
        if not isinstance(name, str):  # a list or mapping as a name is reported as such, and unhashable
            continue
        if name in first:
            message = f"duplicate server name '{_shown(name)}' (first at servers[{first[name]}])"
            problems.append((f"servers.{i}.name", message))
        first.setdefault(name, i)
    return problems


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HealthConfig(_Model):
    """Health probe: every ``interval`` (0 = no probes), ``failure_threshold`` failures in a row = lost."""

    interval: Duration = 5.0
    timeout: PositiveDuration = 2.0
    failure_threshold: int = Field(3, ge=1)


class ReconnectConfig(_Model):
    """Exponential backoff with jitter (1 = full jitter); ``max_attempts`` 0 retries forever."""

    initial_backoff: PositiveDuration = 1.0
    max_backoff: PositiveDuration = 60.0
    multiplier: float = Field(2.0, ge=1, allow_inf_nan=False)
    jitter: float = Field(1.0, ge=0, le=1, allow_inf_nan=False)
    max_attempts: int = Field(0, ge=0)
    on_give_up: Literal["drop", "keep"] = "drop"

    @model_validator(mode="after")
    def _backoff_order(self) -> ReconnectConfig:
        if self.max_backoff < self.initial_backoff:
            _rules([("max_backoff", "must not be less than initial_backoff")])
        return self


_MIN_STDIO_GRACE = 30.0  # 7 SDK servers took 12.7 s to start beside 4 CPU hogs on 2 cores


def _check_exposed_chars(value: str) -> str:
    if not _EXPOSED_CHARS.fullmatch(value):
        raise ValueError("may only use letters, digits, _ . -")
    return value


_ExposedText = Annotated[str, AfterValidator(_check_exposed_chars)]


class ServerGatewayConfig(_Model):
    """How one server shows through the gateway: its name prefix, which of its tools and prompts
    (globs on its own names; exclude wins), or not at all."""

    prefix: _ExposedText | None = None  # None: "{name}{separator}"; "" exposes names unchanged
    include: tuple[Annotated[str, StringConstraints(min_length=1)], ...] = ()  # empty: everything
    exclude: tuple[Annotated[str, StringConstraints(min_length=1)], ...] = ()
    enabled: bool = True


class ServerConfig(_Model):
    """One MCP server: how to reach it, how much it matters, how to watch and reconnect it."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_NAME_PATTERN)]
    transport: Transport
    command: str | None = None
    args: tuple[_Str, ...] = ()
    env: dict[str, _Str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, _Str] = Field(default_factory=dict)
    criticality: Criticality = "optional"
    connect_timeout: PositiveDuration = 10.0
    # How much longer a connect attempt may go on, reported not ready, before it is abandoned:
    # None = the default of `effective_connect_grace`; 0 = none.
    connect_grace: Duration | None = None
    call_timeout: PositiveDuration = 60.0
    protocol: Protocol = "auto"
    health: HealthConfig = Field(default_factory=HealthConfig)
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)
    gateway: ServerGatewayConfig = Field(default_factory=ServerGatewayConfig)

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str | None) -> str | None:
        # Never echo the URL: it may carry a token in its userinfo or query.
        if url is None:
            return url
        try:  # urlsplit's own errors quote the netloc, password included
            parts = urlsplit(url)
        except ValueError:
            raise ValueError("must be an http:// or https:// URL with a host") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ValueError("has an invalid port") from None
        return url

    @property
    def effective_connect_grace(self) -> float:
        """Seconds a connect attempt goes on past its timeout. A stdio server's slow start (a busy
        host, a cold import) is waited for, since killing it only repeats the work: by default
        twice the timeout, and at least 30 s, because start-up work does not shrink with the
        timeout a user picks. HTTP and SSE default to none: the remote process is not ours,
        and a new attempt throws nothing away."""
        if self.connect_grace is not None:
            return self.connect_grace
        return max(_MIN_STDIO_GRACE, 2 * self.connect_timeout) if self.transport == "stdio" else 0.0

    @model_validator(mode="after")
    def _transport_fields(self) -> ServerConfig:
        _rules(_transport_rules(self.transport, lambda key: bool(getattr(self, key))))
        return self

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        # Caught here, not by the HTTP client at connect time: its error quotes the value, and a
        # token split by "\r\n" no longer matches the secret the redactor looks for.
        for name, value in headers.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"'{_shown(name)}' is not a valid header name")
            if not _HEADER_VALUE.fullmatch(value):
                raise ValueError(f"the value of '{name}' must be printable ASCII, without line breaks")
        return headers


def _check_origin(value: str) -> str:
    parts = urlsplit(value.removesuffix(":*"))
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query:
        raise ValueError("must be an origin like https://app.example.com, optionally with :port or :*")
    return value


def _check_host(value: str) -> str:
    if not value or "/" in value or any(c.isspace() for c in value):
        raise ValueError("must be a Host header value like example.com, example.com:8080 or example.com:*")
    return value


class GatewayConfig(_Model):
    """The MCP gateway endpoint: what active servers offer, as ``{server}{separator}{name}``."""

    listen: _Listen = "127.0.0.1:9465"
    path: str = "/mcp"
    separator: Annotated[str, Field(min_length=1), AfterValidator(_check_exposed_chars)] = "__"
    enabled: bool = True
    max_name_length: int = Field(64, ge=16, le=128)  # MCP allows 128; the big LLM APIs take 64
    token_env: Annotated[str, AfterValidator(_check_env_name)] | None = None
    # Besides loopback (127.0.0.1, localhost, [::1] on any port), which is always allowed.
    allowed_origins: tuple[Annotated[str, AfterValidator(_check_origin)], ...] = ()
    allowed_hosts: tuple[Annotated[str, AfterValidator(_check_host)], ...] = ()
    max_sessions: int = Field(1000, ge=1)  # initialize-era sessions open at once
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)

    @field_validator("path")
    @classmethod
    def _check_path(cls, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError("must start with '/'")
        return path


class SidecarSettings(_Model):
    """Process-wide settings: ops HTTP address, gateway, admin token, startup and shutdown bounds."""

    listen: _Listen = "127.0.0.1:9464"
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    admin_token_env: Annotated[str, AfterValidator(_check_env_name)] | None = None
    strict: bool = False
    startup_timeout: PositiveDuration | None = None
    shutdown_timeout: PositiveDuration = 1.5
    # Connect attempts in their handshake at once (an overdue one gives its place up): a
    # thousand at once starve the event loop that also answers /livez and /metrics.
    max_concurrent_connects: int = Field(64, ge=1)

    @model_validator(mode="after")
    def _distinct_ports(self) -> SidecarSettings:
        same = self.gateway.listen == self.listen and not self.listen.endswith(":0")
        if self.gateway.enabled and same:
            _rules([("gateway.listen", "must differ from sidecar.listen")])
        return self


class _Defaults(_Model):
    """The ``defaults:`` section; None means "not set here"."""

    criticality: Criticality | None = None
    connect_timeout: PositiveDuration | None = None
    connect_grace: Duration | None = None
    call_timeout: PositiveDuration | None = None
    protocol: Protocol | None = None
    health: HealthConfig | None = None
    reconnect: ReconnectConfig | None = None


class SidecarConfig(_Model):
    """A validated config: settings, servers (unique names) and the file it came from."""

    sidecar: SidecarSettings = Field(default_factory=SidecarSettings)
    servers: tuple[ServerConfig, ...] = Field(min_length=1)
    source: str = "<config>"
    _substituted: frozenset[str] = PrivateAttr(default_factory=frozenset)

    @model_validator(mode="after")
    def _unique_names(self) -> SidecarConfig:
        _rules(_duplicate_rules([server.name for server in self.servers]))
        return self

    @model_validator(mode="after")
    def _unambiguous_prefixes(self) -> SidecarConfig:
        # "a__b" + "__" + "c" reads as server "a", tool "b__c" too: routing uses an exact map, but
        # people and the collision report would not know which server a name belongs to.
        gateway = self.sidecar.gateway
        message = f"contains the gateway separator '{gateway.separator}'; rename it or set its gateway.prefix"
        ambiguous = [
            i
            for i, server in enumerate(self.servers)
            if server.gateway.enabled and server.gateway.prefix is None and gateway.separator in server.name
        ]
        if gateway.enabled:
            _rules([(f"servers.{i}.name", message) for i in ambiguous])
        return self

    @property
    def servers_by_name(self) -> dict[str, ServerConfig]:
        """Servers keyed by name, in config order."""
        return {server.name: server for server in self.servers}

    def secrets(self) -> frozenset[str]:
        """Values to redact from all output: env and header values, URL passwords, ``${VAR}`` values."""
        found = set(self._substituted)
        for server in self.servers:
            found.update(server.env.values())
            for value in server.headers.values():
                found.add(value)
                found.add(value.partition(" ")[2])  # the token of "Bearer <token>" leaks on its own too
            if server.url and (password := urlsplit(server.url).password):
                found.add(password)
        return frozenset(v for v in found if len(v) >= _MIN_SECRET_LEN)


# --- loading -------------------------------------------------------------------------------------

_VAR = re.compile(r"\$\$|\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{")
_FOREIGN_TYPES = {
    "stdio": "stdio",
    "sse": "sse",
    **dict.fromkeys(("http", "streamable-http", "streamablehttp", "streamable_http"), "streamable-http"),
}
_FOREIGN_KEYS = (
    "command",
    "args",
    "env",
    "cwd",
    "url",
    "headers",
    "criticality",
    "connect_timeout",
    "connect_grace",
    "call_timeout",
    "protocol",
    "health",
    "reconnect",
    "gateway",
)
_MAX_DEPTH = 32  # a real config nests 5 deep; JSON and YAML parsers recurse, and so do we
_MAX_VALUES = 200_000  # about 10,000 servers; YAML aliases can make a small file expand without end
_KEYS_AT: dict[str | None, type[BaseModel]] = {
    "sidecar": SidecarSettings,
    "defaults": _Defaults,
    "servers": ServerConfig,
    "gateway": GatewayConfig,
    "health": HealthConfig,
    "reconnect": ReconnectConfig,
}
_TOP_KEYS = ("sidecar", "defaults", "servers")
_PLAIN = {  # pydantic error type -> short message (pydantic's own say "Input should be ...")
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "string_too_short": "must not be empty",
    "too_short": "must not be empty",
    "string_pattern_mismatch": "must start with a letter or digit and use only letters, digits, _ . -",
}


class _Expander:
    """Expands ``${VAR}``, ``${VAR:-default}`` and ``$$`` in every string; records values and misses."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.substituted: set[str] = set()
        self.problems: list[tuple[Loc, str]] = []

    def walk(self, node: Any, loc: Loc) -> Any:
        if isinstance(node, str):
            return self._expand(node, loc) if "$" in node else node
        if isinstance(node, dict):
            return {key: self.walk(value, (*loc, key)) for key, value in node.items()}
        if isinstance(node, list):
            return [self.walk(value, (*loc, i)) for i, value in enumerate(node)]
        return node

    def _expand(self, text: str, loc: Loc) -> str:
        def replace(match: re.Match[str]) -> str:
            name, default = match[1], match[2]
            if match[0] == "$$":
                return "$"
            if name is None:
                self.problems.append((loc, "malformed ${...}; use ${VAR}, ${VAR:-default}, or $$ for '$'"))
                return ""
            value = self.environ.get(name)
            if value:
                self.substituted.add(value)
                return value
            if default is not None:  # shell semantics: the default also covers a set-but-empty variable
                return default
            if value is None:
                self.problems.append((loc, f"environment variable {name} is not set"))
            return ""

        return _VAR.sub(replace, text)


def _load_data(text: str, source: str) -> Any:
    if not text.strip():
        raise ConfigError([f"{source}: file is empty"])
    json_error = None
    data: Any = None
    try:
        if text.lstrip().startswith("{"):
            try:  # strict JSON first: its errors are clearer for a .json file, and PyYAML chokes on tabs
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                json_error = exc
        if data is None:
            try:
                data = yaml.safe_load(text)
            except (IndexError, AttributeError, TypeError, KeyError):
                # PyYAML's constructors index and match what a tag gives them without checking:
                # `!!int ''` raises IndexError, `!!timestamp x` AttributeError. Not a bug of ours.
                raise ValueError("a tagged value PyYAML cannot construct") from None
    except yaml.YAMLError as exc:
        if json_error is not None:
            where = f"line {json_error.lineno}, column {json_error.colno}"
            raise ConfigError([f"{source}: {where}: invalid JSON: {json_error.msg}"]) from None
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        if isinstance(exc, yaml.reader.ReaderError):  # a NUL or other control character
            where = f"character {exc.position + 1}: "
        # Only the problem, never str(exc): that quotes the offending line, which may hold a secret.
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or "parse error"
        raise ConfigError([f"{source}: {where}invalid YAML: {problem}"]) from None
    except RecursionError:
        raise ConfigError([f"{source}: nested more than {_MAX_DEPTH} levels deep"]) from None
    except ValueError as exc:  # the parsers' own int(), float() and date() calls
        kind = "JSON" if json_error is None and text.lstrip().startswith("{") else "YAML"
        raise ConfigError([f"{source}: invalid {kind}: {_unreadable(str(exc))}"]) from None
    if data is None:
        raise ConfigError([f"{source}: file is empty"])
    _check_size(data, source)
    return data


def _unreadable(reason: str) -> str:
    """Why a value could not be constructed; int() and float() quote the value, so only datetime's
    reasons (month 13, day 31 of a 30-day month: no value in them) are passed on."""
    if "digits" in reason:
        return "a number has too many digits"
    if "must be in" in reason or "out of range" in reason:
        return f"an impossible date or time ({reason})"
    return "a value does not fit its type tag"


def _check_size(data: Any, source: str) -> None:
    """Refuse documents nested deeper than any config needs, or expanding past ``_MAX_VALUES``
    values (aliases count each time they are used), before anything recurses into them."""
    if not isinstance(data, dict):
        return
    seen = 0
    for key, value in data.items():
        stack = [(value, 1)]
        while stack:
            node, depth = stack.pop()
            seen += 1
            if depth > _MAX_DEPTH:
                raise ConfigError([f"{source}: {_shown(key)}: nested more than {_MAX_DEPTH} levels deep"])
            if seen > _MAX_VALUES:
                raise ConfigError([f"{source}: {_shown(key)}: more than {_MAX_VALUES} values"])
            if isinstance(node, dict):
                stack.extend((child, depth + 1) for child in node.values())
            elif isinstance(node, list):
                stack.extend((child, depth + 1) for child in node)


def _convert_foreign(data: dict[str, Any], key: str) -> tuple[dict[str, Any], list[str], _Located]:
    """``mcpServers`` (Claude Desktop, Cursor) or VS Code ``servers`` mapping -> our document shape."""
    doc = {k: data[k] for k in ("sidecar", "defaults") if k in data}
    servers: list[Any] = []
    labels: list[str] = []
    problems: _Located = []
    entries = data[key]
    if not isinstance(entries, dict):
        return doc, labels, [(key, "must be a mapping of server name to settings")]
    for name, entry in entries.items():
        label = f"{key}.{_shown(name)}"
        if not isinstance(entry, dict):
            problems.append((label, "must be a mapping"))
            continue
        if entry.get("disabled") is True:
            continue
        server: dict[str, Any] = {"name": str(name)}
        server.update((k, entry[k]) for k in _FOREIGN_KEYS if k in entry)
        if "url" not in server and "serverUrl" in entry:  # Windsurf spelling
            server["url"] = entry["serverUrl"]
        type_key = "type" if "type" in entry else "transport"
        kind = entry.get(type_key)
        if kind is None:
            kind = "stdio" if "command" in server else "http" if "url" in server else None
            if kind is None:
                problems.append((label, "needs 'command' (stdio) or 'url' (http, sse)"))
                continue
        if not isinstance(kind, str) or kind.lower() not in _FOREIGN_TYPES:
            problems.append((f"{label}.{type_key}", "must be one of: stdio, http, streamable-http, sse"))
            continue
        server["transport"] = _FOREIGN_TYPES[kind.lower()]
        servers.append(server)
        labels.append(label)
    doc["servers"] = servers
    return doc, labels, problems


def _label(i: int, item: Any) -> str:
    name = item.get("name") if isinstance(item, dict) else None
    return f"servers[{i}] ({_shown(name)})" if isinstance(name, str) and name else f"servers[{i}]"


def _where(loc: Loc, labels: list[str], servers_key: str) -> str:
    if len(loc) >= 2 and loc[0] == "servers" and isinstance(loc[1], int):
        head, rest = (labels[loc[1]] if loc[1] < len(labels) else f"servers[{loc[1]}]"), loc[2:]
    elif loc[:1] == ("servers",):
        head, rest = servers_key, loc[1:]
    else:
        head, rest = "", loc
    for part in rest:
        head += f"[{part}]" if isinstance(part, int) else f".{_shown(part)}" if head else _shown(part)
    return head


def _message(error: Mapping[str, Any], loc: Loc) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if loc == ("servers",) and kind in ("missing", "too_short"):
        return "at least one server is required"
    if kind == "extra_forbidden":
        parent = next((p for p in reversed(loc[:-1]) if isinstance(p, str)), None)
        known = _KEYS_AT[parent].model_fields if parent in _KEYS_AT else _TOP_KEYS
        if parent == "gateway" and loc[:1] == ("servers",):
            known = ServerGatewayConfig.model_fields
        close = difflib.get_close_matches(str(loc[-1]), [k for k in known if k != "source"], n=1)
        return f"unknown key (did you mean '{close[0]}'?)" if close else "unknown key"
    if kind == "missing":
        return "required"
    if kind == "literal_error":
        return "must be one of: " + ", ".join(re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
    if kind == "greater_than":
        return "must be positive" if ctx.get("gt") == 0 else f"must be greater than {ctx.get('gt'):g}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge'):g}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le'):g}"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind in ("value_error", "assertion_error"):
        return str(error["msg"]).split(", ", 1)[-1]
    if kind in _PLAIN:
        return _PLAIN[kind]
    msg = str(error["msg"])
    return msg[:1].lower() + msg[1:]


def _translate(exc: ValidationError, prefix: Loc = ()) -> list[tuple[Loc, str]]:
    out: list[tuple[Loc, str]] = []
    for error in exc.errors(include_url=False):
        loc = (*prefix, *error["loc"])
        if error["type"] == "config_rule":
            for field, message in error["ctx"]["problems"]:
                out.append(((*loc, *_split(field)), message))
        else:
            out.append((loc, _message(error, loc)))
    return out


def _merge(defaults: dict[str, Any], server: Any) -> Any:
    """Defaults under the server's own keys; ``health``/``reconnect`` merge key by key."""
    if not isinstance(server, dict):
        return server
    merged = dict(defaults)
    for key, value in server.items():
        base = merged.get(key)
        nested = key in ("health", "reconnect") and isinstance(base, dict) and isinstance(value, dict)
        merged[key] = {**base, **value} if nested else value
    return merged


def _normalize(data: dict[str, Any]) -> tuple[dict[str, Any], list[str], str, _Located]:
    """Our document shape, a label per server, the key servers came from, and conversion problems."""
    if isinstance(data.get("mcp"), dict) and "servers" in data["mcp"]:  # VS Code settings.json
        data = data["mcp"]
    foreign = "mcpServers" if "mcpServers" in data else None
    if foreign is None and isinstance(data.get("servers"), dict):  # VS Code .vscode/mcp.json
        foreign = "servers"
    early: _Located = []
    if foreign is not None:
        doc, labels, early = _convert_foreign(data, foreign)
    else:
        doc = dict(data)
        items = doc.get("servers")
        labels = [_label(i, item) for i, item in enumerate(items)] if isinstance(items, list) else []
        if "source" in doc:  # a field of ours, but not a key a user may set
            early.append(("source", "unknown key"))
            del doc["source"]
    doc = {k: v for k, v in doc.items() if v is not None or k not in _TOP_KEYS}  # `sidecar:` left empty
    return doc, labels, foreign or "servers", early


def _split(field: str) -> Loc:
    return tuple(int(part) if part.isdigit() else part for part in field.split("."))


def _validate(
    doc: dict[str, Any], source: str, env_problems: list[tuple[Loc, str]], skipped: bool
) -> tuple[list[tuple[Loc, str]], SidecarConfig | None]:
    """Validate an expanded document; return every problem (in document order) and the config."""
    rank = {key: i for i, key in enumerate(doc)}
    found: list[tuple[Loc, str]] = []
    defaults = doc.pop("defaults", {})  # `defaults:` left empty was dropped by _normalize; 0 or [] is wrong
    defaults_ok = not any(loc[:1] == ("defaults",) for loc, _ in env_problems)
    try:
        _Defaults.model_validate(defaults)
    except ValidationError as exc:
        found += _translate(exc, ("defaults",))
        defaults_ok = False
    servers = doc.get("servers")
    if isinstance(servers, list):
        if defaults_ok and isinstance(defaults, dict):  # a broken defaults section is reported once only
            servers = doc["servers"] = [_merge(defaults, item) for item in servers]
        for i, item in enumerate(servers):
            if isinstance(item, dict):
                rules = _transport_rules(item.get("transport"), lambda key, item=item: bool(item.get(key)))
                found += [(("servers", i, field), message) for field, message in rules]
        names = [item.get("name") if isinstance(item, dict) else None for item in servers]
        found += [(_split(field), message) for field, message in _duplicate_rules(names)]
    config = None
    try:
        config = SidecarConfig.model_validate({**doc, "source": source})
    except ValidationError as exc:
        found += _translate(exc)
    # An unset variable explains its field's bad value; pydantic counts only valid servers, and a
    # skipped mcpServers entry was reported already, so "no servers" is only said when there are none.
    explained = {loc for loc, _ in env_problems}
    if skipped or (isinstance(servers, list) and servers):
        explained.add(("servers",))
    problems = list(dict.fromkeys([*env_problems, *(p for p in found if p[0] not in explained)]))

    def position(problem: tuple[Loc, str]) -> tuple[int, int]:
        loc = problem[0]
        index = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else -1
        return (rank.get(loc[0], len(rank)) if loc else -1, index)

    return sorted(problems, key=position), config


def parse_config(text: str, source: str, environ: Mapping[str, str] | None = None) -> SidecarConfig:
    """Parse and validate config ``text``; ``source`` names it in messages. Raises :class:`ConfigError`."""
    environ = os.environ if environ is None else environ
    data = _load_data(text, source)
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: top level must be a mapping, not {type(data).__name__}"])
    doc, labels, servers_key, early = _normalize(data)
    expander = _Expander(environ)
    located, config = _validate(expander.walk(doc, ()), source, expander.problems, bool(early))
    problems = early + [(_where(loc, labels, servers_key), msg) for loc, msg in located]
    if problems or config is None:
        # Belt and braces: no message quotes a value, but mask substituted values should one slip through.
        # (Only the message: `where` is built from the raw, unexpanded file, and the path is the user's.)
        hidden = [v for v in expander.substituted if len(v) >= _MIN_SECRET_LEN]
        located_msgs = ((where, redact(msg, hidden)) for where, msg in problems)
        raise ConfigError(f"{source}: {w}: {m}" if w else f"{source}: {m}" for w, m in located_msgs)
    token_envs = (config.sidecar.admin_token_env, config.sidecar.gateway.token_env)
    tokens = {environ.get(name) for name in token_envs if name}
    config._substituted = frozenset(expander.substituted | {token for token in tokens if token})
    return config


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> SidecarConfig:
    """Read and validate the config file at ``path``. Raises :class:`ConfigError`."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8-sig") as f:  # -sig: tolerate the BOM Windows editors write
            text = f.read()
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{source}: cannot read: not UTF-8 text"]) from None
    return parse_config(text, source, environ)
