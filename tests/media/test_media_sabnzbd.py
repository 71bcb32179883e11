"""The sabnzbd MCP server over stdio against the simulated SABnzbd: every tool, real processes."""

from __future__ import annotations

import json
from importlib import metadata

import pytest

from tests.support.media import Served
from upstream_sim.sabnzbd import NOTIFICATION_SECRETS

READ_TOOL = ("sabnzbd_get_queue", {})
"""A cheap read-only call (tests/media/test_media_errors.py calls it with a wrong key)."""
TOOLS = {
    "sabnzbd_get_queue",
    "sabnzbd_get_history",
    "sabnzbd_retry_download",
    "sabnzbd_pause_queue",
    "sabnzbd_resume_queue",
    "sabnzbd_pause_download",
    "sabnzbd_resume_download",
    "sabnzbd_delete_download",
    "sabnzbd_get_status",
    "sabnzbd_get_config",
    "sabnzbd_set_config",
}


def slots(sab: Served) -> dict[str, dict]:
    return {slot["nzo_id"]: slot for slot in sab.ok("sabnzbd_get_queue")["queue"]["slots"]}


def test_server_lists_exactly_autoarrs_sabnzbd_tools_with_output_schemas(sab: Served) -> None:
    """The server offers AutoArr's 11 SABnzbd tools, each with an output schema and annotations."""
    sab.assert_lists_exactly(TOOLS)


def test_queue_shows_slots_and_progresses_as_time_passes(sab: Served) -> None:
    """The queue lists SABnzbd's string-typed slots and its megabytes left shrink over simulated time."""
    before = sab.ok("sabnzbd_get_queue")["queue"]
    assert before["slots"][0]["filename"] == "Another.Show.S02E05.1080p.WEB.h264-GRP"
    assert isinstance(before["mbleft"], str)
    sab.sim.state.clock.advance(10)
    after = sab.ok("sabnzbd_get_queue")["queue"]
    assert float(after["mbleft"]) < float(before["mbleft"])


def test_queue_honours_start_and_limit(sab: Served) -> None:
    """start and limit select a window of slots."""
    queue = sab.ok("sabnzbd_get_queue", {"start": 1, "limit": 1})["queue"]
    assert [slot["index"] for slot in queue["slots"]] == [1]


def test_history_filters_failed_jobs_and_categories(sab: Served) -> None:
    """failed_only keeps only Failed jobs and category keeps only that category."""
    failed = sab.ok("sabnzbd_get_history", {"failed_only": True})["history"]["slots"]
    assert failed and {slot["status"] for slot in failed} == {"Failed"}
    tv = sab.ok("sabnzbd_get_history", {"category": "tv"})["history"]["slots"]
    assert tv and {slot["category"] for slot in tv} == {"tv"}


def test_retrying_a_failed_job_requeues_it_under_a_new_id(sab: Served) -> None:
    """A retried failed job leaves history and re-enters the queue with the new nzo_id."""
    failed = sab.ok("sabnzbd_get_history", {"failed_only": True})["history"]["slots"][0]
    reply = sab.ok("sabnzbd_retry_download", {"nzo_id": failed["nzo_id"]})
    assert reply["status"] is True and reply["nzo_id"] != failed["nzo_id"]
    assert slots(sab)[reply["nzo_id"]]["filename"] == failed["name"]


def test_retrying_an_unknown_job_is_a_not_found_error(sab: Served) -> None:
    """SABnzbd's in-band 'item does not exist' becomes an upstream_not_found tool error."""
    text = sab.fails("sabnzbd_retry_download", {"nzo_id": "SABnzbd_nzo_missing"}, tag="upstream_not_found")
    assert "item does not exist" in text


def test_pausing_and_resuming_the_queue_changes_its_status(sab: Served) -> None:
    """Pausing the whole queue shows it Paused with Queued slots; resuming clears that."""
    assert sab.ok("sabnzbd_pause_queue") == {"status": True}
    queue = sab.ok("sabnzbd_get_queue")["queue"]
    assert queue["paused"] is True and queue["status"] == "Paused"
    assert {slot["status"] for slot in queue["slots"]} == {"Queued"}
    assert sab.ok("sabnzbd_resume_queue") == {"status": True}
    assert sab.ok("sabnzbd_get_queue")["queue"]["paused"] is False


def test_pausing_and_resuming_one_job_changes_only_that_slot(sab: Served) -> None:
    """A paused job shows Paused and downloads again once resumed."""
    nzo_id = next(iter(slots(sab)))
    assert sab.ok("sabnzbd_pause_download", {"nzo_id": nzo_id}) == {"status": True, "nzo_ids": [nzo_id]}
    assert slots(sab)[nzo_id]["status"] == "Paused"
    assert sab.ok("sabnzbd_resume_download", {"nzo_id": nzo_id})["nzo_ids"] == [nzo_id]
    assert slots(sab)[nzo_id]["status"] == "Downloading"


