"""Config fuzzing: any document is either a valid config or a `ConfigError` naming each problem's field.

Hypothesis builds near-valid YAML and ``mcpServers`` JSON documents (wrong types, missing and
unknown keys, bad durations, huge numbers, hostile unicode, nested garbage, duplicate names, bad
``${VAR}`` references) and damaged texts. For every one, `parse_config` returns a `SidecarConfig`
or raises `ConfigError` whose every line is one printable line, starts with the source, and names
a field (or, for a file that does not parse at all, says where or why); and no secret value ever
shows up in a problem. The CLI's `check` says the same in a subprocess, with no traceback.

Each bug this found has an `@example` below it, named in the comment beside it. The runs are
bounded and derandomized: CI sees the same examples every time.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from sidecar.config import ConfigError, SidecarConfig, load_config, parse_config

SRC = "fuzz.yaml"
SECRET = "fuzz-secret-7d1c"  # the value of ${SET}; also written literally into passwords and headers
ENV = {"SET": SECRET, "EMPTY": "", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
BUILTIN_HEADS = ("servers", "sidecar", "defaults", "mcpServers", "source")
# Problems about the file as a whole, not any field: it does not parse, or is no mapping at all.
FILE_LEVEL = re.compile(
    r"file is empty"
    r"|top level must be a mapping, not \w+"
    r"|(?:line \d+, column \d+: |character \d+: )?invalid (?:YAML|JSON): .+"
    r"|nested more than \d+ levels deep"
)
FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- building blocks --------------------------------------------------------------------------------

HOSTILE_TEXT = (
    "",
    " ",
    "a b",
    "a\nb",
    "a\r\nb",
    "tab\there",
    "nul\x00byte",
    "bell\x07",
    "esc\x1b[31mred",
    "\u202eevil",  # right-to-left override
    "zero\u200bwidth",
    "line\u2028sep",
    "next\x85line",
    "名前",
    "🙂",
    '"quoted"',
    "'single'",
    "<script>alert(1)</script>",
    "a__b",
    "-leading",
    "x" * 65,
    "y" * 10_000,
    "${SET}",
    "${UNSET}",
    "${EMPTY}",
    "${UNSET:-fallback}",
    "${",
    "${1BAD}",
    "$$",
    "${env:SET}",
    "%s%n%d",
    "{{template}}",
)
NAMES = ("fs", "db", "time", "git", "x.y", "A_b-1.2", "a" * 64, "fs")  # a duplicate on purpose


def printable_text(max_size: int = 12) -> st.SearchStrategy[str]:
    # YAML can carry every character except lone surrogates; JSON documents add those separately.
    return st.text(st.characters(exclude_categories=["Cs"]), max_size=max_size)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=10**300, max_value=10**400),  # more than a float holds
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(HOSTILE_TEXT),
    printable_text(),
    st.dates(min_value=datetime.date(1, 1, 1)),
)
garbage = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(printable_text(6), inner, max_size=3),
    max_leaves=8,
)


def field(good: Any, bad: Any = None) -> st.SearchStrategy[Any]:
    """Mostly a good value; sometimes a near miss (`bad`), sometimes anything at all. Lists are
    sampled from; a config has about ten fields, so most documents hold one mistake or none."""
    good = st.sampled_from(good) if isinstance(good, list | tuple) else good
    bad = garbage if bad is None else st.sampled_from(bad) if isinstance(bad, list | tuple) else bad
    return weighted((good, 12), (bad, 1), (garbage, 1))


def weighted(*choices: tuple[st.SearchStrategy[Any], int]) -> st.SearchStrategy[Any]:
    """`one_of` with weights (one_of itself picks each distinct strategy about as often)."""
    return st.sampled_from([strategy for strategy, weight in choices for _ in range(weight)]).flatmap(
        lambda strategy: strategy
    )


durations = field(
    st.one_of(
        st.sampled_from(["250ms", "5s", "1m", "1h", "1.5s", ".5s", " 5s ", "5 ms"]),
        st.integers(min_value=1, max_value=10**6),
        st.floats(min_value=0.001, max_value=1e6),
    ),
    st.one_of(
        st.sampled_from(
            ["0", "0s", "-1s", "5x", "s", "1e3s", "1.5.3s", "∞", "٣s", "NaN", "inf", "9" * 400 + "s"]
        ),
        st.integers(min_value=-5, max_value=0),
        st.floats(allow_nan=True, allow_infinity=True),
    ),
)
names = field(NAMES, st.sampled_from(HOSTILE_TEXT) | printable_text())
urls = field(
    ["http://127.0.0.1:8000/mcp", "https://example.test/sse", f"http://agent:{SECRET}@127.0.0.1:9/mcp"],
    [
        f"http://agent:{SECRET}\u2100@127.0.0.1/mcp",  # fails NFKC: urlsplit's error quoted it
        "http://[::1/mcp",
        "http://127.0.0.1:99999/",
        "http://127.0.0.1:port/",
        "ftp://127.0.0.1/",
        "http://",
        "127.0.0.1:8000",
        "http://${SET}/mcp",
        "http://${UNSET}/mcp",
    ],
)
string_maps = field(
    st.dictionaries(
        st.one_of(st.sampled_from(["TOKEN", "Authorization", "PORT"]), printable_text(8)),
        st.one_of(
            st.sampled_from([SECRET, f"Bearer {SECRET}", "${SET}", "Bearer ${SET}", "${UNSET:-x}", "8080"]),
            st.integers() | st.booleans() | st.floats(),
        ),
        max_size=3,
    ),
    st.dictionaries(
        st.sampled_from(HOSTILE_TEXT) | st.integers(),
        scalars | st.sampled_from(["${", f"Bearer {SECRET}\r\nX-Injected: 1", f"Bearer {SECRET}\u00e9"]),
        max_size=2,
    ),
)
health = field(
    st.fixed_dictionaries(
        {},
        optional={
            "interval": durations,
            "timeout": durations,
            "failure_threshold": field(st.integers(1, 10), st.integers(-2, 0) | st.just(10**30)),
        },
    ),
    st.just({"intervall": "5s"}),  # a typo
)
reconnect = field(
    st.fixed_dictionaries(
        {},
        optional={
            "initial_backoff": durations,
            "max_backoff": durations,
            "multiplier": field(
                st.floats(1, 10), st.floats(allow_nan=True, allow_infinity=True) | st.just(10**400)
            ),
            "jitter": field(st.floats(0, 1), st.floats(allow_nan=True, allow_infinity=True)),
            "max_attempts": field(st.integers(0, 2**64), st.integers(-3, -1)),
            "on_give_up": field(["drop", "keep"], ["retry", "DROP"]),
        },
    )
)
SERVER_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "command": field(["node", "python3", "echo hi; touch /tmp/pwned", "$(id)", "${SET}"], ["", "${UNSET}"]),
    "args": field(st.lists(scalars, max_size=3), st.just("--a-string")),
    "env": string_maps,
    "cwd": field(["/tmp", "relative/dir"], [""]),
    "url": urls,
    "headers": string_maps,
    "criticality": field(["critical", "optional"], ["CRITICAL", "high"]),
    "connect_timeout": durations,
    "call_timeout": durations,
    "protocol": field(
        st.sampled_from(["auto", "legacy", "2026-07-28"]) | st.just(datetime.date(2026, 7, 28)),
        ["2025-11-25", "latest"],
    ),
    "health": health,
    "reconnect": reconnect,
}
# Keys only some branches know (the gateway's, per server): either a config or a clear error.
RARE_SERVER_FIELDS = {"gateway": st.fixed_dictionaries({}, optional={"prefix": names, "enabled": scalars})}
transports = field(["stdio", "streamable-http", "sse"], ["http", "STDIO", "websocket"])
unknown_keys = st.dictionaries(
    st.sampled_from(HOSTILE_TEXT) | printable_text(8), garbage, min_size=1, max_size=2
)
STDIO_ONLY, HTTP_ONLY = ("command", "args", "env", "cwd"), ("url", "headers")


def sometimes(draw: st.DrawFn, one_in: int) -> bool:
    return draw(st.integers(1, one_in)) == 1


@st.composite
def servers(draw: st.DrawFn) -> Any:
    server: dict[Any, Any] = {"name": draw(names), "transport": draw(transports)}
    # Mostly the fields that fit the transport, sometimes those of the other kind too.
    http = server["transport"] in ("sse", "streamable-http")
    wrong = sometimes(draw, 8)
    fitting = [
        key for key in sorted(SERVER_FIELDS) if wrong or key not in (STDIO_ONLY if http else HTTP_ONLY)
    ]
    chosen = draw(st.lists(st.sampled_from(fitting), max_size=5, unique=True))
    server.update({key: draw(SERVER_FIELDS[key]) for key in chosen})
    needed = "url" if http else "command"
    if needed not in server and not sometimes(draw, 10):
        server[needed] = draw(SERVER_FIELDS[needed])
    if sometimes(draw, 10):  # a required field goes missing
        server.pop(draw(st.sampled_from(["name", "transport", "command", "url"])), None)
    if sometimes(draw, 40):
        server.update({key: draw(value) for key, value in RARE_SERVER_FIELDS.items()})
    if sometimes(draw, 12):
        server.update(draw(unknown_keys))
    return server


sidecar_sections = field(
    st.fixed_dictionaries(
        {},
        optional={
            "listen": field(
                ["127.0.0.1:9464", "127.0.0.1:0", "[::1]:9464"], [":9464", "h:²", "h:99999", "h"]
            ),
            "gateway": field(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "listen": field(["127.0.0.1:9466", "127.0.0.1:0"], ["127.0.0.1:9464"]),
                        "path": field(["/mcp"], ["mcp", ""]),
                        "separator": field(["__", "."], [""]),
                        "enabled": field(st.booleans()),
                    },
                )
            ),
            "admin_token_env": field(["MCP_SIDECAR_TOKEN", "SET"], ["1BAD", "A-B", ""]),
            "strict": field(st.booleans()),
            "startup_timeout": durations,
            "shutdown_timeout": durations,
        },
    )
)
defaults_sections = field(
    st.fixed_dictionaries(
        {},
        optional={
            key: SERVER_FIELDS[key]
            for key in ("criticality", "connect_timeout", "call_timeout", "protocol", "health", "reconnect")
        },
    ),
    st.just([]) | st.just(0) | st.just("none"),
)


@st.composite
def yaml_documents(draw: st.DrawFn) -> dict[Any, Any]:
    """Our own format: `sidecar`, `defaults`, a `servers` list; any of them broken or missing."""
    doc: dict[Any, Any] = {}
    if draw(st.booleans()):
        doc["sidecar"] = draw(sidecar_sections)
    if draw(st.booleans()):
        doc["defaults"] = draw(defaults_sections)
    if not sometimes(draw, 20):
        doc["servers"] = draw(field(st.lists(servers(), min_size=1, max_size=4), st.just([])))
    if sometimes(draw, 12):
        doc.update(draw(unknown_keys))
    return doc


@st.composite
def mcp_servers_documents(draw: st.DrawFn) -> dict[Any, Any]:
    """Claude Desktop / Cursor `mcpServers`, VS Code `servers` or `mcp.servers` mappings."""
    entries: dict[Any, Any] = {}
    for _ in range(draw(st.integers(0 if sometimes(draw, 10) else 1, 3))):
        http = sometimes(draw, 3)
        fitting = [key for key in sorted(SERVER_FIELDS) if key not in (STDIO_ONLY if http else HTTP_ONLY)]
        entry = {
            key: draw(SERVER_FIELDS[key]) for key in draw(st.lists(st.sampled_from(fitting), max_size=3))
        }
        if not sometimes(draw, 10):
            entry["url" if http else "command"] = draw(SERVER_FIELDS["url" if http else "command"])
        kind = field(["http", "streamable-http", "sse"] if http else ["stdio"], ["websocket", "SSE", "local"])
        extras = [("type", kind), ("disabled", st.booleans() | scalars)] + [("serverUrl", urls)] * http
        for key, values in extras:
            if sometimes(draw, 6):
                entry[key] = draw(values)
        key = draw(names.filter(lambda n: isinstance(n, str | int | float | None)))  # JSON-able keys
        entries[key] = draw(field(st.just(entry)))
    shape = draw(st.sampled_from(["mcpServers", "vscode", "vscode-settings"]))
    doc: dict[Any, Any] = {
        "mcpServers": {"mcpServers": entries},
        "vscode": {"servers": entries},
        "vscode-settings": {"mcp": {"servers": entries}},
    }[shape]
    if draw(st.booleans()):
        doc["sidecar"] = draw(sidecar_sections)
    return doc


def as_yaml(doc: Any) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=10**6)


def as_json(doc: Any) -> str:
    # Non-string keys and dates have no JSON form: json.dumps turns keys into text, default= dates.
    return json.dumps(doc, default=str, indent=1)


def lone_surrogates(doc: dict[Any, Any]) -> dict[Any, Any]:
    """JSON can carry what YAML cannot: a lone surrogate (`\\ud800`) decodes to a str holding one."""
    return {**doc, "sidecar": {"listen": "\ud800"}} if "sidecar" in doc else doc


MUTATIONS = (
    "",
    ":",
    "{",
    "}",
    "[",
    "\t",
    "\x00",
    "&a ",
    "*a",
    "!!binary ",
    "!!int ",
    "!!float ",
    "!!timestamp ",
    "%YAML",
    "- ",
    "'",
    '"',
    "\ufeff",
)


@st.composite
def damaged(draw: st.DrawFn, texts: st.SearchStrategy[str]) -> str:
    """A document's text with a slice replaced: syntax errors, truncations, stray tokens."""
    text = draw(texts)
    start = draw(st.integers(0, len(text)))
    end = draw(st.integers(start, min(len(text), start + 20)))
    return text[:start] + draw(st.sampled_from(MUTATIONS)) + text[end:]


