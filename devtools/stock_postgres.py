"""A stock PostgreSQL server, as users run it, on a loopback TCP port: for tests and the benchmark.

Uses the server binaries of Debian's ``postgresql`` package (``/usr/lib/postgresql/<version>/bin``, the
newest version found; ``NANGO_STOCK_POSTGRES_BIN`` names another folder). The data directory is made by
``initdb`` in a temporary folder and the server runs with initdb's default configuration: JIT on (where the
package ships LLVM JIT, as Debian's does), ``fsync`` on, ``full_page_writes`` on. Only where it listens is
set (127.0.0.1 and a free port, its Unix socket in the data directory). ``settings`` adds ``-c name=value``
options, for a test that needs a statistics extension.

As root, the server runs as the ``postgres`` system user that the package creates (Postgres refuses to run
as root). Install the package with ``apt-get install -y postgresql`` (``make postgres-server`` does it).
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from devtools.embedded_postgres import free_port, serve_until_interrupted

_DEBIAN_ROOT = Path("/usr/lib/postgresql")
_SYSTEM_USER = "postgres"
_START_TIMEOUT = 60


class StockPostgresMissing(RuntimeError):
    """The Debian PostgreSQL server package is not installed."""


def server_bin_dir() -> Path:
    """Folder of the newest installed server binaries (``initdb``, ``pg_ctl``, ``postgres``)."""
    override = os.environ.get("NANGO_STOCK_POSTGRES_BIN")
    if override:
        candidates = [Path(override)]
    else:
        versions = sorted(
            (path for path in _DEBIAN_ROOT.glob("*/bin") if path.parent.name.isdigit()),
            key=lambda path: int(path.parent.name),
        )
        candidates = versions[-1:]
    for folder in candidates:
        if (folder / "postgres").is_file() and (folder / "initdb").is_file():
            return folder
    raise StockPostgresMissing(
        f"no PostgreSQL server binaries under {_DEBIAN_ROOT}/<version>/bin: install Debian's server package "
        "as root with `apt-get install -y postgresql` (or run `make postgres-server`)"
    )


def is_installed() -> bool:
    """Whether the server binaries are there."""
    try:
        server_bin_dir()
    except StockPostgresMissing:
        return False
    return True


class StockPostgres:
    """Start with :meth:`start`, stop with :meth:`stop` (or use as a context manager)."""

    def __init__(self, settings: dict[str, str] | None = None, port: int | None = None) -> None:
        self.bin_dir = server_bin_dir()
        self.settings = dict(settings or {})
        self.port = port or free_port()
        self.data_dir = Path(tempfile.mkdtemp(prefix="nango-stock-pg-"))
        self._user = _SYSTEM_USER if os.geteuid() == 0 else None
        self._started = False

    @property
    def uri(self) -> str:
        """``postgresql://postgres@127.0.0.1:<port>/postgres``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def version(self) -> str:
        """The server's major version, from the binaries' folder (``15``)."""
        return self.bin_dir.parent.name

    def start(self) -> StockPostgres:
        """``initdb`` (trust authentication for local connections, superuser ``postgres``), then start."""
        if self._user is not None:
            account = pwd.getpwnam(self._user)
            os.chown(self.data_dir, account.pw_uid, account.pw_gid)
        self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = [f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data_dir}"]
        options += [f"-c {name}={value}" for name, value in self.settings.items()]
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-w", "-t", str(_START_TIMEOUT), "-l", str(self.data_dir / "log"),
            "-o", " ".join(options), "start",
        )  # fmt: skip
        self._started = True
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its data directory."""
        try:
            if self._started:
                self._run("pg_ctl", "-D", str(self.data_dir), "-w", "-m", "fast", "-t", str(_START_TIMEOUT), "stop")
                self._started = False
        finally:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def log_text(self) -> str:
        """The server log so far (empty if there is none)."""
        path = self.data_dir / "log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        completed = subprocess.run(
            command,
            cwd="/",
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=_START_TIMEOUT + 30,
            check=False,
        )
        if completed.returncode != 0:
            log = self.log_text()[-2000:]
            raise RuntimeError(f"{program} failed ({completed.returncode}): {completed.stdout[-2000:]}\n{log}")

    def __enter__(self) -> StockPostgres:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main() -> None:
    """``python -m devtools.stock_postgres``: run a stock Postgres in the foreground and print its URI."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args()
    serve_until_interrupted(StockPostgres(port=args.port))


if __name__ == "__main__":
    main()
