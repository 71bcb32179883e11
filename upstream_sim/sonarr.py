"""Simulated Sonarr v4 (``/api/v3``): series with seasons and episodes, lookup, add, delete, wanted, calendar, queue,
commands, quality profiles, root folders, tags and languages.

Air dates are placed around the simulator's start time, so the calendar always has upcoming
episodes and the wanted list always has missing ones.
"""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from upstream_sim import arr
from upstream_sim.app import Simulator, build, guarded
from upstream_sim.clock import Clock

VERSION = "4.0.11.2680"

# title, tvdbId, year, network, status, seasons: list of (episode count, first air offset in days)
CATALOG = [
    ("Breaking Bad", 81189, 2008, "AMC", "ended", [(7, -6200), (13, -5800)]),
    ("Severance", 371980, 2022, "Apple TV+", "continuing", [(9, -1400), (10, -20)]),
    ("The Expanse", 280619, 2015, "Prime Video", "ended", [(10, -4000)]),
    ("Andor", 393189, 2022, "Disney+", "ended", [(12, -1150), (12, -220)]),
    ("The Bear", 403245, 2022, "FX", "continuing", [(8, -1200), (10, -860)]),
    ("Shogun", 392573, 2024, "FX", "continuing", [(10, -640)]),
]
LIBRARY = (81189, 371980, 280619)
"""The tvdb ids already in the library at start; the rest are only found by lookup."""
FILE_SIZE = 1_500_000_000
QUALITY = {"id": 3, "name": "WEBDL-1080p", "source": "web", "resolution": 1080}
QUALITIES = [
    {"id": 1, "name": "SDTV", "source": "television", "resolution": 480},
    {"id": 4, "name": "HDTV-720p", "source": "television", "resolution": 720},
    {"id": 9, "name": "HDTV-1080p", "source": "television", "resolution": 1080},
    QUALITY,
    {"id": 7, "name": "Bluray-1080p", "source": "bluray", "resolution": 1080},
]
ROOT = "/tv"


def _series(title: str, tvdb: int, year: int, network: str, status: str, seasons: list) -> dict[str, Any]:
    slug = title.lower().replace(" ", "-")
    return {
        "id": 0,
        "title": title,
        "sortTitle": title.lower().removeprefix("the "),
        "status": status,
        "ended": status == "ended",
        "overview": f"{title} ({year}), a {network} series.",
        "network": network,
        "airTime": "21:00",
        "images": [{"coverType": "poster", "url": None, "remoteUrl": f"https://artworks.thetvdb.com/{tvdb}.jpg"}],
        "originalLanguage": arr.ENGLISH,
        "seasons": [{"seasonNumber": n, "monitored": True} for n in range(1, len(seasons) + 1)],
        "year": year,
        "path": None,
        "qualityProfileId": 1,
        "seasonFolder": True,
        "monitored": True,
        "monitorNewItems": "all",
        "useSceneNumbering": False,
        "runtime": 50,
        "tvdbId": tvdb,
        "tvRageId": 0,
        "tvMazeId": 0,
        "tmdbId": 0,
        "seriesType": "standard",
        "cleanTitle": slug.replace("-", ""),
        "imdbId": None,
        "titleSlug": slug,
        "rootFolderPath": None,
        "certification": "TV-MA",
        "genres": ["Drama"],
        "tags": [],
        "added": "0001-01-01T00:00:00Z",
        "ratings": {"votes": 1000, "value": 8.5},
        "languageProfileId": 1,
    }


