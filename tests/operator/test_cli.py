"""``mcp-orch`` error format, in-process through ``main(argv)``: bad input is one line on stderr
naming what was wrong, and exit code 2 (the running-stack tests keep one subprocess smoke test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.operator.cli import main

UNREACHABLE_BROKER = "redis://127.0.0.1:1/0"
"""Bad input must be refused before anything connects: no Redis listens here."""


@pytest.fixture(autouse=True)
def _bundled_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MCP_ORCH_CONFIG", raising=False)
    monkeypatch.setenv("MCP_ORCH_BROKER_URL", UNREACHABLE_BROKER)


@pytest.mark.parametrize(("args", "needle"), [
    (["call", "nosuch", "x"], "server"),
    (["batch", "{missing}"], "cannot read"),
    (["stats", "nosuch"], "server"),
    (["call", "sab", "get_queue", "--param", "limit"], "key=value"),
])
def test_bad_input_is_one_line_on_stderr_naming_what_was_wrong_with_exit_2(
        args: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [arg.format(missing=tmp_path / "missing.json") for arg in args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and needle in err, err
