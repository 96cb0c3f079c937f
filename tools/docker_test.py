"""``make docker-test``: build the image and run it against the simulator.

Builds with the legacy builder (``DOCKER_BUILDKIT=0``, what Debian's docker.io has),
starts ``lasersell-bot sim`` on 127.0.0.1, runs the image with host networking (so
every byte stays on loopback) and checks: the healthcheck turns ``healthy``, the
process runs as uid 10001, ``docker stop`` exits 0 and the daemon exits 0 after
``shutdown_complete``. Without a Docker daemon it prints why it skipped and exits 0.

Environment: ``PYTHON_IMAGE`` overrides the base image (e.g. the local one built by
``tools/docker-base.sh`` where no registry can be reached); ``DOCKER`` the client.
Run as root (it gives the test key file to uid 10001, as the README tells users to).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from solders.keypair import Keypair

REPO = Path(__file__).resolve().parent.parent
IMAGE = "lasersell-bot:docker-test"
CONTAINER = "lasersell-bot-docker-test"
IMAGE_UID = 10001
HEALTHY_WITHIN_S = 90.0


class Failed(Exception):
    """A check failed; the message says which."""


def docker(*args: str, check: bool = True, timeout: float = 120,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([os.environ.get("DOCKER", "docker"), *args], capture_output=True,
                            text=True, timeout=timeout, env=env, check=False)
    if check and result.returncode != 0:
        raise Failed(f"docker {' '.join(args[:2])} failed ({result.returncode}): "
                     f"{result.stderr.strip()[-2000:]}")
    return result


def docker_unavailable() -> str | None:
    """Why Docker cannot be used here, or None."""
    if shutil.which(os.environ.get("DOCKER", "docker")) is None:
        return "no docker client on PATH"
    try:
        info = docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=20)
    except subprocess.TimeoutExpired:
        return "the Docker daemon did not answer within 20 s"
    if info.returncode != 0:
        return f"no Docker daemon available ({info.stderr.strip().splitlines()[-1:]})"
    return None


def build() -> None:
    args = ["build", "--network", "host", "-t", IMAGE]
    base = os.environ.get("PYTHON_IMAGE")
    if base:
        args += ["--build-arg", f"PYTHON_IMAGE={base}"]
    started = time.monotonic()
    docker(*args, str(REPO), timeout=1800, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    print(f"docker-test: built {IMAGE} with the legacy builder in "
          f"{time.monotonic() - started:.0f} s (base {base or 'from the Dockerfile'})")


def free_port_pair() -> int:
    """A port P with P and P + 1 free on 127.0.0.1 (the simulator uses both)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if port < 65535 and _is_free(port) and _is_free(port + 1):
            return port
    raise Failed("no two adjacent free ports on 127.0.0.1")


def _is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextmanager
def simulator(port: int) -> Iterator[None]:
    sim = subprocess.Popen([sys.executable, "-m", "lasersell_bot", "sim", "--port", str(port)],
                           cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert sim.stdout is not None
        for line in sim.stdout:
            if line.startswith("rpc url:"):
                break
        else:
            raise Failed(f"the simulator did not start (exit {sim.wait()})")
        yield
    finally:
        sim.terminate()
        sim.wait(timeout=20)


def write_files(directory: Path, sim_port: int, http_port: int) -> tuple[Path, Path]:
    config = directory / "config.toml"
    config.write_text("\n".join([
        "[stream]", f'url = "ws://127.0.0.1:{sim_port}/v1/ws"',
        f'api_url = "http://127.0.0.1:{sim_port}"', "",
        "[rpc]", f'url = "http://127.0.0.1:{sim_port + 1}"', "",
        "[[wallets]]", 'keypair_path = "credential:wallet-keypair"', "",
        "[strategy]", "stop_loss_pct = 20.0", "",
        "[log]", "syslog_prefix = false", "",
        "[http]", f'listen = "127.0.0.1:{http_port}"', ""]))
    config.chmod(0o644)
    key = directory / "wallet.json"
    key.write_text(json.dumps(list(bytes(Keypair()))))
    key.chmod(0o600)
    os.chown(key, IMAGE_UID, IMAGE_UID)  # as the README says: owned by the image's uid
    return config, key


def run_container(config: Path, key: Path, http_port: int) -> None:
    docker("run", "-d", "--name", CONTAINER, "--network", "host",
           "-v", f"{config}:/etc/lasersell-bot/config.toml:ro",
           "-v", f"{key}:/run/secrets/wallet-keypair:ro",
           "-e", "CREDENTIALS_DIRECTORY=/run/secrets",
           "-e", f"LASERSELL_HEALTH_URL=http://127.0.0.1:{http_port}/healthz",
           "--health-interval", "1s", "--health-timeout", "3s", "--health-retries", "3",
           IMAGE)


def state(field: str) -> str:
    return docker("inspect", "--format", f"{{{{{field}}}}}", CONTAINER).stdout.strip()


def wait_healthy() -> float:
    started = time.monotonic()
    while time.monotonic() - started < HEALTHY_WITHIN_S:
        if state(".State.Running") != "true":
            raise Failed(f"the container exited ({state('.State.ExitCode')}):\n{logs()}")
        if state(".State.Health.Status") == "healthy":
            return time.monotonic() - started
        time.sleep(0.5)
    raise Failed(f"not healthy within {HEALTHY_WITHIN_S:g} s "
                 f"({state('.State.Health.Status')}):\n{logs()}")


def logs() -> str:
    result = docker("logs", "--tail", "40", CONTAINER, check=False)
    return result.stdout + result.stderr


def check_non_root() -> None:
    uid = docker("exec", CONTAINER, "id", "-u").stdout.strip()
    if uid != str(IMAGE_UID):
        raise Failed(f"the daemon runs as uid {uid}, not {IMAGE_UID}")


def stop_cleanly() -> float:
    started = time.monotonic()
    stopped = docker("stop", "-t", "45", CONTAINER, check=False, timeout=90)
    took = time.monotonic() - started
    if stopped.returncode != 0:
        raise Failed(f"docker stop exited {stopped.returncode}: {stopped.stderr.strip()}")
    code = state(".State.ExitCode")
    if code != "0" or "shutdown_complete" not in logs():
        raise Failed(f"the daemon exited {code} without a clean shutdown:\n{logs()}")
    return took


def main() -> int:
    why_not = docker_unavailable()
    if why_not is not None:
        print(f"docker-test: SKIPPED: {why_not}; nothing was built or run")
        return 0
    if os.geteuid() != 0:
        print("docker-test: FAILED: run as root (the test key file must be owned by uid "
              f"{IMAGE_UID}, as in the README's docker run)", file=sys.stderr)
        return 1
    try:
        build()
        docker("rm", "-f", "-v", CONTAINER, check=False)
        sim_port, http_port = free_port_pair(), free_port_pair()
        with tempfile.TemporaryDirectory(prefix="lasersell-docker-test-") as tmp, \
                simulator(sim_port):
            os.chmod(tmp, 0o755)  # the uid inside must reach the mounted files
            config, key = write_files(Path(tmp), sim_port, http_port)
            try:
                run_container(config, key, http_port)
                healthy_after = wait_healthy()
                check_non_root()
                stop_took = stop_cleanly()
            finally:
                docker("rm", "-f", "-v", CONTAINER, check=False)
    except Failed as exc:
        print(f"docker-test: FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"docker-test: OK: healthy after {healthy_after:.1f} s, runs as uid {IMAGE_UID}, "
          f"docker stop exited 0 in {stop_took:.1f} s with a clean shutdown")
    return 0


if __name__ == "__main__":
    sys.exit(main())
