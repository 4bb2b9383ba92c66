"""The team server: docker-compose.yml, the Dockerfile and .env.example.

No Docker engine runs on our machines, so two kinds of test stand in for
`docker-compose up`:

- Debian's `docker-compose config` validates the file against a sample .env, and the
  configuration it prints is checked: services, healthchecks, start order, the data
  volume, secrets taken from .env. It skips when the `docker-compose` binary is
  missing, unless TRAINBOARD_REQUIRE_COMPOSE=1 turns the skip into a failure.
- The server and ui services are started here by hand, with the command lines,
  environment and healthchecks the compose file gives them. Only what names the
  containers' world is mapped onto this machine: `postgres:5432` onto the local
  PostgreSQL (a scratch role and database, as the postgres image's first start makes
  them), the ports 6009 and 8501 onto free ones, the tmpfs onto a temporary folder.
  A trainer logs through the SDK with the write token; the data is read back through
  the Reader with the read token and through the dashboard process itself.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from server_process import free_port
from up_process import alive, descendants

import trainboard
from trainboard.cli.processes import http_ok
from trainboard.errors import Unauthenticated

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
# Installed as /usr/local/bin/trainboard-server in the image; here it goes on PATH.
DOCKER_SCRIPTS = ROOT / "docker"

REQUIRE_COMPOSE = os.environ.get("TRAINBOARD_REQUIRE_COMPOSE") == "1"
SECRETS = ("POSTGRES_PASSWORD", "TRAINBOARD_WRITE_TOKEN", "TRAINBOARD_READ_TOKEN")
SERVER_PORT = 6009  # inside the server container
UI_PORT = 8501  # inside the ui container
PGDATA = "/var/lib/postgresql/data"  # where postgres images up to 17 keep the cluster
STARTUP_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0
EXPERIMENT = "compose"
RUNS = ("lr=0.1", "lr=0.5")
STEPS = 20


# ---------------------------------------------------------------- compose file


def sample_env() -> dict[str, str]:
    """A .env as the README says to make one: a fresh random value per secret."""
    return {name: secrets.token_hex(16) for name in SECRETS}


def write_env_file(path: Path, env: Mapping[str, str]) -> Path:
    path.write_text("".join(f"{name}={value}\n" for name, value in env.items()))
    return path


_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable substitution: $$, $VAR, ${VAR}, ${VAR:-default},
    ${VAR-default}, ${VAR:?error} and ${VAR?error}."""

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["name"] or match["bare"]
        value = env.get(name)
        op = match["op"]
        missing = value is None or (op is not None and op.startswith(":") and not value)
        if op is not None and missing:
            if op.endswith("?"):
                raise KeyError(f"{name}: {match['arg']}")
            return str(match["arg"])
        return value or ""

    return _VARIABLE.sub(substitute, text)


