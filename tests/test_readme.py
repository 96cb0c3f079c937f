"""README.md stays complete: set-up commands, config keys, CLI, log events, guard reasons,
metrics. Each list is read from the code, so a new key or event fails here until the
README documents it."""

from __future__ import annotations

import argparse
import ast
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import msgspec

from lasersell_bot import cli, session
from lasersell_bot.config import Config, is_table_array, table_struct
from lasersell_bot.metrics import Metrics

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
PACKAGE = ROOT / "lasersell_bot"
LOG_LEVELS = frozenset({"debug", "info", "warning", "error", "exception", "critical"})
_HEADING = re.compile(r"^(#{1,6}) (.*)$", re.MULTILINE)


def section(title: str) -> str:
    """The README text under the heading ``title`` up to the next heading of its level
    or higher (sub-headings included)."""
    for match in _HEADING.finditer(README):
        if match.group(2).strip() == title:
            level = len(match.group(1))
            rest = README[match.end():]
            for later in _HEADING.finditer(rest):
                if len(later.group(1)) <= level:
                    return rest[:later.start()]
            return rest
    raise AssertionError(f"README.md has no heading {title!r}")


def table_names(text: str) -> set[str]:
    """Every backticked name in the first column of the Markdown tables in ``text``,
    including several names given in one cell (`a`, `b`)."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([^`]+)`", first_cell))
    return names


# --------------------------------------------------------------------------- set-up


def test_first_code_block_is_exactly_the_two_setup_commands() -> None:
    block = re.search(r"^```[^\n]*\n(.*?)^```", README, re.MULTILINE | re.DOTALL)
    assert block is not None, "README.md has no code block"
    lines = [line.strip() for line in block.group(1).splitlines() if line.strip()]
    assert lines == ["make demo", "make test"]


def test_setup_commands_come_first() -> None:
    before = README.split("```", 1)[0]
    assert before.count("\n\n") <= 2, "the set-up block must follow the one-line summary"


# --------------------------------------------------------------------------- config keys


def config_tables(struct: type[msgspec.Struct] = Config, path: str = "") -> Iterator[
        tuple[str, list[str]]]:
    """(dotted table path, its leaf keys) for every table of the config, recursively."""
    leaves: list[str] = []
    for field in msgspec.structs.fields(struct):
        nested = table_struct(field.type)
        dotted = f"{path}.{field.name}" if path else field.name
        if nested is not None:
            yield from config_tables(nested, dotted)
        if nested is None or is_table_array(field.type):
            leaves.append(field.name)
    if path:
        yield path, leaves


def _config_heading(path: str) -> str:
    for title in (f"[{path}]", f"[[{path}]]"):
        if re.search(rf"^#{{3,4}} {re.escape(title)}$", README, re.MULTILINE):
            return title
    raise AssertionError(f"README.md has no '### [{path}]' or '### [[{path}]]' heading")


def test_every_config_key_is_in_the_reference() -> None:
    missing = []
    for path, keys in config_tables():
        documented = table_names(section(_config_heading(path)))
        missing += [f"{path}.{key}" for key in keys if key not in documented]
    assert not missing, f"config keys missing from README.md: {missing}"


def test_config_walk_sees_nested_tables() -> None:
    tables = dict(config_tables())
    assert "profit_pct" in tables["strategy.take_profit_levels"]
    assert "take_profit_levels" in tables["strategy"]
    assert "keypair_path" in tables["wallets"]


# --------------------------------------------------------------------------- command line


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli._parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("cli has no subcommands")


def test_every_subcommand_is_documented() -> None:
    commands = _subcommands()
    assert {"run", "demo", "check", "init", "sim", "journal"} <= set(commands)
    text = section("Command line")
    missing = [name for name in commands if f"lasersell-bot {name}" not in text]
    assert not missing, f"subcommands missing from README.md 'Command line': {missing}"


def test_every_subcommand_flag_is_documented() -> None:
    missing = []
    for name, parser in _subcommands().items():
        for action in parser._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help" and flag not in README:
                    missing.append(f"{name} {flag}")
    assert not missing, f"command-line flags missing from README.md: {missing}"


# --------------------------------------------------------------------------- exit codes


def test_quoted_registration_exit_codes_are_the_clis() -> None:
    """A refused registration is a config problem (2); an unreachable API is retried by
    systemd (1). test_daemon_process checks that the daemon really exits so."""
    rows = section("Troubleshooting").splitlines()
    quoted = {symptom: [r for r in rows if r.startswith(f"| `wallet W: {symptom}")]
              for symptom in ("registration refused", "registration failed")}
    assert all(len(found) == 1 for found in quoted.values()), quoted
    assert f"(exit {cli.EXIT_BAD_INPUT})" in quoted["registration refused"][0]
    assert f"(exit {cli.EXIT_RETRY_LATER})" in quoted["registration failed"][0]
    sentence = re.search(r"Exit codes: (.*)", section("Check, then run"))
    assert sentence is not None
    by_code = dict(re.findall(r"(\d+) (?:for|after) ([^;]+)", sentence.group(1)))
    assert "registration the API refused" in by_code[str(cli.EXIT_BAD_INPUT)]
    assert "could not be reached" in by_code[str(cli.EXIT_RETRY_LATER)]


# --------------------------------------------------------------------------- log events


def _strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _is_log_method(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr in LOG_LEVELS


def _events_in(tree: ast.AST) -> set[str]:
    """First arguments of ``<logger>.<level>(...)`` calls, following one level of local
    names (``event = "a" if ok else "b"``; ``level = log.info if ok else log.error``)."""
    found: set[str] = set()
    scopes = [n for n in ast.walk(tree)
              if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.Module)]
    for scope in scopes:
        assigned: dict[str, list[ast.AST]] = {}
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        assigned.setdefault(target.id, []).append(node.value)
        for node in ast.walk(scope):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            is_log = _is_log_method(func) or (
                isinstance(func, ast.Name)
                and any(_is_log_method(n) for v in assigned.get(func.id, [])
                        for n in ast.walk(v)))
            if not is_log:
                continue
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                candidates = [first.value]
            elif isinstance(first, ast.Name):
                candidates = [s for v in assigned.get(first.id, []) for s in _strings(v)]
            else:
                candidates = []
            found.update(c for c in candidates if c.isidentifier())
    return found


def logged_events() -> set[str]:
    events: set[str] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        if "sim" in path.relative_to(PACKAGE).parts:
            continue
        events |= _events_in(ast.parse(path.read_text(encoding="utf-8")))
    # daemon.py logs the server's mirror notices under their message type.
    message = typing.get_type_hints(session.MirrorEvent)["message"]
    events |= {str(kind.__struct_config__.tag) for kind in get_args(message)}
    return events


def test_every_log_event_is_documented() -> None:
    documented = table_names(section("Log events"))
    missing = sorted(logged_events() - documented)
    assert not missing, f"log events missing from README.md 'Log events': {missing}"


def test_event_finder_sees_known_events() -> None:
    events = logged_events()
    assert {"guard_refused", "hello_ok", "tx_confirmed", "tx_failed",
            "mirror_buy_failed", "land_outcome"} <= events


def _levels_called(func: ast.AST, assigned: dict[str, list[ast.AST]]) -> set[str]:
    if _is_log_method(func):
        return {func.attr}  # type: ignore[attr-defined]
    if isinstance(func, ast.Name):
        return {n.attr for v in assigned.get(func.id, []) for n in ast.walk(v)
                if isinstance(n, ast.Attribute) and _is_log_method(n)}
    return set()


def logged_levels() -> dict[str, set[str]]:
    """``{event: levels it is logged at}`` for literal events (``exception`` counts as
    ``error``), following ``report = log.info if stopping else log.warning``."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "sim" in path.relative_to(PACKAGE).parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for scope in ast.walk(tree):
            if not isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef | ast.Module):
                continue
            assigned: dict[str, list[ast.AST]] = {}
            for node in ast.walk(scope):
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            assigned.setdefault(target.id, []).append(node.value)
            for node in ast.walk(scope):
                if (isinstance(node, ast.Call) and node.args
                        and isinstance(node.args[0], ast.Constant)
                        and isinstance(node.args[0].value, str)):
                    levels = {"error" if level in ("exception", "critical") else level
                              for level in _levels_called(node.func, assigned)}
                    if levels:
                        found.setdefault(node.args[0].value, set()).update(levels)
    return found


