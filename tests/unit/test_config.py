"""Config loading and validation: formats, defaults, env expansion, and every error line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from sidecar.config import (
    ConfigError,
    HealthConfig,
    ReconnectConfig,
    ServerConfig,
    SidecarConfig,
    load_config,
    parse_config,
    parse_duration,
)

SRC = "x.yaml"
FS = "  - {name: fs, transport: stdio, command: node}\n"  # one valid server, to isolate other problems

CONTRACT_EXAMPLE = """\
sidecar:
  listen: 127.0.0.1:9464
  gateway: {listen: 127.0.0.1:9465, path: /mcp}
  admin_token_env: MCP_SIDECAR_TOKEN
defaults:
  criticality: optional
  connect_timeout: 10s
  health: {interval: 5s, timeout: 2s, failure_threshold: 3}
  reconnect: {initial_backoff: 1s, max_backoff: 60s, multiplier: 2, max_attempts: 0, on_give_up: drop}
servers:
  - name: filesystem
    transport: stdio
    command: node
    args: [server-filesystem/dist/index.js, /data]
    env: {LOG_LEVEL: info}
    criticality: critical
  - name: database
    transport: streamable-http
    url: http://127.0.0.1:8001/mcp
    headers: {Authorization: "Bearer ${DB_MCP_TOKEN}"}
    health: {interval: 2s}
"""
CONTRACT_ENV = {"DB_MCP_TOKEN": "db-token-0123456789", "MCP_SIDECAR_TOKEN": "admin-token-abcdef"}


def problems(text: str, environ: dict[str, str] | None = None) -> list[str]:
    """The problem lines parse_config reports for ``text`` (fails the test if it accepts it)."""
    with pytest.raises(ConfigError) as info:
        parse_config(text, SRC, environ or {})
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


# --- the happy path -----------------------------------------------------------------------------


def test_contract_example_loads() -> None:
    config = parse_config(CONTRACT_EXAMPLE, SRC, CONTRACT_ENV)
    assert config.source == SRC
    assert config.sidecar.listen == "127.0.0.1:9464"
    assert config.sidecar.gateway.listen == "127.0.0.1:9465"
    assert config.sidecar.admin_token_env == "MCP_SIDECAR_TOKEN"
    fs, db = config.servers
    assert (fs.name, fs.transport, fs.command, fs.args) == (
        "filesystem",
        "stdio",
        "node",
        ("server-filesystem/dist/index.js", "/data"),
    )
    assert fs.env == {"LOG_LEVEL": "info"}
    assert fs.criticality == "critical"
    assert (db.transport, db.url, db.criticality) == (
        "streamable-http",
        "http://127.0.0.1:8001/mcp",
        "optional",
    )
    assert db.headers == {"Authorization": "Bearer db-token-0123456789"}
    assert db.health == HealthConfig(interval=2.0, timeout=2.0, failure_threshold=3)
    assert list(config.servers_by_name) == ["filesystem", "database"]


def test_builtin_defaults() -> None:
    config = parse_config("servers:\n" + FS, SRC, {})
    server = config.servers[0]
    assert (server.criticality, server.connect_timeout, server.call_timeout, server.protocol) == (
        "optional",
        10.0,
        60.0,
        "auto",
    )
    assert server.health == HealthConfig(interval=5.0, timeout=2.0, failure_threshold=3)
    assert server.reconnect == ReconnectConfig(
        initial_backoff=1.0, max_backoff=60.0, multiplier=2.0, jitter=1.0, max_attempts=0, on_give_up="drop"
    )
    settings = config.sidecar
    assert (settings.listen, settings.admin_token_env, settings.strict) == ("127.0.0.1:9464", None, False)
    assert (settings.startup_timeout, settings.shutdown_timeout) == (None, 1.5)
    assert (settings.gateway.listen, settings.gateway.path, settings.gateway.separator) == (
        "127.0.0.1:9465",
        "/mcp",
        "__",
    )
    assert settings.gateway.enabled is True


def test_defaults_are_inherited_and_merged_key_by_key() -> None:
    text = """\
defaults:
  criticality: critical
  connect_timeout: 3s
  call_timeout: 30s
  protocol: 2026-07-28
  health: {interval: 10s, timeout: 4s, failure_threshold: 5}
  reconnect: {initial_backoff: 500ms, max_backoff: 30s, max_attempts: 7, on_give_up: keep}
servers:
  - {name: a, transport: stdio, command: x}
  - name: b
    transport: sse
    url: https://example.com/sse
    criticality: optional
    connect_timeout: 1m
    health: {interval: 2s}
    reconnect: {max_attempts: 0}
