"""The documentation is tested: what README.md and docs/*.md show is run or checked against
the real product, by parsing the markdown (the way sqlite-utils tests its docs).

The convention every page follows (docs/README.md says it to writers):

- Every fenced block names its language.
- ```sh blocks are run as written, each on its own, **twice in a row in the same fresh
  directory** (so a block a reader runs again must work again): `bash -e -o pipefail`, with
  this virtual environment's bin/ first on PATH and `.venv` linking to it (so both `loyalty`
  and `.venv/bin/loyalty` work). A service the block starts with `&` runs until the block
  ends and is then killed with everything else the block started. A block that starts a
  service names its port (`--port 8700` for HQ, `--port 8701` for an agent): the test
  replaces 8700 and 8701 by free ports, so a chain running on this machine is left alone.
- ```console blocks are commands shown but not run here (the installer, production paths,
  devices, a service in the foreground); ```text is output or anything else that is not
  run; json, toml, python, nginx and sql blocks are what they say.
- Every `loyalty ...` command shown anywhere (sh and console blocks, inline code) names a
  real subcommand with real options (and report names), and its `--help` works.
- docs/till-api.md is replayed against the agent `loyalty agent serve` builds (in this
  process: testkit.inprocess): its curl examples are sent in order, the answers it shows
  have the real answers' keys, its sale and return receipts are the real receipts.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
from agentkit import InProcessAgent, free_port
from click.testing import CliRunner

from loyalty.cli import main as loyalty_cli

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
LANGUAGES = {"sh", "console", "text", "json", "toml", "python", "nginx", "sql", "xml"}
VENV_BIN = Path(sys.executable).parent
BLOCK_TIMEOUT_S = 120


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line} ({self.lang or 'no language'})"


FENCE = re.compile(r"^( *)```(\S*)\s*$")


def blocks(page: Path) -> list[Block]:
    found: list[Block] = []
    lines = page.read_text().splitlines()
    n = 0
    while n < len(lines):
        opening = FENCE.match(lines[n])
        if opening is None:
            n += 1
            continue
        indent, lang, start = len(opening.group(1)), opening.group(2), n
        body: list[str] = []
        n += 1
        while n < len(lines) and not re.match(r"^ *```\s*$", lines[n]):
            body.append(lines[n][indent:] if lines[n][:indent].strip() == "" else lines[n])
            n += 1
        found.append(Block(page, start + 1, lang, "\n".join(body) + "\n"))
        n += 1
    return found


def prose(page: Path) -> str:
    """The page without its fenced blocks."""
    return re.sub(r"(?ms)^ *```\S*\s*$.*?^ *```\s*$", "", page.read_text())


ALL_BLOCKS = [block for page in PAGES for block in blocks(page)]
SH_BLOCKS = [block for block in ALL_BLOCKS if block.lang == "sh"]


# --- fences --------------------------------------------------------------------------------
def test_every_fenced_block_names_its_language() -> None:
    unnamed = [str(b) for b in ALL_BLOCKS if b.lang not in LANGUAGES]
    assert not unnamed, (f"fenced blocks need one of {sorted(LANGUAGES)} "
                         f"(```sh is run by this test): {unnamed}")


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.lang == "json"], ids=str)
def test_every_json_block_is_json(block: Block) -> None:
    json.loads(block.code)


# --- sh blocks run as written, twice -------------------------------------------------------
def run_block(block: Block, cwd: Path) -> tuple[int, str]:
    """Runs the block in `cwd` as a reader would paste it; kills whatever it left running."""
    script = block.code.replace("8700", str(free_port())).replace("8701", str(free_port()))
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "TMPDIR": str(cwd.parent)}
    out = cwd.parent / f"{cwd.name}.out"
    with open(out, "w") as sink:
        proc = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", script], cwd=cwd, env=env,
                                stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=BLOCK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            code = -1
        finally:
            end_group(proc.pid)
    return code, out.read_text(errors="replace")


def end_group(pgid: int) -> None:
    """Kills the block's process group (its `&` services) and waits until it is gone."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


@pytest.mark.parametrize("block", SH_BLOCKS, ids=str)
def test_sh_block_runs_as_written_and_again(block: Block, tmp_path: Path) -> None:
    cwd = tmp_path / "reader"
    cwd.mkdir()
    (cwd / ".venv").symlink_to(VENV_BIN.parent)
    for attempt in ("first", "second"):
        code, output = run_block(block, cwd)
        assert code == 0, f"{block}, {attempt} run, exit {code}:\n{output}"
        assert "Traceback" not in output, f"{block}, {attempt} run:\n{output}"
        assert "error [" not in output, f"{block}, {attempt} run:\n{output}"


