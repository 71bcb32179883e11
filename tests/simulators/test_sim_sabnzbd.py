"""The SABnzbd simulator answers like the real SABnzbd 5.0.1 recorded in ``tests/contracts/sabnzbd/``.

The recordings (a copy of the project's shared ``upstream-api/sabnzbd`` captures, so CI on a clean
clone has them) are replayed request by request against a fresh simulator: every reply must carry the
same keys in the same order with the same value types, recursively (numbers as strings where SABnzbd
sends strings).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from starlette.testclient import TestClient

import upstream_sim

KEY = "contract-key"
SAMPLES = Path(__file__).resolve().parents[1] / "contracts" / "sabnzbd"
INDEX = json.loads((SAMPLES / "index.json").read_text())["samples"]
UNSIMULATED = {
    "addlocalfile": "adding NZB files: no tool adds jobs",
    "warnings": "no tool reads warnings",
    "get_cats": "no tool reads categories alone",
    "get_scripts": "no tool reads scripts",
    "server_stats": "no tool reads byte statistics",
    "config": "timed pause (config&name=set_pause): no tool sets it",
}
"""Modes the recordings cover that the simulator does not serve, and why."""
ADDS_A_SERVER = "set_config_servers_add"
"""``set_config`` with ``section=servers&name=…`` adds a news server; no tool does that."""
QUEUED = ("SABnzbd_nzo_bxi0ut5b", "SABnzbd_nzo_h48kaz5o", "SABnzbd_nzo_ml17khzy")
"""The jobs of the recorded ``queue.json``, the simulator's starting queue."""
SETUP = {
    "fullstatus_while_paused": [{"mode": "pause"}],
    "fullstatus_idle": [{"mode": "queue", "name": "delete", "value": nzo_id} for nzo_id in QUEUED],
}
"""Requests that bring a fresh simulator into the state a sample was recorded in."""
REWRITES = {"retry": {"value": "SABnzbd_nzo_0034cyqr"}}
"""The retried job's id before the retry; the simulator starts from ``history.json``, captured after it,
where the failed job already carries its new id."""


