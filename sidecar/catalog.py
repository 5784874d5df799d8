"""The gateway's catalog: what active servers offer, as one client sees it, and the way back.

Pure: no I/O, no clock. The gateway feeds it the snapshot (one `CatalogServer` per
configured server, in config order) and gets the exposed lists and an exact map from
each exposed name or URI to the server that owns it and its own name for it.

Names are ``{prefix}{name}`` (the prefix defaults to ``{server}{separator}``), made
valid (``[A-Za-z0-9_.-]``, anything else becomes ``_``) and capped at
``max_name_length`` with a stable hash suffix. Routing never parses a name: it looks
it up. Two servers exposing one name is a collision: the first in config order
keeps it, the others are reported, nothing fails.

Resource URIs of a prefixed server become ``mcp-sidecar://{server}/{uri}`` (templates
too, so an expanded template routes back); a server with prefix ``""`` keeps its URIs
as they are. A URI without our scheme (one a tool result linked to, say) is routed by
exact match, then by the servers' templates, then to the first unprefixed server.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import mcp_types as types
from mcp.shared.uri_template import InvalidUriTemplate, UriTemplate

from .config import GatewayConfig, ServerConfig
from .state import Offerings

__all__ = [
    "SCHEME",
    "Catalog",
    "CatalogServer",
    "Collision",
    "Kind",
    "ListKind",
    "Route",
    "build_catalog",
    "changed_kinds",
    "expose_uri",
    "exposed_name",
    "server_entry",
    "visible",
]

SCHEME = "mcp-sidecar"
_SCHEME_PREFIX = f"{SCHEME}://"
_INVALID = re.compile(r"[^A-Za-z0-9_.-]")
_HASH_LENGTH = 8

Kind = Literal["tool", "prompt", "resource", "resource_template"]
ListKind = Literal["tools", "prompts", "resources"]  # what a list_changed notification names


@dataclass(frozen=True, slots=True)
class CatalogServer:
    """One configured server as the catalog needs it: whether it serves now, what it offers,
    and its exposure rules from the config."""

    name: str
    active: bool
    offerings: Offerings
    prefix: str  # resolved: "" or e.g. "fs__"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    enabled: bool = True

    @property
    def exposed(self) -> bool:
        return self.active and self.enabled


@dataclass(frozen=True, slots=True)
class Route:
    """Where an exposed name leads: the owning server and its own name (or URI) for it."""

    server: str
    name: str


@dataclass(frozen=True, slots=True)
class Collision:
    """An exposed name two offerings wanted; `winner` (first in config order) keeps it."""

    kind: Kind
    exposed: str
    winner: str
    loser: str
    name: str  # the loser's own name (or URI) for it


@dataclass(frozen=True)
class Catalog:
    """What one gateway client sees now, and the exact way back to the owners."""

    servers: tuple[CatalogServer, ...] = ()
    tools: Mapping[str, tuple[types.Tool, Route]] = field(default_factory=dict)
    prompts: Mapping[str, tuple[types.Prompt, Route]] = field(default_factory=dict)
    resources: Mapping[str, tuple[types.Resource, Route]] = field(default_factory=dict)
    resource_templates: Mapping[str, tuple[types.ResourceTemplate, Route]] = field(default_factory=dict)
    collisions: tuple[Collision, ...] = ()

    def list_tools(self) -> list[types.Tool]:
        return [tool for tool, _ in self.tools.values()]

    def list_prompts(self) -> list[types.Prompt]:
        return [prompt for prompt, _ in self.prompts.values()]

    def list_resources(self) -> list[types.Resource]:
        return [resource for resource, _ in self.resources.values()]

    def list_resource_templates(self) -> list[types.ResourceTemplate]:
        return [template for template, _ in self.resource_templates.values()]

    def route_tool(self, name: str) -> Route | None:
        entry = self.tools.get(name)
        return None if entry is None else entry[1]

    def route_prompt(self, name: str) -> Route | None:
        entry = self.prompts.get(name)
        return None if entry is None else entry[1]

    def route_resource(self, uri: str) -> Route | None:
        """The owner of `uri` (a resource URI, an expanded template, or a template itself)."""
        if uri.startswith(_SCHEME_PREFIX):
            server, sep, original = uri[len(_SCHEME_PREFIX) :].partition("/")
            owner = self.server(server)
            if not sep or owner is None or not owner.exposed or owner.prefix == "":
                return None
            return Route(server, original)
        for table in (self.resources, self.resource_templates):
            entry = table.get(uri)
            if entry is not None:
                return entry[1]
        return self._route_foreign(uri)

    def _route_foreign(self, uri: str) -> Route | None:
        """A URI we did not hand out: an owner's exact resource, then its templates, then the
        first unprefixed server (its URIs are passed as they are)."""
        exposed = [server for server in self.servers if server.exposed]
        for server in exposed:
            if any(resource.uri == uri for resource in server.offerings.resources):
                return Route(server.name, uri)
        for server in exposed:
            if any(_matches(template.uri_template, uri) for template in server.offerings.resource_templates):
                return Route(server.name, uri)
        for server in exposed:
            if server.prefix == "":
                return Route(server.name, uri)
        return None

    def server(self, name: str) -> CatalogServer | None:
        return next((server for server in self.servers if server.name == name), None)

    def exposed_counts(self) -> dict[str, dict[str, int]]:
        """Per configured server: how many tools, prompts, resources and templates it shows now."""
        counts = {
            server.name: {"tools": 0, "prompts": 0, "resources": 0, "resource_templates": 0}
            for server in self.servers
        }
        for kind, table in (
            ("tools", self.tools),
            ("prompts", self.prompts),
            ("resources", self.resources),
            ("resource_templates", self.resource_templates),
        ):
            for _, route in table.values():
                counts[route.server][kind] += 1
        return counts


def _matches(template: str, uri: str) -> bool:
    try:
        return UriTemplate.parse(template).match(uri) is not None
    except (InvalidUriTemplate, ValueError):
        return False  # a server's broken template never matches, and never breaks routing


def exposed_name(prefix: str, name: str, max_length: int) -> str:
    """``prefix + name``, made valid, and capped with a stable hash of the unmodified text."""
    full = prefix + name
    clean = _INVALID.sub("_", full) or "_"
    if len(clean) <= max_length:
        return clean
    digest = hashlib.sha256(full.encode()).hexdigest()[:_HASH_LENGTH]
    return f"{clean[: max_length - _HASH_LENGTH - 1]}_{digest}"


def expose_uri(server: str, uri: str, prefix: str) -> str:
    """A resource URI (or template) as the gateway shows it; reversed by `Catalog.route_resource`."""
    return uri if prefix == "" else f"{_SCHEME_PREFIX}{server}/{uri}"


def visible(name: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """Whether a server's own tool or prompt name passes its filters (exclude wins)."""
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in exclude):
        return False
    return not include or any(fnmatch.fnmatchcase(name, pattern) for pattern in include)