documents = st.one_of(yaml_documents(), mcp_servers_documents())
texts = st.one_of(
    documents.map(as_yaml),
    documents.map(as_yaml),
    documents.map(lone_surrogates).map(as_json),
    damaged(documents.map(as_yaml)),
    damaged(documents.map(as_json)),
)


# -- the oracle ---------------------------------------------------------------------------------------


def shown(key: Any) -> str:
    """A key or name as a problem line shows it: cut after 80 characters, unprintables escaped."""
    text = str(key)
    text = repr(text) if not text.strip() else text if len(text) <= 80 else text[:77] + "..."
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def top_level_keys(text: str) -> set[str]:
    """The document's own top-level keys, as far as either parser can read them."""
    heads: set[str] = set()
    for load in (json.loads, yaml.safe_load):
        try:
            data = load(text)
        except Exception:  # damaged texts are expected not to parse
            continue
        if isinstance(data, dict):
            heads.update(shown(key) for key in data)
    return heads


def assert_explained(problem: str, source: str, heads: set[str]) -> None:
    """One problem line: printable, bounded, `source: where: what`, where naming a field."""
    assert problem.isprintable(), f"unprintable character in {problem!r}"
    assert len(problem) < 1000, f"a {len(problem)}-character line: {problem[:200]!r}..."
    assert problem.startswith(f"{source}: "), problem
    assert SECRET not in problem, f"the secret leaked: {problem!r}"
    rest = problem[len(source) + 2 :]
    if FILE_LEVEL.fullmatch(rest):
        return
    head = next((h for h in (*BUILTIN_HEADS, *heads) if re.match(re.escape(h) + r"[.\[ :]", rest)), None)
    assert head is not None, f"names no field of the document: {problem!r} (top-level keys: {heads})"
    assert re.search(r": \S", rest[len(head) :]), f"no message after the field: {problem!r}"