class SonarrState:
    """Series, their episodes, the download queue and posted commands."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.started = datetime.fromtimestamp(self.clock.now(), UTC)
        self.plans = {row[1]: row[5] for row in CATALOG}
        catalog = [_series(*row) for row in CATALOG]
        self.episodes: dict[int, dict[str, Any]] = {}
        profiles = arr.quality_profiles(QUALITIES, {9, 3, 7})
        self.library = arr.Library(self.clock, [], catalog, "tvdbId", profiles, (ROOT,))
        self.commands = arr.Commands(self.clock)
        for tvdb in LIBRARY:
            self.library.add({"tvdbId": tvdb, "qualityProfileId": 1, "rootFolderPath": ROOT}, self.complete)

    def complete(self, series: dict[str, Any]) -> None:
        """Give a series joining the library its episodes (aired ones in the library have files)."""
        now = self.started
        episode_ids = itertools.count(max(self.episodes, default=0) + 1)
        owned = len(self.library.items) < len(LIBRARY)
        for season_number, (count, offset) in enumerate(self.plans[series["tvdbId"]], start=1):
            for number in range(1, count + 1):
                aired = now + timedelta(days=offset + 7 * (number - 1), hours=2)
                episode_id = next(episode_ids)
                has_file = owned and aired < now and not (season_number > 1 and number % 3 == 0)
                self.episodes[episode_id] = {
                    "id": episode_id,
                    "seriesId": series["id"],
                    "tvdbId": series["tvdbId"] * 100 + season_number * 10 + number,
                    "episodeFileId": episode_id if has_file else 0,
                    "seasonNumber": season_number,
                    "episodeNumber": number,
                    "title": f"Episode {number}",
                    "airDate": aired.strftime("%Y-%m-%d"),
                    "airDateUtc": arr.iso(aired),
                    "runtime": 50,
                    "overview": f"Season {season_number}, episode {number} of {series['title']}.",
                    "hasFile": has_file,
                    "monitored": True,
                    "absoluteEpisodeNumber": None,
                    "unverifiedSceneNumbering": False,
                }
        self._refresh_statistics(series)

    def _refresh_statistics(self, series: dict[str, Any]) -> None:
        mine = [e for e in self.episodes.values() if e["seriesId"] == series["id"]]
        for season in series["seasons"]:
            eps = [e for e in mine if e["seasonNumber"] == season["seasonNumber"]]
            aired = [e for e in eps if arr.parse_time(e["airDateUtc"]) < self.started]
            files = sum(e["hasFile"] for e in eps)
            season["statistics"] = {
                "episodeFileCount": files,
                "episodeCount": len(aired),
                "totalEpisodeCount": len(eps),
                "sizeOnDisk": files * FILE_SIZE,
                "percentOfEpisodes": round(100 * files / len(aired), 1) if aired else 0.0,
            }
        stats = [s["statistics"] for s in series["seasons"]]
        files = sum(s["episodeFileCount"] for s in stats)
        count = sum(s["episodeCount"] for s in stats)
        series["statistics"] = {
            "seasonCount": len(stats),
            "episodeFileCount": files,
            "episodeCount": count,
            "totalEpisodeCount": sum(s["totalEpisodeCount"] for s in stats),
            "sizeOnDisk": files * FILE_SIZE,
            "percentOfEpisodes": round(100 * files / count, 1) if count else 0.0,
        }

    def forget(self, series_id: int) -> None:
        self.episodes = {i: e for i, e in self.episodes.items() if e["seriesId"] != series_id}

    def with_series(self, episode: dict[str, Any], include: bool) -> dict[str, Any]:
        episode = copy.deepcopy(episode)
        if include:
            episode["series"] = copy.deepcopy(self.library.items[episode["seriesId"]])
        return episode

    def queue(self) -> list[dict[str, Any]]:
        """Downloads of the first two missing aired episodes, progressing with simulated time."""
        now = datetime.fromtimestamp(self.clock.now(), UTC)
        missing = [e for e in self.missing() if e["seriesId"] in self.library.items][:2]
        records = []
        for index, episode in enumerate(missing, start=1):
            series = self.library.items[episode["seriesId"]]
            title = f"{series['title']}.S{episode['seasonNumber']:02}E{episode['episodeNumber']:02}.1080p.WEB-GRP"
            elapsed = (now - self.started).total_seconds()
            record = arr.queue_record(
                index, title, QUALITY, float(FILE_SIZE), min(0.2 * index + elapsed / 600, 1.0), self.started
            )
            record.update(seriesId=series["id"], episodeId=episode["id"], seasonNumber=episode["seasonNumber"])
            record["episodeHasFile"] = False
            records.append(record)
        return records

    def missing(self) -> list[dict[str, Any]]:
        now = datetime.fromtimestamp(self.clock.now(), UTC)
        aired = [
            e
            for e in self.episodes.values()
            if e["monitored"] and not e["hasFile"] and arr.parse_time(e["airDateUtc"]) < now
        ]
        return sorted(aired, key=lambda e: e["airDateUtc"], reverse=True)


def create(api_key: str, clock: Clock | None = None) -> Simulator:
    """The Sonarr simulator answering ``/api/v3`` for ``api_key``."""
    state = SonarrState(clock)
    guard = arr.key_guard(api_key)

    async def episodes(request: Request) -> Response:
        series_id = request.query_params.get("seriesId")
        season = request.query_params.get("seasonNumber")
        with state.library.lock:
            if series_id is None or int(series_id) not in state.library.items:
                return arr.not_found() if series_id else arr.invalid("SeriesId", "seriesId is required")
            found = [
                state.with_series(e, arr.flag(request, "includeSeries"))
                for e in state.episodes.values()
                if e["seriesId"] == int(series_id) and (season is None or e["seasonNumber"] == int(season))
            ]
        return JSONResponse(found)

    async def wanted(request: Request) -> Response:
        with state.library.lock:
            records = [state.with_series(e, arr.flag(request, "includeSeries")) for e in state.missing()]
        return JSONResponse(arr.page(request, records, "episodes.airDateUtc"))

    async def calendar(request: Request) -> Response:
        start, end = arr.calendar_window(request, state.clock)
        with state.library.lock:
            found = [
                state.with_series(e, arr.flag(request, "includeSeries"))
                for e in state.episodes.values()
                if start <= arr.parse_time(e["airDateUtc"]) < end
            ]
        return JSONResponse(sorted(found, key=lambda e: e["airDateUtc"]))

    async def queue(request: Request) -> Response:
        with state.library.lock:
            return JSONResponse(arr.page(request, state.queue(), "timeleft"))

    routes = [
        *arr.shared_routes("Sonarr", VERSION, state.commands, guard),
        *arr.library_routes("series", state.library, guard, state.complete, state.forget),
        *arr.settings_routes(state.library, guard),
        Route(f"{arr.API}/episode", guarded(episodes, guard)),
        Route(f"{arr.API}/wanted/missing", guarded(wanted, guard)),
        Route(f"{arr.API}/calendar", guarded(calendar, guard)),
        Route(f"{arr.API}/queue", guarded(queue, guard)),
    ]
    return build("sonarr", routes, state)