def server_entry(
    config: ServerConfig, gateway: GatewayConfig, active: bool, offerings: Offerings
) -> CatalogServer:
    """A `CatalogServer` from a server's config, its state and its offerings."""
    rules = config.gateway
    prefix = f"{config.name}{gateway.separator}" if rules.prefix is None else rules.prefix
    return CatalogServer(
        name=config.name,
        active=active,
        offerings=offerings,
        prefix=prefix,
        include=rules.include,
        exclude=rules.exclude,
        enabled=rules.enabled,
    )


_Table = dict[str, tuple[Any, Route]]


class _Builder:
    """Fills the tables in config order, noting every collision."""

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length
        self.collisions: list[Collision] = []
        self.tables: dict[Kind, _Table] = {"tool": {}, "prompt": {}, "resource": {}, "resource_template": {}}

    def add(self, kind: Kind, key: str, item: Any, route: Route) -> None:
        table = self.tables[kind]
        held = table.get(key)
        if held is None:
            table[key] = (item, route)
        else:
            self.collisions.append(Collision(kind, key, held[1].server, route.server, route.name))

    def named(self, kind: Kind, server: CatalogServer, items: Iterable[types.Tool | types.Prompt]) -> None:
        for item in items:
            if visible(item.name, server.include, server.exclude):
                exposed = exposed_name(server.prefix, item.name, self.max_length)
                route = Route(server.name, item.name)
                self.add(kind, exposed, item.model_copy(update={"name": exposed}), route)

    def uris(self, server: CatalogServer) -> None:
        for resource in server.offerings.resources:
            uri = expose_uri(server.name, resource.uri, server.prefix)
            route = Route(server.name, resource.uri)
            self.add("resource", uri, resource.model_copy(update={"uri": uri}), route)
        for template in server.offerings.resource_templates:
            uri = expose_uri(server.name, template.uri_template, server.prefix)
            route = Route(server.name, template.uri_template)
            self.add("resource_template", uri, template.model_copy(update={"uri_template": uri}), route)


def build_catalog(servers: Sequence[CatalogServer], max_name_length: int = 64) -> Catalog:
    """The catalog of `servers` (config order decides collisions)."""
    builder = _Builder(max_name_length)
    for server in servers:
        if server.exposed:
            builder.named("tool", server, server.offerings.tools)
            builder.named("prompt", server, server.offerings.prompts)
            builder.uris(server)
    tables = builder.tables
    return Catalog(
        servers=tuple(servers),
        tools=tables["tool"],
        prompts=tables["prompt"],
        resources=tables["resource"],
        resource_templates=tables["resource_template"],
        collisions=tuple(builder.collisions),
    )


def changed_kinds(old: Catalog, new: Catalog) -> frozenset[ListKind]:
    """Which lists a client would now see differently (names, descriptions, schemas, anything)."""
    changed: set[ListKind] = set()
    if old.list_tools() != new.list_tools():
        changed.add("tools")
    if old.list_prompts() != new.list_prompts():
        changed.add("prompts")
    if old.list_resources() != new.list_resources() or (
        old.list_resource_templates() != new.list_resource_templates()
    ):
        changed.add("resources")
    return frozenset(changed)