"""
    a, b = parse_config(text, SRC, {}).servers
    assert (a.criticality, a.connect_timeout, a.call_timeout, a.protocol) == (
        "critical",
        3.0,
        30.0,
        "2026-07-28",
    )
    assert a.health == HealthConfig(interval=10.0, timeout=4.0, failure_threshold=5)
    assert (a.reconnect.initial_backoff, a.reconnect.max_attempts, a.reconnect.on_give_up) == (0.5, 7, "keep")
    assert (b.criticality, b.connect_timeout, b.call_timeout) == ("optional", 60.0, 30.0)
    assert b.health == HealthConfig(interval=2.0, timeout=4.0, failure_threshold=5)  # nested merge
    assert (b.reconnect.initial_backoff, b.reconnect.max_backoff, b.reconnect.max_attempts) == (0.5, 30.0, 0)


def test_scalars_in_env_args_headers_become_strings() -> None:
    text = """\
servers:
  - {name: fs, transport: stdio, command: x, args: [-p, 8080], env: {D: true, N: 1.5}}
"""
    server = parse_config(text, SRC, {}).servers[0]
    assert server.args == ("-p", "8080")
    assert server.env == {"D": "true", "N": "1.5"}


def test_config_is_frozen() -> None:
    config = parse_config("servers:\n" + FS, SRC, {})
    with pytest.raises(ValidationError):
        config.servers[0].command = "other"  # type: ignore[misc]


def test_models_enforce_rules_when_built_directly() -> None:
    with pytest.raises(ValidationError, match="stdio transport needs 'command'"):
        ServerConfig(name="x", transport="stdio")
    with pytest.raises(ValidationError, match="duplicate server name 'x'"):
        server = ServerConfig(name="x", transport="stdio", command="y")
        SidecarConfig(servers=(server, server))
    assert (
        ServerConfig(name="x", transport="sse", url="http://h/sse", connect_timeout="250ms").connect_timeout
        == 0.25
    )


# --- durations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("250ms", 0.25),
        ("5s", 5.0),
        ("1m", 60.0),
        ("1h", 3600.0),
        ("1.5s", 1.5),
        (2, 2.0),
        (0.5, 0.5),
        ("2", 2.0),
        (" 5 s ", 5.0),
        (".5s", 0.5),
        (0, 0.0),
        ("0s", 0.0),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1s", "must not be negative"),
        (-3, "must not be negative"),
        ("5 parsecs", "must be a duration"),
        ("", "must be a duration"),
        (True, "must be a duration"),
        (None, "must be a duration"),
        ("1.2.3s", "must be a duration"),
        (float("inf"), "must be a finite duration"),
        ([5], "must be a duration"),
    ],
)
def test_parse_duration_rejects(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(value)


# --- every problem, as exact lines --------------------------------------------------------------

DURATION_HELP = "must be a duration like 250ms, 5s, 1m or a number of seconds"
NAME_HELP = "must start with a letter or digit and use only letters, digits, _ . -"

BAD_CONFIGS = [
    ("empty", "", ["x.yaml: file is empty"]),
    ("only comments", "# nothing yet\n", ["x.yaml: file is empty"]),
    (
        "yaml syntax",
        "servers:\n  - name: a\n    transport: stdio: x\n",
        ["x.yaml: line 3, column 21: invalid YAML: mapping values are not allowed here"],
    ),
    (
        "yaml indentation",
        "servers:\n  - name: a\n   transport: stdio\n",
        ["x.yaml: line 3, column 4: invalid YAML: expected <block end>, but found '<block mapping start>'"],
    ),
    (
        "json syntax",
        '{"mcpServers": {\n  "a": {"command": "x"\n}\n',
        ["x.yaml: line 4, column 1: invalid JSON: Expecting ',' delimiter"],
    ),
    ("top level list", "- a\n- b\n", ["x.yaml: top level must be a mapping, not list"]),
    ("top level scalar", "hello\n", ["x.yaml: top level must be a mapping, not str"]),
    ("no servers key", "sidecar: {strict: true}\n", ["x.yaml: servers: at least one server is required"]),
    ("empty servers", "servers: []\n", ["x.yaml: servers: at least one server is required"]),
    ("null servers", "servers:\n", ["x.yaml: servers: at least one server is required"]),
    ("servers not a list", "servers: fs\n", ["x.yaml: servers: must be a list"]),
    ("server not a mapping", "servers:\n" + FS + "  - fs\n", ["x.yaml: servers[1]: must be a mapping"]),
    (
        "unknown top-level key",
        "servers:\n" + FS + "server: []\ncolour: blue\n",
        ["x.yaml: server: unknown key (did you mean 'servers'?)", "x.yaml: colour: unknown key"],
    ),
    ("source is not a user key", "source: y.yaml\nservers:\n" + FS, ["x.yaml: source: unknown key"]),
    (
        "unknown server key",
        "servers:\n  - {name: fs, transport: stdio, command: x, conect_timeout: 5s}\n",
        ["x.yaml: servers[0] (fs).conect_timeout: unknown key (did you mean 'connect_timeout'?)"],
    ),
    (
        "unknown nested keys",
        "sidecar: {gateway: {port: 1}, colour: red}\nservers:\n"
        "  - {name: fs, transport: stdio, command: x, health: {intervall: 1s}, reconnect: {foo: 1}}\n",
        [
            "x.yaml: sidecar.gateway.port: unknown key",
            "x.yaml: sidecar.colour: unknown key",
            "x.yaml: servers[0] (fs).health.intervall: unknown key (did you mean 'interval'?)",
            "x.yaml: servers[0] (fs).reconnect.foo: unknown key",
        ],
    ),
    (
        "missing name and transport",
        "servers:\n  - {command: x}\n",
        ["x.yaml: servers[0].name: required", "x.yaml: servers[0].transport: required"],
    ),
    (
        "unknown transport",
        "servers:\n  - {name: fs, transport: websocket, url: 'http://h'}\n",
        ["x.yaml: servers[0] (fs).transport: must be one of: stdio, streamable-http, sse"],
    ),
    (
        "bad names",
        "servers:\n  - {name: 'my server', transport: stdio, command: x}\n"
        f"  - {{name: {'a' * 65}, transport: stdio, command: x}}\n"
        "  - {name: '', transport: stdio, command: x}\n",
        [
            f"x.yaml: servers[0] (my server).name: {NAME_HELP}",
            f"x.yaml: servers[1] ({'a' * 65}).name: must be at most 64 characters",
            "x.yaml: servers[2].name: must not be empty",
        ],
    ),
    (
        "duplicate names",
        "servers:\n" + FS + "  - {name: db, transport: sse, url: 'http://h'}\n" + FS,
        ["x.yaml: servers[2] (fs).name: duplicate server name 'fs' (first at servers[0])"],
    ),
    (
        "stdio without command",
        "servers:\n  - {name: fs, transport: stdio, args: [a]}\n",
        ["x.yaml: servers[0] (fs).command: stdio transport needs 'command'"],
    ),
    (
        "stdio with http keys",
        "servers:\n  - {name: fs, transport: stdio, command: x, url: 'http://h', headers: {A: b}}\n",
        [
            "x.yaml: servers[0] (fs).url: stdio transport does not take 'url'",
            "x.yaml: servers[0] (fs).headers: stdio transport does not take 'headers'",
        ],
    ),
    (
        "http without url",
        "servers:\n  - {name: db, transport: streamable-http}\n",
        ["x.yaml: servers[0] (db).url: streamable-http transport needs 'url'"],
    ),
    (
        "sse with stdio keys",
        "servers:\n  - {name: db, transport: sse, url: 'http://h', command: x, args: [a], "
        "env: {A: b}, cwd: /tmp}\n",
        [
            "x.yaml: servers[0] (db).command: sse transport does not take 'command'",
            "x.yaml: servers[0] (db).args: sse transport does not take 'args'",
            "x.yaml: servers[0] (db).env: sse transport does not take 'env'",
            "x.yaml: servers[0] (db).cwd: sse transport does not take 'cwd'",
        ],
    ),
    (
        "bad urls",
        "servers:\n  - {name: a, transport: sse, url: 'ftp://h/x'}\n"
        "  - {name: b, transport: sse, url: 'http://'}\n"
        "  - {name: c, transport: sse, url: 'localhost:8000'}\n"
        "  - {name: d, transport: sse, url: 'http://h:99999/'}\n",
        [
            "x.yaml: servers[0] (a).url: must be an http:// or https:// URL with a host",
            "x.yaml: servers[1] (b).url: must be an http:// or https:// URL with a host",
            "x.yaml: servers[2] (c).url: must be an http:// or https:// URL with a host",
            "x.yaml: servers[3] (d).url: has an invalid port",
        ],
    ),
    (
        "zero and negative timeouts",
        "servers:\n  - {name: fs, transport: stdio, command: x, connect_timeout: 0, "
        "call_timeout: -1s, health: {timeout: 0s, interval: -5}, reconnect: {initial_backoff: 0ms}}\n",
        [
            "x.yaml: servers[0] (fs).connect_timeout: must be positive",
            "x.yaml: servers[0] (fs).call_timeout: must not be negative",
            "x.yaml: servers[0] (fs).health.interval: must not be negative",
            "x.yaml: servers[0] (fs).health.timeout: must be positive",
            "x.yaml: servers[0] (fs).reconnect.initial_backoff: must be positive",
        ],
    ),
    (
        "bad duration text",
        "servers:\n  - {name: fs, transport: stdio, command: x, connect_timeout: 5 parsecs, "
        "call_timeout: true}\n",
        [
            f"x.yaml: servers[0] (fs).connect_timeout: {DURATION_HELP}",
            f"x.yaml: servers[0] (fs).call_timeout: {DURATION_HELP}",
        ],
    ),
    (
        "bad reconnect policy",
        "servers:\n  - {name: fs, transport: stdio, command: x, reconnect: {multiplier: 0.5, "
        "jitter: 2, max_attempts: -1, on_give_up: retry}, health: {failure_threshold: 0}}\n",
        [
            "x.yaml: servers[0] (fs).health.failure_threshold: must be at least 1",
            "x.yaml: servers[0] (fs).reconnect.multiplier: must be at least 1",
            "x.yaml: servers[0] (fs).reconnect.jitter: must be at most 1",
            "x.yaml: servers[0] (fs).reconnect.max_attempts: must be at least 0",
            "x.yaml: servers[0] (fs).reconnect.on_give_up: must be one of: drop, keep",
        ],
    ),
    (
        "max backoff below initial",
        "servers:\n  - {name: fs, transport: stdio, command: x, "
        "reconnect: {initial_backoff: 10s, max_backoff: 5s}}\n",
        ["x.yaml: servers[0] (fs).reconnect.max_backoff: must not be less than initial_backoff"],
    ),
    (
        "wrong types",
        "servers:\n  - {name: fs, transport: stdio, command: [node], args: a b, env: [A], "
        "criticality: high, protocol: 2025, reconnect: {max_attempts: 1.5}}\n",
        [
            "x.yaml: servers[0] (fs).command: must be a string",
            "x.yaml: servers[0] (fs).args: must be a list",
            "x.yaml: servers[0] (fs).env: must be a mapping",
            "x.yaml: servers[0] (fs).criticality: must be one of: critical, optional",
            "x.yaml: servers[0] (fs).protocol: must be one of: auto, legacy, 2026-07-28",
            "x.yaml: servers[0] (fs).reconnect.max_attempts: must be a whole number",
        ],
    ),
    (
        "bad sidecar settings",
        "sidecar:\n  listen: localhost\n  gateway: {listen: '127.0.0.1:70000', path: mcp, "
        "separator: ''}\n  admin_token_env: 1TOKEN\n  strict: maybe\n"
        "  startup_timeout: 0\n  shutdown_timeout: 0s\n"
        "servers:\n" + FS,
        [
            "x.yaml: sidecar.listen: must be host:port, e.g. 127.0.0.1:9464",
            "x.yaml: sidecar.gateway.listen: port must be 0-65535",
            "x.yaml: sidecar.gateway.path: must start with '/'",
            "x.yaml: sidecar.gateway.separator: must not be empty",
            "x.yaml: sidecar.admin_token_env: must be an environment variable name",
            "x.yaml: sidecar.strict: must be true or false",
            "x.yaml: sidecar.startup_timeout: must be positive",
            "x.yaml: sidecar.shutdown_timeout: must be positive",
        ],
    ),
    (
        "gateway on the ops port",
        "sidecar: {listen: '0.0.0.0:9000', gateway: {listen: '0.0.0.0:9000'}}\nservers:\n" + FS,
        ["x.yaml: sidecar.gateway.listen: must differ from sidecar.listen"],
    ),
    (
        "bad defaults reported once",
        "defaults:\n  connect_timeout: 0\n  health: {interval: soon}\n  colour: red\n"
        "servers:\n" + FS + "  - {name: db, transport: sse, url: 'http://h'}\n",
        [
            "x.yaml: defaults.connect_timeout: must be positive",
            "x.yaml: defaults.health.interval: " + DURATION_HELP,
            "x.yaml: defaults.colour: unknown key",
        ],
    ),
    ("defaults not a mapping", "defaults: [1]\nservers:\n" + FS, ["x.yaml: defaults: must be a mapping"]),
    (
        "transport key in defaults",
        "defaults: {transport: stdio}\nservers:\n" + FS,
        ["x.yaml: defaults.transport: unknown key"],
    ),
    (
        "missing env var",
        "servers:\n  - name: db\n    transport: streamable-http\n    url: ${DB_URL}\n"
        "    headers: {Authorization: 'Bearer ${DB_MCP_TOKEN}'}\n",
        [
            "x.yaml: servers[0] (db).url: environment variable DB_URL is not set",
            "x.yaml: servers[0] (db).headers.Authorization: environment variable DB_MCP_TOKEN is not set",
        ],
    ),
    (
        "missing env var in defaults",
        "defaults: {connect_timeout: '${T}'}\nservers:\n" + FS,
        ["x.yaml: defaults.connect_timeout: environment variable T is not set"],
    ),
    (
        "malformed reference",
        "servers:\n  - {name: fs, transport: stdio, command: x, args: ['${input:tok}', '${}']}\n",
        [
            "x.yaml: servers[0] (fs).args[0]: malformed ${...}; use ${VAR}, ${VAR:-default}, or $$ for '$'",
            "x.yaml: servers[0] (fs).args[1]: malformed ${...}; use ${VAR}, ${VAR:-default}, or $$ for '$'",
        ],
    ),
    (
        "everything at once, in file order",
        "sidecar: {listen: nope}\nservers:\n"
        "  - {name: a, transport: stdio}\n  - {name: b, transport: http, url: 'http://h'}\n  - 7\n",
        [
            "x.yaml: sidecar.listen: must be host:port, e.g. 127.0.0.1:9464",
            "x.yaml: servers[0] (a).command: stdio transport needs 'command'",
            "x.yaml: servers[1] (b).transport: must be one of: stdio, streamable-http, sse",
            "x.yaml: servers[2]: must be a mapping",
        ],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [case[1:] for case in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS]
)
def test_bad_config(text: str, expected: list[str]) -> None:
    assert problems(text) == expected


# --- files --------------------------------------------------------------------------------------


def test_load_config_from_file(tmp_path: Path) -> None:
    path = tmp_path / "sidecar.yaml"
    path.write_text(CONTRACT_EXAMPLE, encoding="utf-8")
    config = load_config(path, CONTRACT_ENV)
    assert config.source == str(path)
    assert [s.name for s in config.servers] == ["filesystem", "database"]


def test_json_trailing_comma_is_tolerated() -> None:
    # JSON that strict parsing rejects is retried as YAML, which accepts VS Code style trailing commas.
    assert parse_config('{"servers": {"a": {"command": "x",},},}', SRC, {}).servers[0].command == "x"


def test_load_json_with_bom_and_tabs(tmp_path: Path) -> None:
    path = tmp_path / "claude_desktop_config.json"
    path.write_text('\ufeff{\n\t"mcpServers": {\n\t\t"fs": {"command": "npx"}\n\t}\n}\n', encoding="utf-8")
    assert load_config(path, {}).servers[0].command == "npx"


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("missing.yaml", None, "{path}: cannot read: No such file or directory"),
        ("empty.yaml", "", "{path}: file is empty"),
        ("blank.yaml", "\n  \n", "{path}: file is empty"),
        (
            "broken.yaml",
            "servers:\n  - {name: a\n",
            "{path}: line 3, column 1: invalid YAML: expected ',' or '}', but got '<stream end>'",
        ),
        (
            "broken.json",
            '{"mcpServers": {\n  "a": {"command": "x"}\n',
            "{path}: line 3, column 1: invalid JSON: Expecting ',' delimiter",
        ),
        (
            "bad.yaml",
            "servers:\n  - {name: fs, transport: stdio, command: x, url: 'http://h'}\n",
            "{path}: servers[0] (fs).url: stdio transport does not take 'url'",
        ),
        ("latin1.yaml", b"servers: \xff\n", "{path}: cannot read: not UTF-8 text"),
    ],
)
def test_load_config_file_problems(
    tmp_path: Path, name: str, content: str | bytes | None, expected: str
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert info.value.problems == [expected.replace("{path}", str(path))]


def test_load_config_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, {})
    assert info.value.problems == [f"{tmp_path}: cannot read: Is a directory"]


# --- environment --------------------------------------------------------------------------------


def test_env_expansion() -> None:
    text = """\
