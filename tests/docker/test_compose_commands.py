"""Every command the deployment runs exists in the image's entry point: the `uninote` console script.

The image's ENTRYPOINT is `tini -- uninote`, so a service's `command` is the argument list of the
`uninote` click group (app.cli:main). Each one, and each `uninote healthcheck ...`, is parsed by the real
click group (types, choices, unknown options) without being invoked.
"""

from __future__ import annotations

import shlex
import tomllib
from typing import Any

import click
import pytest

from compose_support import REPO, dockerfile_final_stage, exec_form, require

CELERY_QUEUES = {"index", "backfill", "audit", "webhooks"}


def uninote_args(argv: list[str]) -> list[str] | None:
    """The arguments after `uninote` in a command line, or None when the line does not run uninote."""
    if "uninote" in argv:
        return argv[argv.index("uninote") + 1:]
    return None


def parse_uninote(group: click.Group, args: list[str]) -> click.Command:
    """Resolve `uninote ARGS` to its command and parse its options; raises click.UsageError / BadParameter."""
    cmd: click.Command = group
    ctx = click.Context(group, info_name="uninote")
    rest = list(args)
    while isinstance(cmd, click.Group):
        name, sub, rest = cmd.resolve_command(ctx, rest)
        assert sub is not None, f"uninote has no command {args!r}"
        ctx = click.Context(sub, info_name=name, parent=ctx)
        cmd = sub
    cmd.make_context(ctx.info_name, rest, parent=ctx.parent)
    return cmd


def service_command_lines(services: dict[str, dict[str, Any]], app_services: dict[str, dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """(where, uninote arguments) for every app service's command and every uninote health check."""
    found = []
    for name, svc in app_services.items():
        found.append((f"{name}.command", [str(a) for a in svc["command"]]))
    for name, svc in services.items():
        test = (svc.get("healthcheck") or {}).get("test") or []
        argv = shlex.split(test[1]) if test[:1] == ["CMD-SHELL"] else [str(a) for a in test[1:]]
        args = uninote_args(argv)
        if args is not None:
            found.append((f"{name}.healthcheck", args))
    return found


def test_image_entrypoint_is_the_uninote_console_script() -> None:
    stage = dict(dockerfile_final_stage())
    assert exec_form(stage["ENTRYPOINT"])[-1] == "uninote"
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts["uninote"] == "app.cli:main"


def test_console_script_loads_a_click_group(uninote_cli: Any) -> None:
    assert isinstance(uninote_cli, click.Group), f"app.cli:main is {type(uninote_cli)}, not a click group"


def test_every_compose_command_is_a_uninote_command(
    uninote_cli: click.Group, services: dict[str, dict[str, Any]], app_services: dict[str, dict[str, Any]]
) -> None:
    lines = service_command_lines(services, app_services)
    assert {w for w, _ in lines} >= {"migrate.command", "worker.command", "dashboard.command", "worker.healthcheck"}
    problems = []
    for where, args in lines:
        try:
            parse_uninote(uninote_cli, args)
        except (click.UsageError, click.BadParameter, AssertionError) as err:
            problems.append(f"{where}: uninote {' '.join(args)} -> {err}")
    assert not problems, "\n".join(problems)


def test_dockerfile_cmd_and_healthcheck_are_uninote_commands(uninote_cli: click.Group) -> None:
    stage = dict(dockerfile_final_stage())
    cmd = exec_form(stage["CMD"])
    health = stage["HEALTHCHECK"]
    health_argv = exec_form(health[health.index("CMD ") + 4:].strip())
    for args in (cmd, uninote_args(health_argv)):
        assert args is not None, f"the image's health check does not run uninote: {health}"
        parse_uninote(uninote_cli, args)


def test_parser_rejects_what_the_cli_does_not_have(uninote_cli: click.Group) -> None:
    """The check above can fail: an unknown command or option is refused."""
    with pytest.raises(click.UsageError):
        parse_uninote(uninote_cli, ["no-such-command"])
    with pytest.raises(click.UsageError):
        parse_uninote(uninote_cli, ["migrate", "--no-such-option"])


def test_workers_consume_every_celery_queue(services: dict[str, dict[str, Any]]) -> None:
    consumed: set[str] = set()
    for name, svc in services.items():
        cmd = [str(a) for a in svc.get("command") or []]
        if cmd[:1] == ["worker"]:
            assert "--queues" in cmd, f"{name}: name the queues it consumes"
            consumed |= set(cmd[cmd.index("--queues") + 1].split(","))
    assert consumed == CELERY_QUEUES
    try:
        from workers.celery_app import app as celery_app
    except ModuleNotFoundError as err:
        require(False, f"workers/celery_app.py cannot be imported yet: {err}")
        raise
    declared = {q.name for q in (celery_app.conf.task_queues or [])}
    if declared:
        assert consumed <= declared, f"compose consumes {consumed - declared}, which the Celery app does not declare"
