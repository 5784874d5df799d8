"""The HTTP probe's decisions: what it sends, what an answer means. No I/O."""

from __future__ import annotations

import json

import pytest

from sidecar.health import ProbeResult, judge
from sidecar.http_probe import (
    KEEPALIVE,
    ProbeFailed,
    ProbeRedirected,
    SessionGone,
    judge_status,
    probe_request,
    proxy_for,
    read_answer,
)

META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}


def test_an_initialize_era_probe_is_a_ping_on_the_session_with_the_configured_headers() -> None:
    request = probe_request("2025-11-25", True, "sid-1", {"Authorization": "Bearer x"}, META)
    assert json.loads(request.body) == {"jsonrpc": "2.0", "id": request.request_id, "method": "ping"}
    assert request.headers["Mcp-Session-Id"] == "sid-1"
    assert request.headers["MCP-Protocol-Version"] == "2025-11-25"
    assert request.headers["Authorization"] == "Bearer x"
    assert (
        "application/json" in request.headers["Accept"] and "text/event-stream" in request.headers["Accept"]
    )


def test_a_2026_07_28_probe_is_a_stateless_discover_stamped_like_the_sdks() -> None:
    request = probe_request("2026-07-28", False, None, {}, META)
    message = json.loads(request.body)
    assert message["method"] == "server/discover"
    assert message["params"] == {"_meta": META}
    assert request.headers["Mcp-Method"] == "server/discover"
    assert "Mcp-Session-Id" not in request.headers


def test_probe_ids_are_strings_of_their_own_never_the_sdks_integers() -> None:
    first, second = (probe_request("2025-11-25", True, "s", {}, META) for _ in range(2))
    assert isinstance(json.loads(first.body)["id"], str)
    assert first.request_id != second.request_id


@pytest.mark.parametrize(
    ("status", "carried_session", "raised"),
    [
        (200, True, None),
        (202, False, None),
        (307, True, ProbeRedirected),
        (404, True, SessionGone),
        (404, False, ProbeFailed),
        (401, True, ProbeFailed),
        (500, True, ProbeFailed),
    ],
)
def test_what_a_status_means(status: int, carried_session: bool, raised: type[Exception] | None) -> None:
    if raised is None:
        assert judge_status(status, carried_session) == "read"
    else:
        with pytest.raises(raised):
            judge_status(status, carried_session)


def test_session_gone_is_a_probe_failure() -> None:
    assert issubclass(SessionGone, ProbeFailed)


def test_a_json_answer_is_read_whole() -> None:
    assert read_answer("application/json", b'{"jsonrpc":"2.0","id":"p1","result":{}}', "p1")
    with pytest.raises(ProbeFailed, match="-32601"):
        read_answer(
            "application/json", b'{"jsonrpc":"2.0","id":"p1","error":{"code":-32601,"message":"x"}}', "p1"
        )
    with pytest.raises(ProbeFailed):
        read_answer("application/json", b'{"jsonrpc":"2.0","id":"other","result":{}}', "p1")


def test_an_event_stream_answer_is_found_among_other_messages_whatever_the_line_ends() -> None:
    note = b'event: message\r\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{}}\r\n\r\n'
    answer = b'event: message\r\ndata: {"jsonrpc":"2.0","id":"p2","result":{}}\r\n\r\n'
    assert not read_answer("text/event-stream", note, "p2")
    assert read_answer("text/event-stream", note + answer, "p2")
    assert read_answer("text/event-stream", answer.replace(b"\r\n", b"\n"), "p2")
    assert read_answer("text/event-stream", answer.replace(b"\r\n", b"\r"), "p2")


def test_an_event_not_yet_complete_is_not_read() -> None:
    partial = b'event: message\ndata: {"jsonrpc":"2.0","id":"p3","res'
    assert not read_answer("text/event-stream", partial, "p3")
    assert not read_answer("text/event-stream", partial + b'ult":{}}\n', "p3")
    assert read_answer("text/event-stream", partial + b'ult":{}}\n\n', "p3")


def test_an_error_answered_on_the_stream_fails_the_probe() -> None:
    body = b'data: {"jsonrpc":"2.0","id":"p4","error":{"code":-32000,"message":"busy"}}\n\n'
    with pytest.raises(ProbeFailed, match="busy"):
        read_answer("text/event-stream", body, "p4")


def test_probes_take_the_proxy_the_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)
    proxy_for.cache_clear()
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    try:
        assert proxy_for("https://mcp.example/mcp") == "http://proxy.example:3128"
        assert proxy_for("https://internal.example/mcp") is None
        assert proxy_for("http://mcp.example/mcp") is None
    finally:
        proxy_for.cache_clear()


def test_we_close_idle_connections_before_common_servers_do() -> None:
    # uvicorn, Node and hypercorn close idle keep-alive connections after 5 s; a request sent
    # in that instant fails with a reset that ends the SDK's whole session.
    assert KEEPALIVE < 5.0


def test_a_forgotten_session_is_unhealthy_at_the_first_failure() -> None:
    gone = ProbeResult(0.01, "probe_error", "HTTP 404", session_gone=True)
    assert judge(0, gone, threshold=3).unhealthy
    plain = ProbeResult(0.01, "probe_error", "HTTP 500")
    assert not judge(0, plain, threshold=3).unhealthy
    assert judge(2, plain, threshold=3).unhealthy
