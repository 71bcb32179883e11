"""A generated corpus of bad calls: every one gets a clear typed error and nothing is enqueued."""

from __future__ import annotations

import math
from typing import Any

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.client import Orchestrator
from orchestrator.config import Settings
from orchestrator.errors import InvalidCall

SERVERS = {"sonarr": {"aliases": ["tv"], "transport": {"type": "stdio", "command": "python"}},
           "radarr": {"enabled": False, "transport": {"type": "stdio", "command": "python"}}}
QUEUES = [b"mcp.sonarr", b"mcp.radarr", b"mcp.default", b"celery"]

json_leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.floats(allow_nan=False,
                                                                                         allow_infinity=False)
good_params = st.dictionaries(st.text(max_size=8), json_leaf, max_size=3)
non_json = st.sampled_from([object(), {1, 2}, b"bytes", math.nan, math.inf, -math.inf, complex(1, 2), range(3)])
bad_params = (
    st.lists(json_leaf, max_size=3) | st.text(max_size=8) | st.integers() | st.tuples(st.integers())
    | st.dictionaries(st.text(max_size=8), non_json, min_size=1, max_size=2)
    | st.dictionaries(st.integers(), json_leaf, min_size=1, max_size=2)
    | st.builds(lambda inner: {"nested": {"deeper": [inner]}}, non_json)
)
bad_servers = (st.text(max_size=12).filter(lambda s: s.strip().lower() not in ("sonarr", "tv"))
               | st.none() | st.integers() | st.just("radarr") | st.just("   "))
bad_tools = st.sampled_from(["", "   ", None, 3, ["x"], {"name": "x"}])
bad_timeouts = (st.floats(max_value=0) | st.floats(min_value=601, allow_infinity=True) | st.just(math.nan)
                | st.text(max_size=4) | st.booleans())


@st.composite
def bad_calls(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A call with at least one bad field (which one is drawn), the rest valid."""
    field = draw(st.sampled_from(["server", "tool", "params", "timeout"]))
    call = {"server": draw(st.sampled_from(["sonarr", "tv", "SONARR"])),
            "tool": draw(st.sampled_from(["sonarr_get_series", "x"])),
            "params": draw(good_params), "timeout": draw(st.none() | st.floats(min_value=0.1, max_value=600))}
    call[field] = draw({"server": bad_servers, "tool": bad_tools, "params": bad_params,
                        "timeout": bad_timeouts}[field])
    return field, call


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=bad_calls())
def test_every_generated_bad_call_is_refused_with_its_field_named_and_nothing_enqueued(
        redis_url: str, case: tuple[str, dict[str, Any]]) -> None:
    """Hundreds of generated bad calls each raise InvalidCall naming the bad field; no queue grows."""
    field, call = case
    client = Orchestrator(Settings(broker_url=redis_url, servers=SERVERS))
    conn = redis.Redis.from_url(redis_url)
    try:
        try:
            client.call_tool(call["server"], call["tool"], call["params"], call["timeout"])
        except InvalidCall as exc:
            assert exc.field == field, (exc.field, field, call)
            assert str(exc).startswith(f"{field}:")
        else:
            raise AssertionError(f"accepted a bad call: {call!r}")
        assert sum(conn.llen(queue) for queue in QUEUES) == 0
    finally:
        client.close()
        conn.close()
