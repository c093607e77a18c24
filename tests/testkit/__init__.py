"""Test support shared by every test family: one of each, built on by the family kits.

- `processes`: `Service`, the supervisor of a real `loyalty ...` server process; `cli`,
  `LOYALTY`, `free_port` (web.serving's); the log tails a failing test's report shows.
- `waiting`: `wait_until`, the one way a test waits for something.
- `till`: `Till`, the one till client (over requests, or a TestClient in process).
- `ledger`: `check_files`, the one check of a chain's ledger (exactly once, HQ = fold of its
  events, outlets = HQ), and `Ledger`, what the tills were answered.
- `hqadmin`: `HQAdmin`, the one admin client of HQ (outlets and tokens through `loyalty hq`,
  the admin API, HQ's file), for a real HQ process and one in this process alike.
- `inprocess`: the fast tier's servers, `InProcessAgent` and `InProcessHQ` (the apps the
  services build, answered through a TestClient), `Session` (requests' surface over it),
  `cli` (the `loyalty` command through CliRunner) and `TIERS`.

A package under tests/ (on sys.path through tests/conftest.py's folder, as the kits are);
the family kits (agentkit, chainkit, hqkit, faultproxy, modemkit, webkit, hwdevices) keep
only what is their own and import from here.
"""

from testkit.ledger import Ledger, check_files, read_only
from testkit.processes import LOYALTY, Service, cli, cli_last_line, free_port
from testkit.till import Till, expect_error, line
from testkit.waiting import wait_until

__all__ = ["LOYALTY", "Ledger", "Service", "Till", "check_files", "cli", "cli_last_line",
           "expect_error", "free_port", "line", "read_only", "wait_until"]