def interpolated(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolated(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolated(value, env) for key, value in node.items()}
    return node


def load_compose(env: Mapping[str, str]) -> dict[str, Any]:
    """docker-compose.yml as PyYAML reads it, with ``env`` substituted."""
    config: dict[str, Any] = interpolated(yaml.safe_load(COMPOSE_FILE.read_text()), env)
    return config


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment, from either of compose's two spellings."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {str(key): str(value) for key, value in raw.items()}


def healthcheck_argv(service: Mapping[str, Any]) -> list[str]:
    """The healthcheck's command (the exec form, without its leading "CMD")."""
    test = service["healthcheck"]["test"]
    assert isinstance(test, list), "a healthcheck in the exec form: no shell to quote through"
    assert test[0] == "CMD", test
    return [str(part) for part in test[1:]]


def published_targets(service: Mapping[str, Any]) -> set[int]:
    """The container ports a service publishes (short or long syntax)."""
    targets = set()
    for port in service.get("ports", []):
        if isinstance(port, dict):
            targets.add(int(port["target"]))
        else:
            targets.add(int(str(port).rsplit(":", 1)[-1].split("/")[0]))
    return targets


def option(argv: Sequence[str], name: str) -> str:
    """The value after ``name`` in a command line."""
    assert name in argv, f"{name} missing from {argv}"
    return argv[list(argv).index(name) + 1]


def tmpfs_paths(service: Mapping[str, Any]) -> list[str]:
    mounts = service.get("tmpfs", [])
    return [str(m).split(":", 1)[0] for m in ([mounts] if isinstance(mounts, str) else mounts)]


def database_url(env: Mapping[str, str], *, user: str, database: str) -> str:
    password = env["POSTGRES_PASSWORD"]
    return f"postgresql://{user}:{password}@postgres:5432/{database}"


def assert_team_services(config: Mapping[str, Any], env: Mapping[str, str]) -> None:
    """What the issue asks of the compose file, on a configuration as docker-compose
    prints it or as PyYAML reads it."""
    services = config["services"]
    assert set(services) == {"postgres", "server", "ui"}
    postgres, server, ui = services["postgres"], services["server"], services["ui"]

    # PostgreSQL: a pinned major version, its data on a named volume, ready over TCP.
    image = re.fullmatch(r"postgres:(\d+)(?:\.\d+)?(?:-[a-z0-9.]+)?", postgres["image"])
    assert image, f"pin the major version: {postgres['image']}"
    assert int(image[1]) < 18, "PostgreSQL 18 images keep the data under /var/lib/postgresql/18"
    volumes = [str(v).split(":") for v in postgres["volumes"]]
    assert [v[:2] for v in volumes] == [["postgres-data", PGDATA]], postgres["volumes"]
    assert "postgres-data" in config["volumes"]
    probe = healthcheck_argv(postgres)
    assert probe[0] == "pg_isready", probe
    assert "-h" in probe, "over TCP: the first start's socket-only server is not ready"
    pg_env = environment(postgres)
    assert pg_env["POSTGRES_PASSWORD"] == env["POSTGRES_PASSWORD"]

    # The server: after a healthy database, on every interface, tokens from .env.
    assert server["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert option(server["command"], "--host") == "0.0.0.0"
    assert option(server["command"], "--port") == str(SERVER_PORT)
    assert SERVER_PORT in published_targets(server)
    server_env = environment(server)
    expected_db = database_url(env, user=pg_env["POSTGRES_USER"], database=pg_env["POSTGRES_DB"])
    assert server_env["TRAINBOARD_DB"] == expected_db
    assert server_env["TRAINBOARD_WRITE_TOKEN"] == env["TRAINBOARD_WRITE_TOKEN"]
    assert server_env["TRAINBOARD_READ_TOKEN"] == env["TRAINBOARD_READ_TOKEN"]
    tokens_dir = str(Path(server_env["TRAINBOARD_TOKENS_FILE"]).parent)
    assert tokens_dir in tmpfs_paths(server), "the tokens file lives on a tmpfs"
    assert any(f"127.0.0.1:{SERVER_PORT}" in part for part in healthcheck_argv(server))

    # The dashboard: after a healthy server, reading with the read token.
    assert ui["depends_on"] == {"server": {"condition": "service_healthy"}}
    assert option(ui["command"], "--server") == f"server:{SERVER_PORT}"
    assert option(ui["command"], "--host") == "0.0.0.0"
    assert option(ui["command"], "--port") == str(UI_PORT)
    assert UI_PORT in published_targets(ui)
    assert environment(ui) == {"TRAINBOARD_TOKEN": env["TRAINBOARD_READ_TOKEN"]}
    assert any(f"127.0.0.1:{UI_PORT}/_stcore/health" in p for p in healthcheck_argv(ui))

    # One image, built here, for the server and the dashboard.
    assert server["image"] == ui["image"]
    assert "build" in server
    assert "build" in ui


@pytest.fixture(scope="module")
def docker_compose() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        reason = "the docker-compose binary is missing (apt-get install -y docker-compose)"
        if REQUIRE_COMPOSE:
            pytest.fail(f"TRAINBOARD_REQUIRE_COMPOSE=1 but {reason}")
        pytest.skip(reason)
    return binary


def compose_config(binary: str, env_file: Path) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` on our compose file with ``env_file`` as its .env;
    nothing from this process's environment can stand in for a missing value."""
    clean = {
        name: value
        for name, value in os.environ.items()
        if name not in SECRETS and not name.startswith("TRAINBOARD_")
    }
    return subprocess.run(
        [binary, "--env-file", str(env_file), "--file", str(COMPOSE_FILE), "config"],
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_docker_compose_config_accepts_the_file_with_a_sample_env(
    docker_compose: str, tmp_path: Path
) -> None:
    env = sample_env()
    result = compose_config(docker_compose, write_env_file(tmp_path / ".env", env))
    assert result.returncode == 0, result.stderr
    assert_team_services(yaml.safe_load(result.stdout), env)


def test_docker_compose_refuses_an_env_whose_secrets_are_not_filled_in(
    docker_compose: str, tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    shutil.copy(ENV_EXAMPLE, env_file)  # as copied, before anyone fills it in
    result = compose_config(docker_compose, env_file)
    assert result.returncode != 0
    assert any(name in result.stderr for name in SECRETS), result.stderr


def test_the_compose_file_read_with_pyyaml_declares_the_team_services() -> None:
    env = sample_env()
    assert_team_services(load_compose(env), env)


def test_env_example_names_every_secret_and_holds_none() -> None:
    example = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            example[name.strip()] = value.strip()
    required = {m["name"] for m in _VARIABLE.finditer(COMPOSE_FILE.read_text()) if m["op"]}
    required = {name for name in required if name in SECRETS}
    assert required == set(SECRETS)
    assert {name: example.get(name) for name in SECRETS} == dict.fromkeys(SECRETS, "")
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        load_compose(example)
    assert ".env" in (ROOT / ".gitignore").read_text().split()


# ---------------------------------------------------------------- Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def image_env() -> dict[str, str]:
    """The ENV of the image's last stage, PATH aside (the test maps it)."""
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    env = {}
    for keyword, args in instructions[last_from:]:
        if keyword == "ENV":
            for pair in shlex.split(args):
                name, sep, value = pair.partition("=")
                assert sep, f"ENV {args}: write NAME=value"
                env[name] = value
    env.pop("PATH", None)
    return env


def test_the_image_runs_as_a_non_root_user_and_bakes_in_no_secret() -> None:
    instructions = dockerfile_instructions()
    images = [args.split()[0] for keyword, args in instructions if keyword == "FROM"]
    assert images
    assert all(image == "python:3.11-slim" for image in images), images
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users, "the image must switch to a non-root user"
    assert users[-1].split(":")[0] not in ("root", "0"), users[-1]
    installs = [args for keyword, args in instructions if keyword == "RUN" and "pip" in args]
    assert any("--no-cache-dir" in run and "'.[all]'" in run for run in installs), installs
    assert not any("torch" in run for run in installs)
    exposed = {p for keyword, args in instructions if keyword == "EXPOSE" for p in args.split()}
    assert exposed == {str(SERVER_PORT), str(UI_PORT)}
    # Nothing secret in ENV, ARG, or copied in: secrets reach containers at run time.
    secret_words = re.compile(r"PASSWORD|TOKEN|SECRET", re.IGNORECASE)
    for keyword, args in instructions:
        if keyword in ("ENV", "ARG"):
            assert not secret_words.search(args), f"{keyword} {args}"
        if keyword in ("COPY", "ADD"):
            assert ".env" not in args.split(), f"{keyword} {args}"
    # The build context is a short allow-list: .env, .venv and databases stay out.
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    assert not [p for p in patterns if p.startswith("!") and ".env" in p]


# ---------------------------------------------------------------- services by hand


@dataclass(frozen=True)
class Here:
    """Where the containers' names, ports and mounts land on this machine."""

    server_port: int
    ui_port: int
    runtime_dir: Path  # stands in for the server's tmpfs
    home: Path

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.server_port}"

    def command(self, argv: Sequence[str]) -> list[str]:
        """A service's command line with the in-container ports and addresses mapped."""
        exact = {
            str(SERVER_PORT): str(self.server_port),
            str(UI_PORT): str(self.ui_port),
            f"server:{SERVER_PORT}": self.server,
        }
        return [exact.get(str(arg), str(arg)) for arg in argv]

    def probe(self, argv: Sequence[str]) -> list[str]:
        """A healthcheck's command with the loopback address inside the container mapped."""
        mapped = [
            arg.replace(f"127.0.0.1:{SERVER_PORT}", self.server).replace(
                f"127.0.0.1:{UI_PORT}", f"127.0.0.1:{self.ui_port}"
            )
            for arg in argv
        ]
        assert mapped != list(argv), f"the healthcheck does not probe the service's port: {argv}"
        return mapped

    def path(self, container_path: str, tmpfs: Sequence[str]) -> str:
        mount = next((m for m in tmpfs if container_path.startswith(m + "/")), None)
        assert mount is not None, f"{container_path} is on no tmpfs of the service"
        return str(self.runtime_dir / container_path[len(mount) + 1 :])

    def process_env(self, service_env: Mapping[str, str]) -> dict[str, str]:
        """The container's environment: the image's (its PATH mapped: docker/ stands
        in for /usr/local/bin, this virtualenv for /opt/trainboard) and the service's."""
        scripts, venv = str(DOCKER_SCRIPTS), str(Path(sys.executable).parent)
        return {
            "PATH": os.pathsep.join([scripts, venv, "/usr/local/bin", "/usr/bin", "/bin"]),
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            **image_env(),
            **service_env,
        }


@dataclass(frozen=True)
class LocalDatabase:
    """The local stand-in for the postgres service: a role and a database of its own."""

    admin_url: str
    role: str
    name: str

    def url_for(self, compose_url: str, postgres_env: Mapping[str, str]) -> str:
        """The server's TRAINBOARD_DB with the postgres service's host, role and
        database replaced by this one's; the password stays as .env gave it."""
        from sqlalchemy.engine import make_url

        url = make_url(compose_url)
        assert (url.host, url.port) == ("postgres", 5432), compose_url
        assert url.username == postgres_env["POSTGRES_USER"]
        assert url.database == postgres_env["POSTGRES_DB"]
        assert url.password == postgres_env["POSTGRES_PASSWORD"]
        admin = make_url(self.admin_url)
        local = url.set(host=admin.host, port=admin.port, username=self.role, database=self.name)
        return local.render_as_string(hide_password=False)


@pytest.fixture
def compose_env() -> dict[str, str]:
    return sample_env()


@pytest.fixture
def local_database(postgres_database: str, compose_env: dict[str, str]) -> Iterator[LocalDatabase]:
    """What the postgres image does on its first start (a login role with the
    password from .env, owning its database), under names no other test uses."""
    import psycopg
    from psycopg import sql

    admin_url = postgres_database.replace("postgresql+psycopg://", "postgresql://", 1)
    suffix = uuid.uuid4().hex[:10]
    database = LocalDatabase(admin_url, f"trainboard_{suffix}", f"trainboard_{suffix}")
    role, name = sql.Identifier(database.role), sql.Identifier(database.name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                role, sql.Literal(compose_env["POSTGRES_PASSWORD"])
            )
        )
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(name, role))
    try:
        yield database
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(role))


class ServiceProcess:
    """A compose service's command run here, in a process group of its own."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log
        self.process: subprocess.Popen[bytes] | None = None
        self._seen: set[int] = set()

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} not started"
        return self.process.pid

    def start(self, cwd: Path) -> None:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,
            )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def processes(self) -> set[int]:
        """The service's live processes (itself and everything below it)."""
        found = {self.pid, *descendants(self.pid)}
        self._seen |= found
        return {pid for pid in found if alive(pid)}

    def wait_healthy(self, probe: Sequence[str], timeout: float = STARTUP_TIMEOUT) -> None:
        """Runs the service's healthcheck until it passes; fails if the service
        exits or the deadline passes first."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"the {self.name} exited ({self.process.returncode}):\n{self.log()}")
            check = subprocess.run(probe, env=self.env, capture_output=True, timeout=30)
            if check.returncode == 0:
                self.processes()  # remember its children, to check they stop with it
                return
            if time.monotonic() > deadline:
                pytest.fail(f"the {self.name} was not healthy within {timeout:g} s:\n{self.log()}")
            time.sleep(0.2)  # paces the polling; the healthcheck itself is the wait

    def stop(self) -> int:
        """SIGTERM, as `docker-compose stop` sends it; returns the exit status."""
        assert self.process is not None
        self.processes()
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"the {self.name} did not stop on SIGTERM:\n{self.log()}")

    def left_behind(self) -> set[int]:
        return {pid for pid in self._seen if alive(pid)}

    def kill(self) -> None:
        """After a failure: SIGKILL to everything of the service still running."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.processes()
            self.process.kill()
            self.process.wait()
        for pid in self.left_behind():
            os.kill(pid, signal.SIGKILL)


def dashboard_page_text(ui_port: int, timeout: float = 60.0) -> bytes:
    """Opens a session of the running dashboard as a browser does (Streamlit's
    websocket), runs its script once and returns everything it drew, serialised."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.sync.client import connect
    from websockets.typing import Subprotocol

    drawn = []
    url = f"ws://127.0.0.1:{ui_port}/_stcore/stream"
    with connect(url, subprotocols=[Subprotocol("streamlit")], open_timeout=timeout) as socket:
        rerun = BackMsg()
        rerun.rerun_script.query_string = ""
        socket.send(rerun.SerializeToString())
        deadline = time.monotonic() + timeout
        while True:
            raw = socket.recv(timeout=max(0.1, deadline - time.monotonic()))
            assert isinstance(raw, bytes)
            message = ForwardMsg()
            message.ParseFromString(raw)
            drawn.append(raw)
            if message.WhichOneof("type") == "script_finished":
                assert message.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY
                return b"".join(drawn)


def proc_text(pid: int, name: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:  # exited meanwhile
        return b""


def test_server_and_dashboard_run_as_compose_starts_them(
    local_database: LocalDatabase, compose_env: dict[str, str], tmp_path: Path
) -> None:
    services = load_compose(compose_env)["services"]
    postgres, server, ui = services["postgres"], services["server"], services["ui"]
    (tmp_path / "run").mkdir(mode=0o700)
    (tmp_path / "home").mkdir()
    here = Here(free_port(), free_port(), tmp_path / "run", tmp_path / "home")

    # The postgres service's healthcheck, against the local stand-in.
    pg_probe = healthcheck_argv(postgres)
    pg_probe[pg_probe.index("-U") + 1] = local_database.role
    pg_probe[pg_probe.index("-d") + 1] = local_database.name
    assert subprocess.run(pg_probe, capture_output=True, timeout=30).returncode == 0

    server_env = environment(server)
    tokens_file = here.path(server_env["TRAINBOARD_TOKENS_FILE"], tmpfs_paths(server))
    server_env |= {
        "TRAINBOARD_DB": local_database.url_for(server_env["TRAINBOARD_DB"], environment(postgres)),
        "TRAINBOARD_TOKENS_FILE": tokens_file,
    }
    started = [
        ServiceProcess(
            "server", here.command(server["command"]), here.process_env(server_env), tmp_path / "s"
        ),
        ServiceProcess(
            "ui", here.command(ui["command"]), here.process_env(environment(ui)), tmp_path / "u"
        ),
    ]
    server_process, ui_process = started
    write_token = compose_env["TRAINBOARD_WRITE_TOKEN"]
    read_token = compose_env["TRAINBOARD_READ_TOKEN"]
    try:
        # In compose's order: each once the one it depends on is healthy.
        server_process.start(cwd=here.home)
        server_process.wait_healthy(here.probe(healthcheck_argv(server)))
        ui_process.start(cwd=here.home)
        ui_process.wait_healthy(here.probe(healthcheck_argv(ui)))

        # The server migrated the database and requires tokens.
        import psycopg

        local_url = server_env["TRAINBOARD_DB"]
        with psycopg.connect(local_url) as conn:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchone()
        with (
            trainboard.Reader(here.server, token=None) as anonymous,
            pytest.raises(Unauthenticated),
        ):
            anonymous.experiments()

        # A trainer logs with the write token ...
        for rate, run in zip((0.1, 0.5), RUNS, strict=True):
            with trainboard.Client(
                EXPERIMENT,
                run,
                here.server,
                params={"lr": rate},
                token=write_token,
                spool_dir=tmp_path / "spool",
            ) as client:
                for step in range(STEPS):
                    client.log_scalar("loss", 1.0 / (1.0 + rate * step), step=step)
                assert client.flush(timeout=60)

        # ... and what it logged reads back with the read token.
        with trainboard.Reader(here.server, token=read_token) as reader:
            runs = reader.runs(EXPERIMENT)
            assert [r.name for r in runs] == list(RUNS)
            series = reader.scalars(runs[1].id, "loss")
            assert series.steps.tolist() == list(range(STEPS))
            assert series.values.tolist() == [1.0 / (1.0 + 0.5 * s) for s in range(STEPS)]

        # The dashboard process, with its read token, draws those runs.
        assert http_ok(f"http://127.0.0.1:{here.ui_port}/")
        page = dashboard_page_text(here.ui_port)
        assert EXPERIMENT.encode() in page
        assert all(run.encode() in page for run in RUNS)
        assert b"Cannot reach the Trainboard server" not in page

        # Tokens: never on a command line, out of the server's environment once
        # written to a file only its owner may read.
        for service in started:
            for pid in service.processes():
                cmdline = proc_text(pid, "cmdline")
                assert write_token.encode() not in cmdline
                assert read_token.encode() not in cmdline
        environ = proc_text(server_process.pid, "environ")
        assert write_token.encode() not in environ, "the server's environment holds a token"
        assert stat.S_IMODE(os.stat(tokens_file).st_mode) == 0o600

        # Stopped as `docker-compose down` stops them: the ui first, both cleanly.
        for service in reversed(started):
            assert service.stop() == 0, service.log()
            assert not service.left_behind(), f"the {service.name} left processes behind"
    finally:
        for service in started:
            service.kill()