def test_deleting_a_job_removes_it_and_a_second_delete_is_not_found(sab: Served) -> None:
    """Delete removes the job from the queue; deleting it again is an upstream_not_found error."""
    nzo_id = list(slots(sab))[-1]
    assert sab.ok("sabnzbd_delete_download", {"nzo_id": nzo_id, "delete_files": True})["nzo_ids"] == [nzo_id]
    assert nzo_id not in slots(sab)
    sab.fails("sabnzbd_delete_download", {"nzo_id": nzo_id}, tag="upstream_not_found")


def test_status_masks_the_api_key(sab: Served) -> None:
    """fullstatus echoes the API key upstream; the tool returns it masked."""
    status = sab.ok("sabnzbd_get_status")["status"]
    assert status["version"] == "5.0.1"
    assert status["apikey"] == "***"


def test_config_masks_keys_and_passwords(sab: Served) -> None:
    """get_config returns the config with api_key, nzb_key and server passwords masked."""
    config = sab.ok("sabnzbd_get_config")["config"]
    assert config["misc"]["api_key"] == "***" and config["misc"]["nzb_key"] == "***"
    assert config["servers"][0]["password"] == "***"
    assert list(sab.ok("sabnzbd_get_config", {"section": "categories"})["config"]) == ["categories"]


def test_setting_a_config_value_stores_it_with_its_type(sab: Served) -> None:
    """set_config answers with the stored value, converted to the setting's type."""
    reply = sab.ok("sabnzbd_set_config", {"section": "misc", "keyword": "refresh_rate", "value": "2"})
    assert reply == {"config": {"misc": {"refresh_rate": 2}}}
    assert sab.ok("sabnzbd_get_config", {"section": "misc"})["config"]["misc"]["refresh_rate"] == 2


def test_setting_an_unknown_config_item_is_a_not_found_error(sab: Served) -> None:
    """SABnzbd's 'Config item does not exist' becomes an upstream_not_found tool error."""
    sab.fails("sabnzbd_set_config", {"section": "misc", "keyword": "nope", "value": "1"}, tag="upstream_not_found")


@pytest.mark.parametrize("arguments", [{"start": -1}, {"limit": 0}, {"start": "zero"}])
def test_out_of_range_paging_is_refused_as_invalid_arguments(sab: Served, arguments: dict) -> None:
    """start must be >= 0 and limit > 0, checked before any upstream call."""
    text = sab.fails("sabnzbd_get_queue", arguments, tag="invalid_arguments")
    assert next(iter(arguments)) in text


def test_server_reports_the_package_version_in_its_server_info(sab: Served) -> None:
    """initialize's serverInfo carries the installed package version, not the SDK's empty default."""
    info = sab.client.client.server_info
    assert info.name == "sabnzbd" and info.version == metadata.version("autoarr-mcp-orchestrator")


@pytest.mark.parametrize("tool", ["sabnzbd_pause_download", "sabnzbd_resume_download"])
def test_pausing_or_resuming_a_job_the_queue_does_not_hold_is_not_found(sab: Served, tool: str) -> None:
    """SABnzbd says status true for any id; the server asks the queue first, so an unknown id or a job
    already in history is upstream_not_found, and no pause or resume is sent for it."""
    finished = sab.ok("sabnzbd_get_history")["history"]["slots"][0]["nzo_id"]
    for nzo_id in ("SABnzbd_nzo_doesnotexist", finished):
        sab.sim.reset_stats()
        text = sab.fails(tool, {"nzo_id": nzo_id}, tag="upstream_not_found")
        assert nzo_id in text
        assert sab.sim.stats()["total"] == 1


def test_config_and_status_mask_notification_secrets_and_url_credentials(sab: Served) -> None:
    """Apprise URLs, notification tokens, keys and passwords, and credentials inside URLs come back as
    whole-value masks from get_config, and none of them appears in fullstatus; the JSON stays valid and
    non-secret settings stay."""
    result = sab.client.call("sabnzbd_get_config")
    config = result.structured_content["config"]
    for section, settings in NOTIFICATION_SECRETS.items():
        assert {key: config[section][key] for key in settings} == dict.fromkeys(settings, "***"), section
    assert config["apprise"]["apprise_target_failed_enable"] == 1
    assert config["pushover"]["pushover_emergency_expire"] == 3600
    seen = json.dumps(result.structured_content) + json.dumps(sab.ok("sabnzbd_get_status")["status"])
    for settings in NOTIFICATION_SECRETS.values():
        for secret in settings.values():
            assert secret not in seen and secret.split("://")[-1] not in seen
    assert json.loads(result.content[0].text)["config"]["misc"]["email_pwd"] == "***"
