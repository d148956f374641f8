"""Fixtures for the rating tests: study inputs, and the same store on SQLite and on a real
PostgreSQL server that these tests start themselves (initdb into a temp dir, as the ``postgres``
OS user when run as root, on a free loopback port)."""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tidekit.data import Dataset, GenerationRecord, load_dataset, sample_path
from tidekit.rating import RatingStudyConfig, create_study

XSS = "<script>alert('xss')</script>"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


RequireTool = Callable[[str], str]


@pytest.fixture(scope="session")
def require_tool(request: pytest.FixtureRequest) -> RequireTool:
    """tests/conftest.py's ``require_tool`` (skip locally, fail in CI), reached through pytest
    because two modules named ``conftest`` cannot import each other."""
    root = request.config.pluginmanager.get_plugin(str(Path(__file__).parents[1] / "conftest.py"))
    assert root is not None, "tests/conftest.py is not loaded"
    return root.require_tool  # type: ignore[no-any-return]


def pg_tool(name: str, require_tool: RequireTool) -> str:
    """A PostgreSQL server binary: on PATH, or where Debian puts it (not on PATH)."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                                                   reverse=True)), None)
    return found or require_tool(name)


class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1."""

    def __init__(self, require_tool: RequireTool) -> None:
        initdb, self.pg_ctl = pg_tool("initdb", require_tool), pg_tool("pg_ctl", require_tool)
        self.dir = Path(tempfile.mkdtemp(prefix="tidekit-pg-"))
        self.port = free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            runuser = require_tool("runuser")
            self.prefix = [runuser, "-u", "postgres", "--"]
            shutil.chown(self.dir, "postgres", "postgres")
        data = self.dir / "data"
        subprocess.run([*self.prefix, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync",
                        "-E", "UTF8"], check=True, capture_output=True)
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off -c max_connections=200"
        subprocess.run([*self.prefix, self.pg_ctl, "-D", str(data), "-o", opts, "-l", str(self.dir / "log"),
                        "-w", "-t", "60", "start"], check=True, capture_output=True)
        self.data = data
        self._n = itertools.count()

    def new_database(self) -> str:
        import psycopg

        name = f"tk_{os.getpid()}_{next(self._n)}"
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        subprocess.run([*self.prefix, self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"],
                       check=False, capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server(require_tool: RequireTool) -> Iterator[PostgresServer]:
    server = PostgresServer(require_tool)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database URL on each backend."""
    if request.param == "sqlite":
        return str(tmp_path / "ratings.db")
    server: PostgresServer = request.getfixturevalue("pg_server")
    return server.new_database()


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    return load_dataset(sample_path())


def make_generations(dataset: Dataset, conversations: int = 10) -> list[GenerationRecord]:
    """Two systems' replies to the first conversations; one reply carries a script tag."""
    out = []
    for n, conv in enumerate(dataset.conversations[:conversations]):
        for cond in ("zero_shot", "fine_tuned"):
            text = (f"It makes sense that you feel this way ({cond}, {conv.id}). You are not alone."
                    if n or cond == "fine_tuned" else f"I hear you. {XSS} <b>bold</b> & more")
            out.append(GenerationRecord(conversation_id=conv.id, system=f"smollm2-135m:{cond}",
                                        model="smollm2-135m", condition=cond, output=text))
    return out


@pytest.fixture
def xss() -> str:
    """The script tag one reply carries."""
    return XSS


@pytest.fixture
def generations(dataset: Dataset) -> list[GenerationRecord]:
    """The replies ``make_study`` uses by default."""
    return make_generations(dataset)


@pytest.fixture
def make_study(dataset: Dataset) -> Callable[..., tuple[str, str]]:
    """Create a small study in a database; returns (db url, admin token)."""

    def _make(db: str, conversations: int = 10, **overrides: object) -> tuple[str, str]:
        gens = make_generations(dataset, conversations)
        config = RatingStudyConfig.model_validate({"items_per_rater": 6, "ratings_per_item": 2, "attention_checks": 1,
                                             "seed": 3, "split": None, **overrides})
        summary = create_study(config, Dataset(personas=dataset.personas, conversations=dataset.conversations),
                               gens, db=db, admin_token="test-admin-token")
        assert summary.created
        return db, "test-admin-token"

    return _make


@pytest.fixture
def serve_study() -> Callable[..., contextlib.AbstractContextManager[tuple[str, subprocess.Popen[bytes]]]]:
    """``running_server`` as a fixture (test modules cannot import this conftest)."""
    return running_server


@contextlib.contextmanager
def running_server(db: str, *args: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``tidekit rate serve`` in a subprocess on a free loopback port; yields (base URL, process)."""
    import httpx

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tidekit", "rate", "serve", "--db", db,
                             "--port", str(port), *args], env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError("server did not start in 30 s")
            time.sleep(0.1)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
