"""One media server over stdio with its simulator per test module, as the fixture named after it
(``sab`` for SABnzbd); a module that needs another set-up defines its own fixture of that name."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.media import Served


def _served(service: str, name: str) -> Callable[[], Iterator[Served]]:
    @pytest.fixture(scope="module", name=name)
    def served() -> Iterator[Served]:
        running = Served(service)
        yield running
        running.close()
    return served


sab = _served("sabnzbd", "sab")
sonarr = _served("sonarr", "sonarr")
radarr = _served("radarr", "radarr")
plex = _served("plex", "plex")