def note_kind(kind: str) -> None:
    """Count outcomes in `--hypothesis-show-statistics` (about 1 in 6 is a valid config)."""
    if currently_in_test_context():
        event(kind)


def outcome(text: str) -> SidecarConfig | ConfigError:
    """Whatever `parse_config` makes of `text`; anything but a config or a ConfigError fails the test."""
    try:
        config = parse_config(text, SRC, ENV)
    except ConfigError as exc:
        assert exc.problems, "a ConfigError without problems"
        assert str(exc) == "\n".join(exc.problems)
        heads = top_level_keys(text)
        for problem in exc.problems:
            assert_explained(problem, SRC, heads)
        note_kind("config error" if heads else "not a mapping, or does not parse")
        return exc
    assert isinstance(config, SidecarConfig)
    note_kind("valid config")
    server_names = [server.name for server in config.servers]
    assert server_names and len(set(server_names)) == len(server_names)
    assert all(NAME_PATTERN.fullmatch(name) and len(name) <= 64 for name in server_names)
    secrets = config.secrets()  # every env and header value is one, to be masked in all output
    for server in config.servers:
        assert all(v in secrets for v in (*server.env.values(), *server.headers.values()) if len(v) >= 4)
    return config


# -- properties -----------------------------------------------------------------------------------------


