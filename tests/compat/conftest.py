"""One compat stack per test module (``tests/support/compat_stack.py``), faults and breakers reset after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.compat_stack import CompatStack, reset_faults_and_breakers, running_compat_stack
from tests.support.redis_proc import RedisServer


@pytest.fixture(scope="module")
def compat_stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CompatStack]:
    with running_compat_stack(redis_server, tmp_path_factory.mktemp("compat")) as stack:
        yield stack


@pytest.fixture
def stack(compat_stack: CompatStack) -> Iterator[CompatStack]:
    """The module stack, with simulator faults and breakers back to normal after each test."""
    yield compat_stack
    reset_faults_and_breakers(compat_stack)