servers:
  - name: fs
    transport: stdio
    command: ${CMD}
    args: ["${ARG:-fallback}", "${EMPTY:-was-empty}", "$${HOME}", "cost: $$5", "$HOME", "${env:VSCODE_STYLE}",
           "${RECURSIVE}", "${EMPTY}", "${ARG:-}", "a-${CMD}-b-${CMD}"]
    env: {TOKEN: "${TOKEN}"}
"""
    environ = {
        "CMD": "node",
        "EMPTY": "",
        "TOKEN": "t0ken-value",
        "VSCODE_STYLE": "vs",
        "RECURSIVE": "${CMD}",
    }
    server = parse_config(text, SRC, environ).servers[0]
    assert server.command == "node"
    assert server.args == (
        "fallback",
        "was-empty",
        "${HOME}",
        "cost: $5",
        "$HOME",
        "vs",
        "${CMD}",
        "",
        "",
        "a-node-b-node",
    )
    assert server.env == {"TOKEN": "t0ken-value"}


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIDECAR_TEST_CMD", "from-os-environ")
    config = parse_config("servers:\n  - {name: fs, transport: stdio, command: '${SIDECAR_TEST_CMD}'}\n", SRC)
    assert config.servers[0].command == "from-os-environ"


def test_env_values_never_appear_in_errors() -> None:
    environ = {
        "URL": "ftp://user:hunter2-secret@db.internal/x",
        "TIMEOUT": "secret-timeout-value",
        "TRANSPORT": "secret-transport-value",
        "NAME": "secret name value",
        "LISTEN": "secret-listen-value",
        "PORT": "secret-port-value",
        "ATTEMPTS": "secret-attempts-value",
    }
    text = """\