def _deep(opening: str, closing: str, depth: int) -> str:
    return opening * depth + closing * depth


def _alias_bomb() -> str:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    return "\n".join([*lines, "servers: [*a8]"])


CRLF_HEADER = (
    "servers:\n  - {name: a, transport: sse, url: 'http://h/', "
    f'headers: {{A: "Bearer {SECRET}\\r\\nB: 1"}}}}\n'
)
ONE = "servers:\n  - {name: a, transport: stdio, command: x%s}\n"


@FUZZ
@given(text=texts)
# PyYAML's date constructor raised ValueError (month 13) past the YAMLError handler.
@example(text=ONE % ", env: {D: 2001-13-01}")
# A 400-digit duration: float() raised OverflowError, which pydantic does not turn into an error.
@example(text=ONE % (", connect_timeout: 1" + "0" * 400))
# 5,000-digit ints: the YAML constructor's and json's int() raised ValueError (digit limit).
@example(text=ONE % (", env: {A: 1" + "0" * 5000 + "}"))
@example(text='{"servers": [{"name": "a", "transport": "stdio", "command": "x", "a": 1' + "0" * 5000 + "}]}")
# Deep nesting: both parsers, and our own recursive walk, raised RecursionError.
@example(text="servers: " + _deep("[", "]", 1000))
@example(text='{"servers": ' + _deep("[", "]", 5000) + "}")
@example(text='{"servers": [{"name": "a", "env": ' + _deep("[", "]", 900) + "}]}")
# Aliases that expand to 10^9 values: the walk would never end.
@example(text=_alias_bomb())
# A list as a name, twice: the duplicate check hashed it (TypeError).
@example(text="servers:\n  - {name: [a], transport: stdio, command: x}\n  - {name: [a], transport: stdio}\n")
# Newlines in names and keys split one problem over two lines.
@example(text='servers:\n  - {name: "a\\nb", transport: stdio, command: x}\n  - {name: "a\\nb"}\n')
@example(text=ONE % ', "bad\\r\\nkey": 1')
@example(text='{"mcpServers": {"a\\nb": {"command": "x"}, "c": 5}}')
# A right-to-left override reordered the line on a terminal; a NUL byte; a 10 KB name.
@example(text='servers:\n  - {name: "\\u202eabc", transport: stdio, command: x}\n')
@example(text="servers:\x00\n")
@example(text="servers:\n  - {name: " + "n" * 10_000 + ", transport: stdio, command: x}\n")
# urlsplit's NFKC error quoted the netloc, password and all.
@example(text=f'servers:\n  - {{name: a, transport: sse, url: "http://u:{SECRET}\\u2100@h/"}}\n')
# "²".isdigit() is True; int("²") raised a message quoting the value.
@example(text='sidecar: {listen: "127.0.0.1:\\u00b2"}\n' + ONE % "")
# `defaults: 0` was silently taken as "no defaults".
@example(text="defaults: 0\n" + ONE % "")
# A multiplier or jitter of .inf / .nan was accepted or judged "at most 1".
@example(text=ONE % ", reconnect: {multiplier: .inf, jitter: .nan}")
# An empty top-level key: the line said "unknown key" and named nothing.
@example(text="? ''\n: null\n")
# A header value with CR LF: the HTTP client's error quoted it, split where the redactor cannot see it.
@example(text=CRLF_HEADER)
# Tagged values PyYAML's constructors fail on with IndexError and AttributeError, not YAMLError.
@example(text="!!int :\n    disabled: false\n")
@example(text="!!timestamp mcpServers: {}\n")
# A lone surrogate through JSON.
@example(text='{"servers": [{"name": "\\ud800", "transport": "stdio", "command": "\\udfff"}]}')
def test_any_document_is_a_config_or_explained_field_by_field(text: str) -> None:
    outcome(text)


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(
    st.lists(st.sampled_from(["fs", "db", "time", "a.b", "A_1"]), min_size=1, max_size=5, unique=True),
    st.sampled_from([as_yaml, as_json]),
)
def test_valid_documents_are_accepted(server_names: list[str], render: Any) -> None:
    """The fuzzer's oracle is not vacuous: the same building blocks, when valid, make a config."""
    doc = {
        "defaults": {"connect_timeout": "2s", "health": {"interval": "250ms"}},
        "servers": [
            {"name": name, "transport": "stdio", "command": "node", "env": {"TOKEN": "${SET}"}}
            if i % 2 == 0
            else {"name": name, "transport": "sse", "url": "http://127.0.0.1:8000/sse", "headers": {"A": "b"}}
            for i, name in enumerate(server_names)
        ],
    }
    config = outcome(render(doc))
    assert isinstance(config, SidecarConfig)
    assert [server.name for server in config.servers] == server_names
    assert config.servers[0].env == {"TOKEN": SECRET} and SECRET in config.secrets()