def test_there_is_a_chain_to_run_by_hand_in_the_readme() -> None:
    readme = [b for b in SH_BLOCKS if b.page.name == "README.md" and "hq serve" in b.code]
    assert readme and "agent serve" in readme[0].code, "the README shows a chain run by hand"


# --- every `loyalty ...` shown names real commands and options ------------------------------
@dataclass
class Shown:
    where: str
    words: list[str]


# `loyalty` (or `.venv/bin/loyalty`, or the README's `$L`) in command position
LOYALTY = re.compile(r"(?:^\s*(?:\$\s+)?|[;&|(]\s*|/)(?:loyalty|\$L)(?=\s)(.*)$")
STOP = re.compile(r"\s(?:#|\|\|?|&&?|;|>|<|2>)|[)`]")


def command_lines(text: str) -> list[str]:
    """Lines of shell text with backslash continuations joined."""
    return text.replace("\\\n", " ").splitlines()


def shown_commands() -> list[Shown]:
    shown: list[Shown] = []
    for page in PAGES:
        where = str(page.relative_to(ROOT))
        texts = [b.code for b in blocks(page) if b.lang in ("sh", "console")]
        texts += [m.group(1).replace("\n", " ") for m in re.finditer(r"`([^`]+)`", prose(page))
                  if re.match(r"(?:\.venv/bin/)?loyalty\s", m.group(1))]
        for text in texts:
            for line in command_lines(text):
                found = LOYALTY.search(line)
                if found is None:
                    continue
                rest = STOP.split(found.group(1))[0]
                try:
                    words = shlex.split(rest)
                except ValueError:
                    words = rest.split()
                shown.append(Shown(f"{where}: loyalty {rest.strip()}", words))
    return shown


def placeholder(word: str) -> bool:
    return word.isupper() or "..." in word or word.startswith("$") or "|" in word


def check_command(shown: Shown) -> list[str]:
    """What is wrong with one `loyalty ...` line: unknown subcommands, options, choices."""
    command: click.Command = loyalty_cli
    path: list[str] = []
    words = [w.strip("[]") for w in shown.words]
    words = [w for w in words if w]
    problems: list[str] = []
    positional: list[str] = []
    n = 0
    while n < len(words):
        word = words[n]
        n += 1
        if word.startswith("-") and len(word) > 1:
            name = word.split("=", 1)[0]
            option = next((p for p in command.params if isinstance(p, click.Option)
                           and name in (*p.opts, *p.secondary_opts)), None)
            if option is None:
                if name != "--help":
                    problems.append(f"`loyalty {' '.join(path)}` has no option {name}")
                continue
            if not option.is_flag and "=" not in word:
                n += 1  # its value
            continue
        if isinstance(command, click.Group) and not positional:
            sub = command.commands.get(word)
            if sub is None:
                if not placeholder(word):
                    problems.append(f"`loyalty {' '.join(path)}` has no command {word!r}")
                return problems
            command, path = sub, [*path, word]
            continue
        positional.append(word)
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    for argument, word in zip(arguments, positional, strict=False):
        if isinstance(argument.type, click.Choice) and not placeholder(word) \
                and word not in argument.type.choices:
            problems.append(f"`loyalty {' '.join(path)}`: {word!r} is not one of "
                            f"{list(argument.type.choices)}")
    help_run = CliRunner().invoke(loyalty_cli, [*path, "--help"])
    if help_run.exit_code != 0:
        problems.append(f"`loyalty {' '.join(path)} --help` exits {help_run.exit_code}")
    return problems


SHOWN = shown_commands()


@pytest.mark.parametrize("words, problem", [
    (["hq", "outlet-ad", "--db", "x"], "no command 'outlet-ad'"),
    (["status", "--db", "x", "--jsn"], "no option --jsn"),
    (["report", "turnovr", "--db", "x"], "'turnovr' is not one of"),
    (["report", "NAME", "--db", "PATH", "[--format", "table|csv]"], None),
    (["-v", "agent", "serve", "--config", "FILE"], None),
])
def test_the_command_check_catches_what_does_not_exist(words: list[str],
                                                      problem: str | None) -> None:
    problems = check_command(Shown("a test", words))
    assert (problem in " ".join(problems)) if problem else not problems, problems


def test_the_docs_show_loyalty_commands() -> None:
    assert len(SHOWN) > 20 and any("report" in s.words for s in SHOWN)


@pytest.mark.parametrize("shown", SHOWN, ids=lambda s: s.where[:90])
def test_every_loyalty_command_shown_exists_with_its_options(shown: Shown) -> None:
    assert not check_command(shown), f"{shown.where}: {check_command(shown)}"


# --- links and the code the pages name ------------------------------------------------------
LINK = re.compile(r"\]\(([^)\s]+)\)")
# every top-level package of the product (tests/test_layers.py gives each its layer)
PACKAGES = "|".join(sorted(p.parent.name for p in ROOT.glob("*/__init__.py")
                           if p.parent.name not in ("tests", "bench")))
