"""A private Postgres on a loopback TCP port, for the tests, the demo and the benchmark.

Built on the binaries that the ``pgserver`` package ships: ``pgserver`` initializes the data directory
(and, when running as root, the system user Postgres needs), then the server is restarted listening on
127.0.0.1 at a free port, so that Airflow connection URIs work as they would for any real database.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

logging.getLogger("pgserver").setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class EmbeddedPostgres:
    """Start with :meth:`start`, stop with :meth:`stop` (or use as a context manager)."""

    def __init__(self, data_dir: str | Path | None = None, port: int | None = None) -> None:
        self._owns_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="nango-pg-"))
        self.port = port or free_port()
        self._user: str | None = None

    @property
    def uri(self) -> str:
        """``postgresql://postgres@127.0.0.1:<port>/postgres``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> EmbeddedPostgres:
        """Initialize the data directory if needed and start the server; returns self."""
        import pgserver
        from pgserver import _commands

        server = pgserver.get_server(self.data_dir, cleanup_mode=None)
        self._user = server.system_user
        _commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=self._user)
        self._pg_ctl("start")
        return self

    def restart(self) -> None:
        """Stop and start the server again on the same port (drops every connection)."""
        self._pg_ctl("restart")

    def stop(self) -> None:
        """Stop the server and remove its data directory if it made one."""
        try:
            self._pg_ctl("stop")
        finally:
            if self._owns_dir:
                shutil.rmtree(self.data_dir, ignore_errors=True)

    def _pg_ctl(self, action: str) -> None:
        from pgserver import _commands

        options = f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} -c fsync=off -c full_page_writes=off"
        args = ["-w", "-m", "fast", "-t", "30", "-l", str(self.data_dir / "log")]
        if action != "stop":
            args += ["-o", options]
        _commands.pg_ctl([*args, action], pgdata=self.data_dir, user=self._user, timeout=60)

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve_until_interrupted(server: Any) -> None:
    """Start ``server`` (a context manager with a ``uri``), print its URI, and keep it up until Ctrl-C."""
    with server as running:
        print(running.uri, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


def main() -> None:
    """``python -m devtools.embedded_postgres``: run a Postgres in the foreground and print its URI."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args()
    serve_until_interrupted(EmbeddedPostgres(port=args.port))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