NAME_HELP = "must start with a letter or digit and use only letters, digits, _ . -"
NAMED = 'servers:\n  - {name: "%s", transport: stdio, command: x}\n'
FOUND = [
    (ONE % ", env: {D: 2001-13-01}", "invalid YAML: an impossible date or time (month must be in 1..12)"),
    (ONE % ', env: {D: !!int "x-secret"}', "invalid YAML: a value does not fit its type tag"),
    (ONE % ", env: {D: !!float x-secret}", "invalid YAML: a value does not fit its type tag"),
    (ONE % (", env: {A: 1" + "0" * 5000 + "}"), "invalid YAML: a number has too many digits"),
    ("servers: " + _deep("[", "]", 1000), "nested more than 32 levels deep"),
    ('{"servers": [[[' + _deep("[", "]", 40) + "]]]}", "servers: nested more than 32 levels deep"),
    (_alias_bomb(), "a5: more than 200000 values"),
    (ONE % (", connect_timeout: 1" + "0" * 400), "servers[0] (a).connect_timeout: must be a finite duration"),
    (NAMED % "a\\nb", f"servers[0] (a\\nb).name: {NAME_HELP}"),
    (NAMED % "\\u202eab", f"servers[0] (\\u202eab).name: {NAME_HELP}"),
    (ONE % ', "k\\x1b[2J": 1', "servers[0] (a).k\\x1b[2J: unknown key"),
    ("? ''\n: null\n" + ONE % "", "'': unknown key"),
    (NAMED % ("n" * 10_000), f"servers[0] ({'n' * 77}...).name: must be at most 64 characters"),
    (
        f'servers:\n  - {{name: a, transport: sse, url: "http://u:{SECRET}\\u2100@h/"}}\n',
        "servers[0] (a).url: must be an http:// or https:// URL with a host",
    ),
    (
        'sidecar: {listen: "127.0.0.1:\\u00b2"}\n' + ONE % "",
        "sidecar.listen: must be host:port, e.g. 127.0.0.1:9464",
    ),
    ("defaults: 0\n" + ONE % "", "defaults: must be a mapping"),
    (
        CRLF_HEADER,
        "servers[0] (a).headers: the value of 'A' must be printable ASCII, without line breaks",
    ),
    (ONE % ", reconnect: {multiplier: .inf}", "servers[0] (a).reconnect.multiplier: must be a finite number"),
    ("servers:\x00\n", "character 9: invalid YAML: special characters are not allowed"),
]