CODE_PATH = re.compile(rf"`((?:{PACKAGES}|tests|bench)/[\w/]*\w\.py)`")
PATH_AND_NAME = re.compile(rf"`((?:{PACKAGES})/[\w/]+\.py)`\s+`(\w+)`")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_stay_inside_the_repository_and_resolve(page: Path) -> None:
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        assert path.is_relative_to(ROOT), f"{page.name} links outside the repository: {target}"
        assert path.exists(), f"{page.name} links to {target}, which does not exist"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_code_a_page_names_exists(page: Path) -> None:
    text = page.read_text()
    for path in CODE_PATH.findall(text):
        assert (ROOT / path).is_file(), f"{page.name} names {path}, which does not exist"
    for path, name in PATH_AND_NAME.findall(text):
        source = (ROOT / path).read_text()
        # a def, a class, or a module constant (annotated or not: `HQ: dict[...] = ...`)
        assert re.search(rf"^\s*(?:async def|def|class) {name}\b|^{name}(?::[^=\n]*)? = ",
                         source, re.MULTILINE), \
            f"{page.name} names `{path}` `{name}`, which is not defined there"


def test_design_md_names_every_package_and_invariant() -> None:
    design = (ROOT / "docs" / "design.md").read_text()
    for package in PACKAGES.split("|"):
        assert f"`{package}/`" in design, f"docs/design.md does not name the package {package}/"
    for n in range(1, 11):
        assert f"**{n}. " in design, f"invariant {n}"


# --- what the docs say about the installer --------------------------------------------------
def test_operations_md_names_every_package_install_sh_installs() -> None:
    script = (ROOT / "install.sh").read_text()
    operations = (ROOT / "docs" / "operations.md").read_text()
    packages = [name for group in re.findall(r"^\s*\w+_debs=\(([^)]*)\)", script, re.MULTILINE)
                for name in group.split()]
    assert len(packages) > 5
    missing = [p for p in packages if f"`{p}`" not in operations]
    assert not missing, f"docs/operations.md does not name {missing}, which install.sh installs"


# --- docs/till-api.md, replayed against the agent ----------------------------------------------
@dataclass
class Example:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    shown_answer: Any


def till_api_examples() -> list[Example]:
    """The curl calls of docs/till-api.md, in order, each with the answer shown after it."""
    examples: list[Example] = []
    for block in blocks(ROOT / "docs" / "till-api.md"):
        if "curl " not in block.code:
            continue
        lines = block.code.splitlines()
        n = 0
        while n < len(lines):
            if not lines[n].startswith("curl "):
                n += 1
                continue
            command = [lines[n]]
            while (command[-1].endswith("\\") or "\n".join(command).count("'") % 2) \
                    and n + 1 < len(lines):
                n += 1
                command.append(lines[n])
            n += 1
            answer = None
            if n < len(lines) and lines[n].startswith("{"):
                answer = json.loads(lines[n])
                n += 1
            words = shlex.split("\n".join(command).replace("\\\n", " "))
            method, headers, body, url = "GET", {}, None, ""
            for i, word in enumerate(words):
                if word == "-X":
                    method = words[i + 1]
                elif word == "-H":
                    key, _, value = words[i + 1].partition(":")
                    headers[key.strip()] = value.strip()
                elif word == "-d":
                    body = json.loads(words[i + 1])
                elif word.startswith("http"):
                    url = word
            examples.append(Example(method, url.split("8701", 1)[1], headers, body, answer))
    return examples


def shape(value: Any) -> Any:
    """The keys of a JSON value, all the way down (lists by their first element)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return None


def json_blocks_after(heading: str) -> list[Any]:
    page = (ROOT / "docs" / "till-api.md").read_text()
    section = page.split(heading, 1)[1].split("\n#", 1)[0]
    return [json.loads(b) for b in re.findall(r"```json\n(.*?)```", section, re.DOTALL)]


# `01a2...` in a path stands for the id the previous answers gave, named by the segment
# before it; a body's `receipt` stands for the sale's printed `receipt_reference`
PATH_IDS = {"sales": "sale_id", "redemptions": "redemption_id", "customers": "customer_id"}
BODY_FROM = {"receipt": "receipt_reference"}
REFERENCE = re.compile(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]")


def _with_ids(path: str, last: dict[str, Any]) -> str:
    return re.sub(r"/(\w+)/([^/?]*)\.\.\.", lambda m: f"/{m[1]}/" + str(
        last.get(PATH_IDS.get(m[1], ""), m[2] + "...")), path)


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Every curl example of docs/till-api.md sent, in order, to the agent of outlet NORTH."""
    agent = InProcessAgent(tmp_path_factory.mktemp("till-api") / "outlet.db", "NORTH")
    try:
        http = agent.session()
        answers: list[tuple[Example, Any]] = []
        last: dict[str, Any] = {}
        for example in till_api_examples():
            body = example.body
            if isinstance(body, dict):
                body = {k: (last.get(BODY_FROM.get(k, k), v)
                            if isinstance(v, str) and v.endswith("...") else v)
                        for k, v in body.items()}
            path = _with_ids(re.sub(r"wait=\d+", "wait=0", example.path), last)
            answer = http.request(example.method, agent.url + path, json=body,
                                  headers=example.headers, timeout=15)
            answers.append((example, answer))
            if answer.headers.get("content-type", "").startswith("application/json"):
                data = answer.json()
                if isinstance(data, dict):
                    last.update({k: v for k, v in data.items() if isinstance(v, str)})
        yield agent, http, answers
    finally:
        agent.close()


