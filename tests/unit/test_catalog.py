"""The gateway catalog as tables: snapshots in, exposed lists, routes and collisions out. No I/O."""

from __future__ import annotations

from typing import Any

import mcp_types as types
import pytest

from sidecar.catalog import (
    SCHEME,
    Catalog,
    CatalogServer,
    Collision,
    Route,
    build_catalog,
    changed_kinds,
    expose_uri,
    exposed_name,
    server_entry,
    visible,
)
from sidecar.config import GatewayConfig, ServerConfig
from sidecar.state import Offerings


def tool(name: str, **fields: Any) -> types.Tool:
    return types.Tool(name=name, input_schema={"type": "object"}, **fields)


def prompt(name: str, **fields: Any) -> types.Prompt:
    return types.Prompt(name=name, **fields)


def server(
    name: str,
    *tools: str,
    active: bool = True,
    prefix: str | None = None,
    offerings: Offerings | None = None,
    **rules: Any,
) -> CatalogServer:
    return CatalogServer(
        name=name,
        active=active,
        offerings=offerings or Offerings(tools=tuple(tool(t) for t in tools)),
        prefix=f"{name}__" if prefix is None else prefix,
        **rules,
    )


def names(catalog: Catalog) -> list[str]:
    return [t.name for t in catalog.list_tools()]


# -- names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "name", "limit", "expected"),
    [
        ("fs__", "read_file", 64, "fs__read_file"),
        ("", "read_file", 64, "read_file"),
        ("fs__", "read file/now", 64, "fs__read_file_now"),  # outside [A-Za-z0-9_.-]: made valid
        ("fs__", "héllo", 64, "fs__h_llo"),
        ("fs__", "a.b-c_D9", 64, "fs__a.b-c_D9"),  # everything valid stays as it is
        ("", "", 64, "_"),  # never empty
    ],
)
def test_exposed_name(prefix: str, name: str, limit: int, expected: str) -> None:
    assert exposed_name(prefix, name, limit) == expected


def test_long_names_get_a_stable_hash_suffix() -> None:
    long = "x" * 100
    first = exposed_name("srv__", long, 64)
    assert len(first) == 64
    assert first == exposed_name("srv__", long, 64)  # stable: the same input, the same name
    assert first.startswith("srv__xxx") and first[-9] == "_"
    other = exposed_name("srv__", long + "y", 64)  # differs only past the cut: still distinct
    assert other != first and len(other) == 64
    assert exposed_name("srv__", "x" * 59, 64) == "srv__" + "x" * 59  # exactly at the limit: unchanged


@pytest.mark.parametrize(
    ("name", "include", "exclude", "shown"),
    [
        ("read_file", (), (), True),
        ("read_file", ("read_*",), (), True),
        ("write_file", ("read_*",), (), False),
        ("read_secret", ("read_*",), ("*secret*",), False),  # exclude wins
        ("write_file", (), ("write_*",), False),
        ("Read_file", ("read_*",), (), False),  # case matters: names are exact
    ],
)
def test_visible(name: str, include: tuple[str, ...], exclude: tuple[str, ...], shown: bool) -> None:
    assert visible(name, include, exclude) is shown


# -- tables --------------------------------------------------------------------------------------


CASES = [
    ("one server, default prefix", [server("fs", "read", "write")], ["fs__read", "fs__write"]),
    ("prefix '' exposes names as they are", [server("fs", "read", prefix="")], ["read"]),
    ("custom prefix", [server("fs", "read", prefix="files_")], ["files_read"]),
    ("inactive servers show nothing", [server("fs", "read", active=False), server("db", "q")], ["db__q"]),
    ("disabled servers show nothing", [server("fs", "read", enabled=False), server("db", "q")], ["db__q"]),
    (
        "filters",
        [server("fs", "read_a", "read_b", "write_a", include=("read_*", "write_*"), exclude=("*_b",))],
        ["fs__read_a", "fs__write_a"],
    ),
    (
        "config order, then the server's own order",
        [server("b", "z", "y"), server("a", "x")],
        ["b__z", "b__y", "a__x"],
    ),
    ("nothing configured", [], []),
]