sidecar: {listen: "${LISTEN}", gateway: {listen: "h:${PORT}"}}
servers:
  - {name: "${NAME}", transport: sse, url: "${URL}", connect_timeout: "${TIMEOUT}"}
  - {name: b, transport: "${TRANSPORT}", command: x, reconnect: {max_attempts: "${ATTEMPTS}"}}
  - {name: c, transport: sse, url: "http://${MISSING}/", headers: {A: "${ALSO_MISSING}"}}
"""
    lines = problems(text, environ)
    assert len(lines) >= 8
    for value in environ.values():
        assert all(value not in line for line in lines), value
    for fragment in ("hunter2", "secret-", "secret name", "db.internal"):  # no part of a value either
        assert all(fragment not in line for line in lines), fragment
    assert "x.yaml: servers[2] (c).url: environment variable MISSING is not set" in lines


def test_duplicate_name_from_env_is_masked_in_errors() -> None:
    text = "servers:\n" + "  - {name: '${N}', transport: stdio, command: x}\n" * 2
    assert problems(text, {"N": "secretname"}) == [
        "x.yaml: servers[1] (${N}).name: duplicate server name '***' (first at servers[0])"
    ]


# --- secrets ------------------------------------------------------------------------------------


def test_secrets() -> None:
    text = """\
