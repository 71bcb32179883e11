"""Flower tells a failed tool call apart (issue 16, item 4): a call whose tool answered with ``isError``
is stored as FAILURE with its typed error, so Flower shows it failed and its dashboard counts it, while
the client still gets the same ``ToolResult`` (``raise_on_error=False``) or the same typed error.

A real compact stack (``mcp-orch stack``): Redis, a worker, the bundled servers and simulators, Flower;
the test reads Flower only through its HTTP API."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator import Orchestrator, ToolReturnedError
from orchestrator.config import load_settings
from tests.operator.test_compact_stack import broker_url
from tests.operator.test_operator_stack import RunningStack, launched

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with launched(tmp_path_factory.mktemp("flower-failures")) as running:
        yield running


@pytest.fixture
def client(stack: RunningStack) -> Iterator[Orchestrator]:
    orchestrator = Orchestrator(load_settings(broker_url=broker_url(stack)))
    yield orchestrator
    orchestrator.close()


def flower_json(stack: RunningStack, path: str) -> Any:
    status, body = stack.get(f"{stack.urls['flower']}{path}", auth=stack.login)
    assert status == 200, body
    return json.loads(body)


def failed_count(stack: RunningStack) -> int:
    """The dashboard's Failed column summed over workers (Flower counts ``task-failed`` events)."""
    return sum(worker.get("task-failed", 0) for worker in flower_json(stack, "/workers?json=1")["data"])


def flower_tasks(stack: RunningStack, task_ids: set[str], timeout: float = 20) -> dict[str, dict[str, Any]]:
    """Flower's view of ``task_ids`` once every one of them has finished."""
    deadline = time.monotonic() + timeout
    while True:
        tasks = flower_json(stack, "/api/tasks?limit=500")
        seen = {task_id: tasks[task_id] for task_id in task_ids if task_id in tasks}
        if len(seen) == len(task_ids) and all(task["state"] in ("SUCCESS", "FAILURE") for task in seen.values()):
            return seen
        assert time.monotonic() < deadline, f"Flower never showed every call finished: {seen}"
        time.sleep(0.5)


def test_a_tool_error_is_failure_in_flower_and_counted_while_the_client_gets_the_same_answer(
        stack: RunningStack, client: Orchestrator) -> None:
    """An upstream 404 (``[upstream_not_found]``) shows as FAILURE with ``ToolReturnedError`` in Flower's
    task list and raises the dashboard's Failed count; a successful call stays SUCCESS. The client still
    returns the result with ``ok=False`` when asked, and raises ``ToolReturnedError`` (not a subclass)
    carrying the result otherwise; a batch gives the same error as its outcome."""
    failed_before = failed_count(stack)
    answered = client.call_tool("radarr", "radarr_get_movie_by_id", {"movie_id": 404}, raise_on_error=False)
    assert not answered.ok and answered.is_error and answered.error_text.startswith("[upstream_not_found] ")
    assert answered.server == "radarr" and answered.tool == "radarr_get_movie_by_id" and answered.task_id
    with pytest.raises(ToolReturnedError) as raised:
        client.call_tool("radarr", "get_movie_by_id", {"movie_id": 404})
    assert type(raised.value) is ToolReturnedError
    assert raised.value.result["is_error"] is True and raised.value.tool == "radarr_get_movie_by_id"
    assert raised.value.message.startswith("[upstream_not_found] ")
    batch = client.call_tools_parallel([{"server": "radarr", "tool": "radarr_get_movie_by_id",
                                         "params": {"movie_id": 404}},
                                        {"server": "sabnzbd", "tool": "sabnzbd_get_queue"}])
    assert type(batch[0]) is ToolReturnedError and batch[0].result["is_error"] is True
    succeeded = client.call_tool("sabnzbd", "sabnzbd_get_queue")
    assert succeeded.ok

    tasks = flower_tasks(stack, {answered.task_id, raised.value.task_id, batch[0].task_id, succeeded.task_id})
    for task_id in (answered.task_id, raised.value.task_id, batch[0].task_id):
        assert tasks[task_id]["state"] == "FAILURE", tasks[task_id]
        assert tasks[task_id]["exception"].startswith("ToolReturnedError("), tasks[task_id]
    assert tasks[succeeded.task_id]["state"] == "SUCCESS"
    deadline = time.monotonic() + 20
    while failed_count(stack) < failed_before + 3:
        assert time.monotonic() < deadline, f"the dashboard counted {failed_count(stack) - failed_before} failures"
        time.sleep(0.5)