@pytest.mark.parametrize(("servers", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_exposed_tools(servers: list[CatalogServer], expected: list[str]) -> None:
    catalog = build_catalog(servers)
    assert names(catalog) == expected
    assert catalog.collisions == ()


def test_routes_are_an_exact_map_back_to_the_owner() -> None:
    catalog = build_catalog([server("fs", "read"), server("fs__x", "y", prefix="fsx_")])
    assert catalog.route_tool("fs__read") == Route("fs", "read")
    assert catalog.route_tool("fsx_y") == Route("fs__x", "y")
    assert catalog.route_tool("fs__x__y") is None  # never parsed from the name
    assert catalog.route_tool("read") is None


def test_filtered_tools_have_no_route() -> None:
    catalog = build_catalog([server("fs", "read", "write", exclude=("write",))])
    assert catalog.route_tool("fs__write") is None
    assert catalog.route_tool("fs__read") == Route("fs", "read")


def test_everything_but_the_name_passes_through_unchanged() -> None:
    rich = types.Tool(
        name="read",
        title="Read a file",
        description="Reads.",
        input_schema={"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
        output_schema={"type": "object", "properties": {"text": {"type": "string"}}},
        annotations=types.ToolAnnotations(read_only_hint=True, title="Reader"),
        icons=[types.Icon(src="https://example.com/i.png", mime_type="image/png")],
        _meta={"vendor/key": [1, 2]},
    )
    catalog = build_catalog([server("fs", offerings=Offerings(tools=(rich,)))])
    (shown,) = catalog.list_tools()
    assert shown.name == "fs__read"
    assert shown.model_dump(exclude={"name"}) == rich.model_dump(exclude={"name"})
    assert rich.name == "read"  # the server's own object is not modified


def test_collisions_first_in_config_order_wins_and_the_rest_are_reported() -> None:
    catalog = build_catalog(
        [
            server("a", "echo", prefix=""),
            server("b", "echo", "sum", prefix=""),
            server("c", "echo", prefix=""),
        ]
    )
    assert names(catalog) == ["echo", "sum"]
    assert catalog.route_tool("echo") == Route("a", "echo")
    assert catalog.collisions == (
        Collision("tool", "echo", winner="a", loser="b", name="echo"),
        Collision("tool", "echo", winner="a", loser="c", name="echo"),
    )


def test_a_collision_made_by_sanitising_is_reported() -> None:
    catalog = build_catalog([server("a", "get item", "get_item")])
    assert names(catalog) == ["a__get_item"]
    assert catalog.route_tool("a__get_item") == Route("a", "get item")
    assert catalog.collisions == (Collision("tool", "a__get_item", winner="a", loser="a", name="get_item"),)


def test_the_winner_of_a_collision_leaving_lets_the_next_one_in() -> None:
    servers = [server("a", "echo", prefix="", active=False), server("b", "echo", prefix="")]
    catalog = build_catalog(servers)
    assert catalog.route_tool("echo") == Route("b", "echo")
    assert catalog.collisions == ()


def test_prompts_are_named_filtered_and_routed_like_tools() -> None:
    offerings = Offerings(prompts=(prompt("greet", description="Hi"), prompt("secret")))
    catalog = build_catalog([server("p", offerings=offerings, exclude=("secret",))])
    assert [p.name for p in catalog.list_prompts()] == ["p__greet"]
    assert catalog.list_prompts()[0].description == "Hi"
    assert catalog.route_prompt("p__greet") == Route("p", "greet")
    assert catalog.route_prompt("p__secret") is None


# -- resources -----------------------------------------------------------------------------------

DOC = types.Resource(uri="file:///docs/a.md", name="a", mime_type="text/markdown")
TEMPLATE = types.ResourceTemplate(uri_template="demo://item/{id}", name="item")


def test_resource_uris_are_rewritten_reversibly() -> None:
    catalog = build_catalog(
        [server("fs", offerings=Offerings(resources=(DOC,), resource_templates=(TEMPLATE,)))]
    )
    (resource,) = catalog.list_resources()
    (template,) = catalog.list_resource_templates()
    assert resource.uri == f"{SCHEME}://fs/file:///docs/a.md"
    assert resource.model_dump(exclude={"uri"}) == DOC.model_dump(exclude={"uri"})
    assert template.uri_template == f"{SCHEME}://fs/demo://item/{{id}}"
    assert catalog.route_resource(resource.uri) == Route("fs", "file:///docs/a.md")
    # A client expands the exposed template; the expansion routes back to the server's own URI.
    assert catalog.route_resource(f"{SCHEME}://fs/demo://item/42") == Route("fs", "demo://item/42")
    assert catalog.route_resource(template.uri_template) == Route("fs", "demo://item/{id}")  # completion refs


@pytest.mark.parametrize(
    ("uri", "route"),
    [
        (f"{SCHEME}://gone/x://y", None),  # not configured
        (f"{SCHEME}://down/x://y", None),  # configured, not active
        (f"{SCHEME}://fs", None),  # no URI after the server
        ("file:///docs/a.md", Route("fs", "file:///docs/a.md")),  # a raw URI the owner listed
        ("demo://item/7", Route("fs", "demo://item/7")),  # a raw URI one of its templates matches
        ("other://thing", Route("raw", "other://thing")),  # else: the first unprefixed server
    ],
)
def test_route_resource(uri: str, route: Route | None) -> None:
    offerings = Offerings(resources=(DOC,), resource_templates=(TEMPLATE,))
    catalog = build_catalog(
        [
            server("down", active=False, offerings=offerings),
            server("fs", offerings=offerings),
            server("raw", prefix="", offerings=Offerings()),
        ]
    )
    assert catalog.route_resource(uri) == route


def test_unprefixed_resources_keep_their_uris_and_collide_like_names() -> None:
    catalog = build_catalog(
        [
            server("a", prefix="", offerings=Offerings(resources=(DOC,))),
            server("b", prefix="", offerings=Offerings(resources=(DOC,))),
        ]
    )
    assert [r.uri for r in catalog.list_resources()] == [DOC.uri]
    assert catalog.route_resource(DOC.uri) == Route("a", DOC.uri)
    assert catalog.collisions == (Collision("resource", DOC.uri, winner="a", loser="b", name=DOC.uri),)


def test_a_broken_template_never_breaks_routing() -> None:
    broken = types.ResourceTemplate(uri_template="demo://{a}{b}", name="broken")  # adjacent variables
    catalog = build_catalog([server("fs", prefix="", offerings=Offerings(resource_templates=(broken,)))])
    assert catalog.route_resource("demo://xy") == Route("fs", "demo://xy")  # the unprefixed fallback


def test_expose_uri() -> None:
    assert expose_uri("fs", "file:///a", "fs__") == "mcp-sidecar://fs/file:///a"
    assert expose_uri("fs", "file:///a", "") == "file:///a"


# -- counts and changes --------------------------------------------------------------------------


def test_exposed_counts_cover_every_configured_server() -> None:
    offerings = Offerings(tools=(tool("a"), tool("b")), prompts=(prompt("p"),), resources=(DOC,))
    catalog = build_catalog([server("one", offerings=offerings), server("two", "x", active=False)])
    assert catalog.exposed_counts() == {
        "one": {"tools": 2, "prompts": 1, "resources": 1, "resource_templates": 0},
        "two": {"tools": 0, "prompts": 0, "resources": 0, "resource_templates": 0},
    }


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ([server("a", "x")], [server("a", "x")], set()),  # nothing visible changed
        ([server("a", "x")], [server("a", "x", active=False)], {"tools"}),
        ([server("a", "x", active=False)], [server("a", "x")], {"tools"}),
        ([server("a", "x")], [server("a", "x", "y")], {"tools"}),
        # a change nobody sees: a filtered tool came and went
        ([server("a", "x", exclude=("y",))], [server("a", "x", "y", exclude=("y",))], set()),
        (
            [server("a", offerings=Offerings(tools=(tool("x", description="old"),)))],
            [server("a", offerings=Offerings(tools=(tool("x", description="new"),)))],
            {"tools"},
        ),
        (
            [server("a", offerings=Offerings(prompts=(prompt("p"),), resources=(DOC,)))],
            [server("a", active=False, offerings=Offerings(prompts=(prompt("p"),), resources=(DOC,)))],
            {"prompts", "resources"},
        ),
        (
            [server("a", offerings=Offerings(resource_templates=(TEMPLATE,)))],
            [server("a", offerings=Offerings())],
            {"resources"},
        ),
    ],
)
def test_changed_kinds(before: list[CatalogServer], after: list[CatalogServer], expected: set[str]) -> None:
    assert changed_kinds(build_catalog(before), build_catalog(after)) == expected


def test_server_entry_resolves_the_prefix_from_config() -> None:
    gateway = GatewayConfig(separator=".")
    plain = ServerConfig(name="fs", transport="stdio", command="x")
    custom = ServerConfig.model_validate(
        {"name": "db", "transport": "stdio", "command": "x", "gateway": {"prefix": "", "exclude": ["drop*"]}}
    )
    assert server_entry(plain, gateway, True, Offerings()).prefix == "fs."
    entry = server_entry(custom, gateway, False, Offerings())
    assert (entry.prefix, entry.exclude, entry.active, entry.enabled) == ("", ("drop*",), False, True)