sidecar: {admin_token_env: ADMIN}
servers:
  - name: fs
    transport: stdio
    command: node
    args: ["--key=${API_KEY}", "--port=${PORT:-8080}"]
    cwd: ${SHORT}
    env: {LOG_LEVEL: debug, EMPTY: "", ONE: "1"}
  - name: db
    transport: streamable-http
    url: https://me:p4ssw0rd@db.example.com/mcp
    headers: {Authorization: "Bearer ${DB_TOKEN}", X-Static: static-header-value}
"""
    environ = {"API_KEY": "api-key-123", "DB_TOKEN": "db-token-456", "SHORT": "/a", "ADMIN": "admin-secret"}
    assert parse_config(text, SRC, environ).secrets() == {
        "api-key-123",  # substituted from ${VAR}
        "db-token-456",
        "Bearer db-token-456",  # header values, whole and the token alone
        "static-header-value",
        "debug",  # every env value, however harmless it looks
        "p4ssw0rd",  # URL password
        "admin-secret",  # the admin token named by admin_token_env
    }


def test_secrets_without_any() -> None:
    assert parse_config("servers:\n" + FS, SRC, {}).secrets() == frozenset()


# --- foreign formats ----------------------------------------------------------------------------

CLAUDE_DESKTOP = {
    "mcpServers": {
        "filesystem": {
            "command": "npx",
            "args": ["-y", "@modelcontextprotocol/server-filesystem", "/Users/me/Desktop"],
            "env": {"NODE_OPTIONS": "--max-old-space-size=512"},
        },
        "github": {
            "command": "docker",
            "args": [
                "run",
                "-i",
                "--rm",
                "-e",
                "GITHUB_PERSONAL_ACCESS_TOKEN",
                "ghcr.io/github/github-mcp-server",
            ],
            "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_example"},
            "disabled": False,
            "autoApprove": ["get_me"],
        },
        "old": {"command": "node", "args": ["old.js"], "disabled": True},
    },
    "globalShortcut": "Ctrl+Space",
}


def test_claude_desktop_json() -> None:
    config = parse_config(json.dumps(CLAUDE_DESKTOP, indent=2), "claude_desktop_config.json", {})
    assert [s.name for s in config.servers] == ["filesystem", "github"]  # disabled "old" skipped
    fs = config.servers[0]
    assert (fs.transport, fs.command, fs.args[-1]) == ("stdio", "npx", "/Users/me/Desktop")
    assert fs.env == {"NODE_OPTIONS": "--max-old-space-size=512"}
    assert fs.health == HealthConfig()  # built-in defaults apply
    assert "ghp_example" in config.secrets()


def test_cursor_json() -> None:
    text = json.dumps(
        {
            "mcpServers": {
                "remote": {
                    "url": "https://mcp.example.com/mcp",
                    "headers": {"Authorization": "Bearer ${TOKEN}"},
                },
                "legacy": {"url": "http://localhost:8000/sse", "type": "sse"},
                "local": {
                    "command": "python",
                    "args": ["-m", "srv"],
                    "envFile": ".env",
                    "timeout": 30000,
                    "description": "x",
                    "alwaysAllow": ["t"],
                },
                "windsurf": {"serverUrl": "https://w.example.com/mcp"},
            }
        }
    )
    remote, legacy, local, windsurf = parse_config(text, ".cursor/mcp.json", {"TOKEN": "tok-abcdef"}).servers
    assert (remote.transport, remote.url) == ("streamable-http", "https://mcp.example.com/mcp")
    assert remote.headers == {"Authorization": "Bearer tok-abcdef"}
    assert (legacy.transport, legacy.url) == ("sse", "http://localhost:8000/sse")
    assert (local.transport, local.command, local.args) == ("stdio", "python", ("-m", "srv"))
    assert (windsurf.transport, windsurf.url) == ("streamable-http", "https://w.example.com/mcp")


def test_vscode_mcp_json() -> None:
    text = json.dumps(
        {
            "inputs": [{"type": "promptString", "id": "token", "description": "API token", "password": True}],
            "servers": {
                "http-one": {
                    "type": "http",
                    "url": "https://a.example.com/mcp",
                    "headers": {"X-Key": "k-123456"},
                },
                "sse-one": {"type": "sse", "url": "https://b.example.com/sse"},
                "stdio-one": {
                    "type": "stdio",
                    "command": "uvx",
                    "args": ["mcp-server-time"],
                    "env": {"TZ": "UTC"},
                },
                "camel": {"type": "streamableHttp", "url": "https://c.example.com/mcp"},
            },
        }
    )
    servers = parse_config(text, ".vscode/mcp.json", {}).servers
    assert [(s.name, s.transport) for s in servers] == [
        ("http-one", "streamable-http"),
        ("sse-one", "sse"),
        ("stdio-one", "stdio"),
        ("camel", "streamable-http"),
    ]
    assert servers[2].env == {"TZ": "UTC"}


def test_vscode_settings_json_mcp_section() -> None:
    text = json.dumps({"editor.fontSize": 12, "mcp": {"servers": {"t": {"command": "uvx", "args": ["x"]}}}})
    assert parse_config(text, "settings.json", {}).servers[0].command == "uvx"


def test_foreign_entries_may_use_our_keys_and_sections() -> None:
    text = json.dumps(
        {
            "sidecar": {"strict": True},
            "defaults": {"connect_timeout": "3s"},
            "mcpServers": {"fs": {"command": "x", "criticality": "critical", "health": {"interval": "1s"}}},
        }
    )
    config = parse_config(text, "c.json", {})
    fs = config.servers[0]
    assert (config.sidecar.strict, fs.criticality, fs.connect_timeout, fs.health.interval) == (
        True,
        "critical",
        3,
        1,
    )


FOREIGN_BAD = [
    (
        "no command or url",
        {"mcpServers": {"a": {"args": ["x"]}}},
        ["c.json: mcpServers.a: needs 'command' (stdio) or 'url' (http, sse)"],
    ),
    (
        "unknown type",
        {"servers": {"a": {"type": "websocket", "url": "ws://h"}}},
        ["c.json: servers.a.type: must be one of: stdio, http, streamable-http, sse"],
    ),
    (
        "stdio type without command",
        {"servers": {"a": {"type": "stdio", "url": "http://h"}}},
        [
            "c.json: servers.a.command: stdio transport needs 'command'",
            "c.json: servers.a.url: stdio transport does not take 'url'",
        ],
    ),
    (
        "sse type without url",
        {"mcpServers": {"a": {"transport": "sse"}}},
        ["c.json: mcpServers.a.url: sse transport needs 'url'"],
    ),
    (
        "bad url",
        {"mcpServers": {"a": {"url": "localhost:3000"}}},
        ["c.json: mcpServers.a.url: must be an http:// or https:// URL with a host"],
    ),
    (
        "entry not a mapping",
        {"mcpServers": {"a": "npx x", "b": {"command": "x"}}},
        ["c.json: mcpServers.a: must be a mapping"],
    ),
    (
        "mcpServers not a mapping",
        {"mcpServers": ["a"]},
        ["c.json: mcpServers: must be a mapping of server name to settings"],
    ),
    (
        "all disabled",
        {"mcpServers": {"a": {"command": "x", "disabled": True}}},
        ["c.json: mcpServers: at least one server is required"],
    ),
    (
        "bad server name",
        {"mcpServers": {"my server": {"command": "x"}}},
        [f"c.json: mcpServers.my server.name: {NAME_HELP}"],
    ),
    (
        "missing env var",
        {"mcpServers": {"gh": {"command": "x", "env": {"T": "${GH_TOKEN}"}}}},
        ["c.json: mcpServers.gh.env.T: environment variable GH_TOKEN is not set"],
    ),
    (
        "bad value in our key",
        {"mcpServers": {"a": {"command": "x", "connect_timeout": "0s"}}},
        ["c.json: mcpServers.a.connect_timeout: must be positive"],
    ),
]


@pytest.mark.parametrize(("data", "expected"), [c[1:] for c in FOREIGN_BAD], ids=[c[0] for c in FOREIGN_BAD])
def test_bad_foreign_config(data: dict[str, object], expected: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(json.dumps(data), "c.json", {})
    assert info.value.problems == expected


# --- the gateway ---------------------------------------------------------------------------------


def test_gateway_defaults() -> None:
    config = parse_config("servers:\n" + FS, SRC, {})
    gateway = config.sidecar.gateway
    assert (gateway.max_name_length, gateway.token_env, gateway.allowed_origins, gateway.allowed_hosts) == (
        64,
        None,
        (),
        (),
    )
    assert (gateway.max_sessions, gateway.max_body_bytes) == (1000, 4 * 1024 * 1024)
    server = config.servers[0].gateway
    assert (server.prefix, server.include, server.exclude, server.enabled) == (None, (), (), True)


def test_gateway_keys_parse() -> None:
    text = (
        "sidecar:\n  gateway:\n    max_name_length: 40\n    token_env: GW_TOKEN\n"
        "    allowed_origins: ['https://app.example.com', 'http://10.0.0.1:*']\n"
        "    allowed_hosts: ['sidecar.local:9465']\n    max_sessions: 5\n    max_body_bytes: 2048\n"
        "servers:\n"
        "  - {name: fs, transport: stdio, command: x,\n"
        "     gateway: {prefix: '', include: ['read_*'], exclude: [x]}}\n"
        "  - {name: db, transport: stdio, command: x, gateway: {enabled: false}}\n"
    )
    config = parse_config(text, SRC, {"GW_TOKEN": "gateway-token-123"})
    gateway = config.sidecar.gateway
    assert gateway.allowed_origins == ("https://app.example.com", "http://10.0.0.1:*")
    assert (gateway.max_name_length, gateway.token_env, gateway.allowed_hosts) == (
        40,
        "GW_TOKEN",
        ("sidecar.local:9465",),
    )
    fs, db = config.servers
    assert (fs.gateway.prefix, fs.gateway.include, fs.gateway.exclude) == ("", ("read_*",), ("x",))
    assert db.gateway.enabled is False
    assert "gateway-token-123" in config.secrets()  # redacted wherever it could appear


def test_gateway_server_keys_in_mcp_servers_json() -> None:
    data = {"mcpServers": {"fs": {"command": "node", "gateway": {"prefix": "files_"}}}}
    config = parse_config(json.dumps(data), SRC, {})
    assert config.servers[0].gateway.prefix == "files_"


GATEWAY_BAD = [
    (
        "bad gateway settings",
        "sidecar:\n  gateway: {separator: '::', max_name_length: 8, token_env: 1X, max_sessions: 0,\n"
        "    max_body_bytes: 10, allowed_origins: ['example.com', 'https://a.example/x'],\n"
        "    allowed_hosts: ['a b']}\n"
        "servers:\n" + FS,
        [
            "x.yaml: sidecar.gateway.separator: may only use letters, digits, _ . -",
            "x.yaml: sidecar.gateway.max_name_length: must be at least 16",
            "x.yaml: sidecar.gateway.token_env: must be an environment variable name",
            "x.yaml: sidecar.gateway.allowed_origins[0]: must be an origin like https://app.example.com, "
            "optionally with :port or :*",
            "x.yaml: sidecar.gateway.allowed_origins[1]: must be an origin like https://app.example.com, "
            "optionally with :port or :*",
            "x.yaml: sidecar.gateway.allowed_hosts[0]: must be a Host header value like example.com, "
            "example.com:8080 or example.com:*",
            "x.yaml: sidecar.gateway.max_sessions: must be at least 1",
            "x.yaml: sidecar.gateway.max_body_bytes: must be at least 1024",
        ],
    ),
    (
        "bad server gateway settings",
        "servers:\n  - {name: fs, transport: stdio, command: x,\n"
        "     gateway: {prefix: 'a b', include: [''], enabled: maybe, prefx: x}}\n",
        [
            "x.yaml: servers[0] (fs).gateway.prefix: may only use letters, digits, _ . -",
            "x.yaml: servers[0] (fs).gateway.include[0]: must not be empty",
            "x.yaml: servers[0] (fs).gateway.enabled: must be true or false",
            "x.yaml: servers[0] (fs).gateway.prefx: unknown key (did you mean 'prefix'?)",
        ],
    ),
    (
        "server name holding the separator",
        "servers:\n  - {name: a__b, transport: stdio, command: x}\n"
        "  - {name: c__d, transport: stdio, command: x, gateway: {prefix: cd_}}\n"
        "  - {name: e__f, transport: stdio, command: x, gateway: {enabled: false}}\n",
        [
            "x.yaml: servers[0] (a__b).name: contains the gateway separator '__'; "
            "rename it or set its gateway.prefix"
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in GATEWAY_BAD], ids=[c[0] for c in GATEWAY_BAD])
def test_bad_gateway_config(text: str, expected: list[str]) -> None:
    assert problems(text) == expected


def test_separator_in_a_name_is_fine_with_the_gateway_off() -> None:
    text = "sidecar: {gateway: {enabled: false}}\nservers:\n  - {name: a__b, transport: stdio, command: x}\n"
    assert parse_config(text, SRC, {}).servers[0].name == "a__b"