def shape(value: Any) -> Any:
    """Keys and value types, recursively; a list's shape is its first element's (``[]`` when empty)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def differences(real: Any, simulated: Any, where: str = "") -> list[str]:
    """Where the simulated reply's shape departs from the real one: keys (in order) and value types; an empty
    list on either side matches."""
    if isinstance(real, dict) and isinstance(simulated, dict):
        found = [f"{where}: missing {sorted(real.keys() - simulated.keys())}"] if real.keys() - simulated.keys() else []
        if simulated.keys() - real.keys():
            found.append(f"{where}: extra {sorted(simulated.keys() - real.keys())}")
        if not found and list(real) != list(simulated):
            found.append(f"{where}: keys in another order than SABnzbd's")
        for key in real.keys() & simulated.keys():
            found += differences(real[key], simulated[key], f"{where}.{key}")
        return found
    if isinstance(real, list) and isinstance(simulated, list):
        if not real or not simulated:
            return []
        return [problem for item in simulated for problem in differences(real[0], item, f"{where}[]")]
    if shape(real) != shape(simulated):
        return [f"{where}: real {shape(real)}, simulated {shape(simulated)}"]
    return []


def replayed() -> list[dict[str, Any]]:
    """The recorded samples the simulator serves."""
    samples = []
    for sample in INDEX:
        mode = dict(parse_qsl(urlsplit(sample["request"].split(" ", 1)[1]).query)).get("mode", "")
        if mode not in UNSIMULATED and sample["name"] != ADDS_A_SERVER:
            samples.append(sample)
    return samples


def request_params(sample: dict[str, Any]) -> dict[str, str]:
    """The sample's query with this test's key in place of the placeholders."""
    query = urlsplit(sample["request"].split(" ", 1)[1]).query
    params = dict(parse_qsl(query, keep_blank_values=True))
    if params.get("apikey") == "<apikey>":
        params["apikey"] = KEY
    elif params.get("apikey") == "<wrong-apikey>":
        params["apikey"] = "wrong-" + KEY
    return {**params, **REWRITES.get(sample["name"], {})}


def fresh() -> TestClient:
    return TestClient(upstream_sim.create("sabnzbd", KEY).app)


def test_every_recorded_mode_is_replayed_or_named_as_not_simulated() -> None:
    """Each recording is checked below or its mode is listed, with a reason, as one no tool uses."""
    modes = {dict(parse_qsl(urlsplit(s["request"].split(" ", 1)[1]).query)).get("mode", "") for s in INDEX}
    assert set(UNSIMULATED) <= modes
    assert len(replayed()) >= 60


@pytest.mark.parametrize("sample", replayed(), ids=lambda sample: sample["name"])
def test_the_simulator_answers_each_recorded_request_with_the_real_shape(sample: dict[str, Any]) -> None:
    """Same HTTP status, and for JSON the same keys (in order) and value types at every level; for text the
    same body."""
    client = fresh()
    for setup in SETUP.get(sample["name"], []):
        assert client.get("/api", params={"apikey": KEY, "output": "json", **setup}).status_code == 200
    reply = client.get("/api", params=request_params(sample))
    assert reply.status_code == sample["http_status"]
    recorded = (SAMPLES / sample["file"]).read_text()
    if sample["file"].endswith(".txt"):
        assert reply.text == recorded.strip()
        assert reply.headers["content-type"].startswith("text/html")
        return
    assert differences(json.loads(recorded), reply.json()) == []


def queue(client: TestClient, **params: str) -> dict[str, Any]:
    return client.get("/api", params={"apikey": KEY, "output": "json", "mode": "queue", **params}).json()["queue"]


def history(client: TestClient) -> dict[str, Any]:
    return client.get("/api", params={"apikey": KEY, "output": "json", "mode": "history"}).json()["history"]


def test_a_start_past_the_end_answers_every_slot_like_sabnzbd() -> None:
    """SABnzbd answers a start past the last slot with the whole queue, not an empty page."""
    client = fresh()
    assert [slot["nzo_id"] for slot in queue(client)["slots"]] == list(QUEUED)
    assert [slot["nzo_id"] for slot in queue(client, start="3")["slots"]] == list(QUEUED)
    assert [slot["nzo_id"] for slot in queue(client, start="99", limit="2")["slots"]] == list(QUEUED[:2])


def test_no_job_is_listed_in_the_queue_and_history_at_once() -> None:
    """A job lives in one place: the starting queue and history share no nzo_id, nor after jobs finish."""
    simulator = upstream_sim.create("sabnzbd", KEY)
    client = TestClient(simulator.app)
    for _ in range(4):
        queued = {slot["nzo_id"] for slot in queue(client)["slots"]}
        assert queued and not queued & {slot["nzo_id"] for slot in history(client)["slots"]}
        simulator.state.clock.advance(30)
    assert len(queue(client)["slots"]) < len(QUEUED)


def test_the_slot_counts_follow_sabnzbds_rules() -> None:
    """noofslots counts every job; noofslots_total only those not paused one by one (2 of 3 in the
    recorded queue.json, where one job is paused), and nzo_ids narrows the listing and noofslots."""
    client = fresh()
    listed = queue(client)
    recorded = json.loads((SAMPLES / "queue.json").read_text())["queue"]
    assert (listed["noofslots"], listed["noofslots_total"]) == (recorded["noofslots"], recorded["noofslots_total"])
    assert listed["noofslots"] == len(listed["slots"])
    paused = next(slot["nzo_id"] for slot in listed["slots"] if slot["status"] == "Paused")
    narrowed = queue(client, nzo_ids=paused)
    assert [slot["nzo_id"] for slot in narrowed["slots"]] == [paused] and narrowed["noofslots"] == 1
