"""A loopback HTTP server whose routes are Python functions, for the integration tests.

Each test registers handlers; a handler gets the parsed request and returns a :class:`Reply`. Replies can
also misbehave on purpose (drop the connection, send a truncated body) to test the retry paths.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    """What the server received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Reply:
    """What to answer: ``json`` (encoded) or raw ``body``; ``drop`` closes without answering; ``truncate``
    sends only that many bytes of a body announced in full."""

    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    truncate: int | None = None


Handler = Callable[[Request], Reply]


class FixtureServer:
    """Start with :meth:`start`; register routes with :meth:`route`; inspect ``requests``."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self.requests: list[Request] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FixtureServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method.upper(), path)] = handler

    def reset(self) -> None:
        self.routes.clear()
        self.requests.clear()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                request = Request(
                    self.command,
                    parts.path,
                    {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()},
                    dict(self.headers.items()),
                    json.loads(raw) if raw else None,
                )
                server.requests.append(request)
                handler = server.routes.get((self.command, parts.path))
                reply = handler(request) if handler else Reply(404, {"error": "no route"})
                self._send(reply)

            def _send(self, reply: Reply) -> None:
                if reply.drop:
                    self.close_connection = True
                    self.connection.close()
                    return
                body = reply.body if reply.body is not None else json.dumps(reply.json).encode()
                self.send_response(reply.status)
                headers = {"Content-Type": "application/json", **reply.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                if reply.truncate is not None:
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(body[: reply.truncate])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        return _Handler


def paged(records: list[Any], size: int) -> list[list[Any]]:
    """``records`` cut into pages of ``size``."""
    return [records[start : start + size] for start in range(0, len(records), size)] or [[]]