@pytest.mark.parametrize(("text", "expected"), FOUND)
def test_what_the_fuzzer_found_is_said_in_one_clear_line(text: str, expected: str) -> None:
    error = outcome(text)
    assert isinstance(error, ConfigError)
    assert f"{SRC}: {expected}" in error.problems, error.problems


def test_duplicate_hostile_names_are_reported_once_each_on_one_line() -> None:
    text = 'servers:\n  - {name: "a\\nb", transport: stdio, command: x}\n  - {name: "a\\nb"}\n'
    error = outcome(text)
    assert isinstance(error, ConfigError)
    assert (
        "fuzz.yaml: servers[1] (a\\nb).name: duplicate server name 'a\\nb' (first at servers[0])"
        in error.problems
    )


# -- through the CLI ------------------------------------------------------------------------------------

CLI = [sys.executable, "-m", "sidecar", "check", "-c"]
TRACEBACK = re.compile(r'^(Traceback \(most recent call last\)|  File "|\w+(Error|Exception)\b[^:]*: )', re.M)


# Each example starts a Python process (1-3 s while the CLI imports the mcp SDK at start, 8 s on a
# machine loaded 8x): twenty of them plus the explicit ones, and
# no shrinking (the in-process test above shrinks the same documents far faster).
@pytest.mark.timeout(600)
@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(text=texts)
@example(text=ONE % ", env: {D: 2001-13-01}")
@example(text='servers:\n  - {name: "a\\nb", transport: stdio, command: x}\n')
@example(text=ONE % "")
def test_check_exits_0_or_2_with_one_line_per_problem(text: str, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")  # a lone surrogate: not UTF-8
    done = subprocess.run([*CLI, str(path)], capture_output=True, env=ENV, timeout=60)
    stdout, stderr = done.stdout.decode(), done.stderr.decode()
    assert not TRACEBACK.search(stderr), stderr
    try:
        expected: SidecarConfig | ConfigError = load_config(path, ENV)  # what the command must say
    except ConfigError as exc:
        expected = exc
    if isinstance(expected, SidecarConfig):
        assert (done.returncode, stdout, stderr) == (0, f"{path}: ok, {len(expected.servers)} servers\n", "")
        return
    assert (done.returncode, stdout) == (2, ""), (done.returncode, stdout, stderr)
    assert stderr.splitlines() == expected.problems  # one line per problem, nothing else
    heads = top_level_keys(text)
    for line in stderr.splitlines():
        assert_explained(line, str(path), heads)