def test_every_log_level_in_the_code_is_the_one_documented() -> None:
    documented: dict[str, str] = {}
    for row in section("Log events").splitlines():
        if row.startswith("| `"):
            cells = row.split("|")
            for name in re.findall(r"`([^`]+)`", cells[1]):
                documented[name] = cells[2]
    wrong = sorted(f"{event}: logged at {sorted(levels)}, README says {documented[event]!r}"
                   for event, levels in logged_levels().items()
                   if event in documented and not all(lv in documented[event] for lv in levels))
    assert not wrong, f"README.md 'Log events' has the wrong level: {wrong}"


def test_level_finder_sees_a_level_chosen_at_run_time() -> None:
    levels = logged_levels()
    assert levels["stream_disconnected"] == {"info", "warning"}
    assert levels["shutdown_complete"] == {"info"}


# --------------------------------------------------------------------------- guard reasons


def _first_string_args(tree: ast.AST, callee: str, position: int = 0) -> set[str]:
    reasons: set[str] = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and len(node.args) > position
                and isinstance(node.func, ast.Name | ast.Attribute)
                and (getattr(node.func, "id", None) or getattr(node.func, "attr", None)) == callee):
            arg = node.args[position]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                reasons.add(arg.value)
    return reasons


def guard_reasons() -> set[str]:
    executor = ast.parse((PACKAGE / "executor.py").read_text(encoding="utf-8"))
    reasons: set[str] = set()
    for module in sorted((PACKAGE / "guard").glob("*.py")):
        guard = ast.parse(module.read_text(encoding="utf-8"))
        reasons |= _first_string_args(guard, "refuse") | _first_string_args(guard, "_refuse")
        for node in ast.walk(guard):  # {tag: ("reason", "instruction name", ...)} tables
            if isinstance(node, ast.Dict):
                for value in node.values:
                    if (isinstance(value, ast.Tuple) and value.elts
                            and isinstance(value.elts[0], ast.Constant)
                            and isinstance(value.elts[0].value, str)):
                        reasons.add(value.elts[0].value)
    reasons |= _first_string_args(executor, "_Refused")
    vet = ast.parse((PACKAGE / "vet.py").read_text(encoding="utf-8"))
    reasons |= _first_string_args(vet, "Refused")
    reasons |= _first_string_args(executor, "_refuse_signal", position=1)
    return reasons


def test_every_guard_reason_is_documented() -> None:
    documented = table_names(section("Guard refusal reasons"))
    missing = sorted(guard_reasons() - documented)
    assert not missing, f"guard refusal reasons missing from README.md: {missing}"


def test_guard_reason_finder_sees_known_reasons() -> None:
    assert {"foreign_transfer", "nonce_advance", "stale_signal", "unknown_wallet"} <= (
        guard_reasons())


# --------------------------------------------------------------------------- metrics


def test_every_metric_is_documented() -> None:
    documented = table_names(section("Health and metrics"))
    missing = sorted(m.name for m in Metrics().all() if m.name not in documented)
    assert not missing, f"metrics missing from README.md 'Health and metrics': {missing}"
