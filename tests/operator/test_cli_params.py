"""The command line reads ``-p key=value`` by the tool's input schema, and ``stats`` counts the worker's retries."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.client import Orchestrator
from orchestrator.errors import DeadlineExceeded, InvalidCall
from orchestrator.operator.cli import build_parser, collect_params, main, parse_param
from orchestrator.operator.processes import wait_until
from tests.conftest import Stack

PROPERTIES: dict[str, Any] = {
    "value": {"type": "string"},
    "limit": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
    "ratio": {"type": "number"},
    "flag": {"type": ["boolean", "string"]},
}


@pytest.mark.parametrize(("given", "expected"), [
    ("value=2", ("value", "2")),
    ("value=true", ("value", "true")),
    ("value=[1]", ("value", "[1]")),
    ("limit=2", ("limit", 2)),
    ("ratio=2", ("ratio", 2)),
    ("flag=false", ("flag", False)),
    ("unknown=2", ("unknown", 2)),
])
def test_a_value_is_read_as_the_type_the_tool_schema_wants(given: str, expected: tuple[str, Any]) -> None:
    """JSON where the schema allows the parsed type (or says nothing), the text where it wants a string."""
    assert parse_param(given, PROPERTIES) == expected


@pytest.mark.parametrize("given", [
    ["-p", "series_id=1", "-p", "series_id=2"],
    ["-p", "series_id=1", "--json-params", '{"series_id": 2}'],
])
def test_a_parameter_given_twice_is_refused_naming_it(given: list[str]) -> None:
    """Two values for one key (two ``-p``, or ``-p`` and ``--json-params``) is an error, not the last one silently."""
    args = build_parser().parse_args(["call", "sonarr", "sonarr_get_series_by_id", *given])
    with pytest.raises(InvalidCall, match=r"params\.series_id: given twice") as caught:
        collect_params(args)
    assert caught.value.details["field"] == "params.series_id"


@pytest.mark.slow
def test_call_sends_a_number_given_for_a_string_parameter_as_text(stack: Stack, client: Orchestrator,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """``mcp-orch call probe echo -p text=2`` reaches the tool as the string "2", not refused as an integer."""
    client.list_tools("probe", refresh=True)
    assert main(["--config", str(stack.config_path), "call", "probe", "echo", "-p", "text=2"]) == 0
    assert json.loads(capsys.readouterr().out) == {"text": "2", "length": 1}


@pytest.mark.slow
def test_stats_count_the_retries_of_a_call_that_failed_after_retrying(stack: Stack, client: Orchestrator,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A read-only call whose 3 attempts each time out (``attempt_timeout_seconds = 1``) shows 2 retries."""
    tool = "sleep"
    client.reset_breaker("flaky")
    assert client.call_tool("flaky", "echo", {"text": "warm"}).ok  # the session is open: attempts get their time
    main(["--config", str(stack.config_path), "stats", "flaky", "--reset", "--json"])
    capsys.readouterr()
    with pytest.raises(DeadlineExceeded):
        client.call_tool("flaky", tool, {"seconds": 3}, timeout=3.6)
    client.reset_breaker("flaky")

    def counted() -> bool:
        main(["--config", str(stack.config_path), "stats", "flaky", "--tools", "--json"])
        rows = json.loads(capsys.readouterr().out)
        return any(row["tool"] == tool and row["calls"] == 1 for row in rows)

    wait_until(counted, 10, "the call to be counted")
    main(["--config", str(stack.config_path), "stats", "flaky", "--tools", "--json"])
    row = next(row for row in json.loads(capsys.readouterr().out) if row["tool"] == tool)
    assert row["retries"] == 2 and row["failures"] == 1
