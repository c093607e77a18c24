"""The composition root (loyalty/cli.py): the `loyalty` command is the agent's commands,
HQ's group with the agent's default programme handed in, and the root's own (`demo`,
`report`), all under one error rendering. In process, with click's CliRunner."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import click
from click.testing import CliRunner

import agent.cli as agent_cli
from agent.programme import default_documents
from loyalty.cli import LoyaltyGroup, main


def agent_commands() -> dict[str, click.Command]:
    """The top-level click commands agent/cli.py defines (a group's subcommands left out)."""
    found = [obj for obj in vars(agent_cli).values() if isinstance(obj, click.Command)]
    nested = {id(sub) for obj in found if isinstance(obj, click.Group)
              for sub in obj.commands.values()}
    return {str(obj.name): obj for obj in found if id(obj) not in nested}


def test_every_command_the_agent_defines_is_a_loyalty_command() -> None:
    commands = agent_commands()
    assert {"agent", "status", "sync"} <= set(commands), commands
    for name, command in commands.items():
        assert main.commands.get(name) is command, f"agent/cli.py's {name!r} is not registered"


def test_loyalty_has_the_commands_operators_know_and_no_others() -> None:
    assert set(main.commands) == {"agent", "demo", "hq", "report", "status", "sync"}
    assert isinstance(main, LoyaltyGroup) and isinstance(main.commands["hq"], LoyaltyGroup)
    assert set(main.commands["agent"].commands) == {"serve", "bootstrap"}  # type: ignore[attr-defined]


def test_a_new_hq_database_starts_with_the_agents_default_programme(tmp_path: Path) -> None:
    db = tmp_path / "hq.db"
    done = CliRunner().invoke(main, ["hq", "outlet-add", "--db", str(db), "NORTH"])
    assert done.exit_code == 0, done.output
    conn = sqlite3.connect(db)
    try:
        stored = {(kind, json.dumps(json.loads(data), sort_keys=True))
                  for kind, data in conn.execute("SELECT kind, data FROM master")}
    finally:
        conn.close()
    expected = {(kind, json.dumps(doc, sort_keys=True)) for kind, doc in default_documents()}
    assert stored == expected


def test_a_refusal_in_any_command_is_one_error_line_and_exit_1(tmp_path: Path) -> None:
    missing = str(tmp_path / "none.db")
    for args in (["report", "turnover", "--db", missing],  # the root's own
                 ["hq", "customer", "--db", str(tmp_path / "hq.db"), "2900019999993"],  # HQ's
                 ["sync", "--db", str(_empty_outlet(tmp_path))]):  # the agent's
        done = CliRunner().invoke(main, args)
        assert done.exit_code == 1, (args, done.output)
        [line] = done.stderr.splitlines()
        assert line.startswith("error ["), (args, done.stderr)
        assert done.stdout == "", (args, done.stdout)


def _empty_outlet(tmp_path: Path) -> Path:
    from agent.outlet import Outlet

    path = tmp_path / "outlet.db"
    Outlet(path, "NORTH").close()
    return path
