"""The async client's loop publisher writes to Redis exactly what Celery and kombu write for the same call."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator.aio.publisher import CallMessages
from orchestrator.client import Orchestrator
from orchestrator.config import load_settings
from orchestrator.validation import prepare_call
from orchestrator.wire import CALL_TOOL

CONFIG = """
broker_url = "{broker}"
[servers.probe.transport]
type = "stdio"
command = "python"
"""


def decoded(raw: bytes) -> dict[str, Any]:
    """A kombu message with its base64 JSON body decoded; its per-publish delivery tag checked and left out."""
    message = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    uuid.UUID(message["properties"].pop("delivery_tag"))
    return message


PARAMS = {
    "plain": {"a": 1, "b": [2.5, True, None], "c": {"d": "é x"}},
    "quoted, escaped and deep": {"a": "it's \"q\"\n", "b": [2, {"c": ["x"]}]},
    "long (kwargsrepr is cut)": {"a": "x " * 600},
}


@pytest.mark.parametrize("params", PARAMS.values(), ids=PARAMS.keys())
def test_a_call_message_and_its_sent_event_are_the_ones_celery_and_kombu_write(
        redis_url: str, tmp_path: Path, params: dict[str, Any]) -> None:
    """Same task message in the queue's list (headers, properties, body) and same ``task-sent`` event on the
    same fanout channel, up to the per-publish delivery tag, the TTL left and the event's clock and time."""
    config = tmp_path / "orchestrator.toml"
    config.write_text(CONFIG.format(broker=redis_url))
    settings = load_settings(config)
    client = Orchestrator(settings)
    conn = redis.Redis.from_url(redis_url)
    db = conn.connection_pool.connection_kwargs["db"]
    messages = CallMessages(client.app, db)
    events = conn.pubsub()
    events.subscribe(messages.events_channel)
    try:
        assert events.get_message(timeout=5)["type"] == "subscribe"
        call = prepare_call(settings, "probe", "add", params, 30)
        client._send(call, CALL_TOOL, call.task_kwargs())  # Celery's send_task through kombu's Redis transport
        celery_message = decoded(conn.rpop("mcp.probe"))
        task_id = celery_message["headers"]["id"]
        message, event = messages.build(call, task_id)
        assert event is not None
        conn.lpush("mcp.probe", message)
        conn.publish(messages.events_channel, event)
        ours = decoded(conn.rpop("mcp.probe"))

        expirations = [int(m["properties"].pop("expiration")) for m in (celery_message, ours)]
        assert abs(expirations[0] - expirations[1]) < 2000 and expirations[0] > 25_000
        assert ours == celery_message

        sent = [decoded(events.get_message(timeout=5)["data"]) for _ in range(2)]
        clocks = [event["body"].pop("clock") for event in sent]
        times = [event["body"].pop("timestamp") for event in sent]
        assert clocks[1] > clocks[0] and abs(times[1] - times[0]) < 2
        assert sent[0]["body"]["uuid"] == task_id and sent[1] == sent[0]
    finally:
        events.close()
        conn.close()
        client.close()
