"""The tool catalog on a real Redis: replace, read, and params checked against cached schemas."""

from __future__ import annotations

import time

import pytest
import redis

from orchestrator import keys
from orchestrator.catalog import Catalog, catalog_digest
from orchestrator.config import Settings
from orchestrator.errors import InvalidCall
from orchestrator.validation import prepare_call

SERIES = {
    "name": "sonarr_get_series",
    "inputSchema": {
        "type": "object",
        "properties": {
            "series_id": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "filter": {"type": "object", "properties": {"monitored": {"type": "boolean"}},
                       "additionalProperties": False},
        },
        "required": ["series_id"],
    },
    "annotations": {"readOnlyHint": True},
}
FREE = {"name": "free", "inputSchema": {"type": "object"}}


@pytest.fixture
def settings() -> Settings:
    return Settings(servers={"sonarr": {"transport": {"type": "stdio", "command": "python"}}})


@pytest.fixture
def catalog(redis_client: redis.Redis) -> Catalog:
    filled = Catalog(redis_client)
    filled.replace("sonarr", [SERIES, FREE], source="test")
    return filled


def refusal(catalog: Catalog, settings: Settings, params: dict) -> InvalidCall:
    with pytest.raises(InvalidCall) as caught:
        catalog.resolve(prepare_call(settings, "sonarr", "sonarr_get_series", params))
    return caught.value


def test_a_wrong_type_is_refused_naming_the_field(catalog: Catalog, settings: Settings) -> None:
    """A string where the schema wants an integer names params.series_id and the bad value."""
    error = refusal(catalog, settings, {"series_id": "abc"})
    assert str(error) == "params.series_id: 'abc' is not of type 'integer'"
    assert error.field == "params.series_id" and error.server == "sonarr" and error.tool == "sonarr_get_series"


def test_a_missing_required_property_is_named(catalog: Catalog, settings: Settings) -> None:
    """A required property that is absent is named as params.<property>."""
    error = refusal(catalog, settings, {})
    assert str(error) == "params.series_id: required property is missing" and error.field == "params.series_id"


def test_nested_fields_are_named_by_path(catalog: Catalog, settings: Settings) -> None:
    """Errors inside arrays and objects name the full path, with list indexes."""
    assert refusal(catalog, settings, {"series_id": 1, "tags": ["a", 2]}).field == "params.tags[1]"
    error = refusal(catalog, settings, {"series_id": 1, "filter": {"colour": "red"}})
    assert error.field == "params.filter.colour" and "unexpected property" in str(error)


def test_valid_params_unknown_tools_and_servers_without_catalog_pass(catalog: Catalog, settings: Settings) -> None:
    """Only what the catalog knows is checked: an unknown tool or an uncached server is left to the server."""
    catalog.resolve(prepare_call(settings, "sonarr", "sonarr_get_series", {"series_id": 7, "tags": ["x"]}))
    catalog.resolve(prepare_call(settings, "sonarr", "not_in_catalog", {"anything": object.__name__}))
    catalog.redis.delete(keys.tools_key("sonarr"), keys.tools_meta_key("sonarr"))
    catalog.resolve(prepare_call(settings, "sonarr", "sonarr_get_series", {"series_id": "abc"}))


def test_a_schema_that_cannot_be_compiled_does_not_refuse_calls(redis_client: redis.Redis, settings: Settings) -> None:
    """A broken input schema is skipped (logged), never a reason to refuse a call."""
    broken = {"name": "odd", "inputSchema": {"type": "no-such-type"}}
    catalog = Catalog(redis_client)
    catalog.replace("sonarr", [broken], source="test")
    catalog.resolve(prepare_call(settings, "sonarr", "odd", {"x": 1}))


def test_a_batch_is_checked_in_one_go_naming_the_call(catalog: Catalog, settings: Settings) -> None:
    """resolve_batch names calls[i].params.<field> of the first bad call."""
    calls = [prepare_call(settings, "sonarr", "sonarr_get_series", {"series_id": 1}),
             prepare_call(settings, "sonarr", "sonarr_get_series", {"series_id": True})]
    with pytest.raises(InvalidCall) as caught:
        catalog.resolve_batch(calls)
    assert caught.value.field == "calls[1].params.series_id"
    assert str(caught.value) == "calls[1].params.series_id: True is not of type 'integer'"


def test_replacing_with_the_same_tools_only_touches_the_check_time(catalog: Catalog) -> None:
    """An unchanged listing keeps its digest and update time; a changed one replaces the whole set."""
    before = catalog.meta("sonarr")
    time.sleep(0.01)
    assert catalog.replace("sonarr", [FREE, SERIES], source="again") is False
    after = catalog.meta("sonarr")
    assert after["updated_at"] == before["updated_at"] and after["checked_at"] != before["checked_at"]
    assert after["digest"] == catalog_digest([SERIES, FREE])
    assert catalog.replace("sonarr", [FREE], source="shrunk") is True
    assert [tool["name"] for tool in catalog.tools("sonarr")] == ["free"]
    assert catalog.meta("sonarr")["count"] == "1"


def test_a_server_without_catalog_has_no_tools_rather_than_an_empty_list(redis_client: redis.Redis) -> None:
    """tools() is None before the first listing and [] for a server that lists no tools."""
    catalog = Catalog(redis_client)
    assert catalog.tools("sonarr") is None
    catalog.replace("sonarr", [], source="test")
    assert catalog.tools("sonarr") == []