def test_till_api_curl_examples_are_valid_requests(replayed: Any) -> None:
    _, _, answers = replayed
    assert len(answers) >= 5
    for example, answer in answers:
        assert answer.status_code < 500, (example, answer.text)
        if answer.status_code >= 400:  # a refusal the state allows, never a malformed example
            assert answer.json()["error"]["code"] not in ("invalid_request", "not_found",
                                                          "quote_unknown"), (example, answer.text)


def test_till_api_answers_shown_have_the_real_keys_and_values(replayed: Any) -> None:
    _, _, answers = replayed
    shown = [(e, a) for e, a in answers if e.shown_answer is not None]
    assert shown, "till-api.md shows at least one answer after a curl"
    for example, answer in shown:
        real = answer.json()
        assert shape(example.shown_answer) == shape(real), (example.path, real)
        for key, value in example.shown_answer.items():
            if not (isinstance(value, str) and value.endswith("...")):
                assert real[key] == value, (example.path, key, real)


def test_till_api_sale_receipt_is_the_real_receipt(replayed: Any) -> None:
    _, _, answers = replayed
    sale = next(a for e, a in answers if e.path == "/v1/sales")
    assert sale.status_code == 201, sale.text
    printed = next(b for b in blocks(ROOT / "docs" / "till-api.md")
                   if b.code.startswith("Club card"))
    assert _printed(printed.code.splitlines()) == _printed(sale.json()["receipt_lines"])


def _printed(lines: list[str]) -> list[str]:
    """Receipt lines with what differs per run (the time, the receipt reference) marked."""
    stamp = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d")
    return [REFERENCE.sub("REFERENCE", stamp.sub("DATE", t)) for t in lines]


def test_till_api_returns_are_real_and_the_return_receipt_is_the_real_one(replayed: Any) -> None:
    _, _, answers = replayed
    done = [a for e, a in answers if e.path == "/v1/returns"]
    assert [a.status_code for a in done] == [201, 201], [a.text for a in done]
    first = done[0].json()
    (shown,) = [json.loads(b.code) for b in blocks(ROOT / "docs" / "till-api.md")
                if b.lang == "json" and b.code.startswith('{"return_id"')]
    assert shape(shown) == shape(first)
    for key, value in shown.items():
        if not (isinstance(value, str) and value.endswith("...")) and key not in (
                "receipt_reference", "receipt_lines"):
            assert first[key] == value, (key, first[key])
    printed = next(b for b in blocks(ROOT / "docs" / "till-api.md")
                   if b.code.startswith("Club card") and "Return of receipt" in b.code)
    assert _printed(printed.code.splitlines()) == _printed(first["receipt_lines"])
    voided = next(a for e, a in answers if e.path.endswith("/void"))
    assert voided.status_code == 201, voided.text
    assert voided.json()["closes_sale"] and voided.json()["kind"] == "void"


def test_till_api_status_example_has_real_keys(replayed: Any) -> None:
    agent, http, _ = replayed
    real = http.get(agent.url + "/v1/status", timeout=5).json()
    (example,) = json_blocks_after("### `GET /v1/status`")
    assert set(example) <= set(real), set(example) - set(real)
    assert set(example["counts"]) <= set(real["counts"])


def test_till_api_error_example_is_a_real_refusal(replayed: Any) -> None:
    agent, http, answers = replayed
    card = next(a.json()["card_number"] for e, a in answers if e.path == "/v1/customers")
    (example,) = json_blocks_after("## Errors")
    blocked = http.post(agent.url + "/v1/identifiers/status", timeout=5,
                        json={"kind": "card", "value": card, "status": "blocked"})
    assert blocked.status_code == 200, blocked.text
    refusal = http.post(agent.url + "/v1/identify", json={"kind": "card", "value": card},
                        timeout=5)
    assert refusal.status_code == 403
    assert shape(refusal.json()) == shape(example)
    assert refusal.json()["error"]["code"] == example["error"]["code"]
    assert refusal.json()["error"]["context"] == example["error"]["context"]
