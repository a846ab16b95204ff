"""Fixtures of the fault suite: the migrated template database, one Stack per scenario, and the
one-line-per-scenario report (printed at the end of the run and written to var/chaos/)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.harness import ROOT, Postgres, Stack, Template, new_run_id, workdir

REPORT_PATH = ROOT / "var" / "chaos" / "last-run.txt"
LOGS_PATH = ROOT / "var" / "chaos" / "logs"
_lines: list[str] = []
_started = time.monotonic()


def record_line(line: str) -> None:
    _lines.append(line)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _lines:
        return
    elapsed = time.monotonic() - _started
    terminalreporter.section("fault suite (tests/chaos)")
    for line in _lines:
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"wall time of the run: {elapsed:.0f} s")
    REPORT_PATH.parent.mkdir(parents=True, exist_ok=True)
    REPORT_PATH.write_text("\n".join([*_lines, f"wall time of the run: {elapsed:.0f} s"]) + "\n")


def _drop_stale(postgres: Postgres) -> None:
    """Databases left by a chaos run whose process is gone (killed before its cleanup)."""
    for name in postgres.databases("moverz_chaos_%"):
        pid = name.removeprefix("moverz_chaos_").split("_", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            postgres.drop(name)


@pytest.fixture(scope="session")
def chaos_template() -> Iterator[Template]:
    postgres = Postgres(
        os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/moverz")
    )
    _drop_stale(postgres)
    name = f"moverz_chaos_{new_run_id()}_tmpl"
    with workdir("moverz-chaos-tmpl-") as path:
        template = Template.build(postgres, name, path)
    try:
        yield template
    finally:
        postgres.drop(name)


@pytest.fixture
def stack(
    chaos_template: Template, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Stack]]:
    """`stack(number, fake_options=[...], **env)`: a started Stack (Redis, fake AI, database),
    torn down after the test. On failure the tails of its logs are printed."""
    stacks: list[Stack] = []
    failures_before = request.session.testsfailed

    def make(number: int, fake_options: list[str] | None = None, **env: str) -> Stack:
        built = Stack(number, chaos_template, tmp_path, fake_options or [], dict(env))
        stacks.append(built)
        return built.__enter__()

    yield make

    failed = request.session.testsfailed > failures_before
    for built in stacks:
        built.__exit__(None, None, None)
        if failed:
            _print_tails(request, built)
            _keep_logs(request.node.name, built)


def _keep_logs(test_name: str, built: Stack) -> None:
    """Copy a failed scenario's logs where CI and people look: var/chaos/logs/<test>/."""
    target = LOGS_PATH / test_name
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for log in built.workdir.glob("*.log"):
        shutil.copy(log, target / log.name)


def _print_tails(request: pytest.FixtureRequest, built: Stack) -> None:
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        for group in built.worker_groups:
            tail = "\n".join(group.proc.log().splitlines()[-40:])
            print(f"\n--- tail of {group.name} ---\n{tail}")
        if built.web is not None:
            tail = "\n".join(built.web.log().splitlines()[-20:])
            print(f"\n--- tail of web ---\n{tail}")
