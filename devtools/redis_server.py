"""A private Redis on a loopback TCP port, the Celery broker of the Celery test and of
``make airflow AIRFLOW_ARGS=--executor=celery``.

It runs Debian's ``redis-server`` (``apt-get install -y redis-server``; ``make test`` installs it when missing)
in the foreground as a child process, with its working directory in a fresh temporary folder and persistence
off, and removes that folder when it stops.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from devtools.embedded_postgres import free_port

INSTALL_HINT = "apt-get install -y redis-server (as root; make test does it when missing)"


def redis_binary() -> str:
    """The path of ``redis-server``; ``FileNotFoundError`` saying how to install it otherwise."""
    found = shutil.which("redis-server") or next(
        (path for path in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if Path(path).exists()), None
    )
    if found is None:
        raise FileNotFoundError(f"redis-server is not installed: {INSTALL_HINT}")
    return found


class RedisServer:
    """Start with :meth:`start`, stop with :meth:`stop` (or use as a context manager)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="nango-redis-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30) -> RedisServer:
        """Start ``redis-server`` and wait until it answers ``PING``; returns self."""
        command = [
            redis_binary(),
            *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)),
            *("--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", str(self.directory / "log")),
        ]
        self._process = subprocess.Popen(command, cwd=self.directory, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self._process.poll() is not None:
                error = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                raise RuntimeError(f"redis-server exited with {self._process.returncode}: {error}{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"redis-server did not answer on port {self.port} within {timeout:.0f} s")
            time.sleep(0.1)
        return self

    def ping(self) -> bool:
        """Whether the server answers ``PING`` with ``PONG``."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's log."""
        log = self.directory / "log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""

    def stop(self) -> None:
        """Stop the server (SIGTERM, SIGKILL after 10 s) and remove its folder."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if process is not None and process.stderr is not None:
            with contextlib.suppress(OSError):
                process.stderr.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
