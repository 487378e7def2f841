"""Local, deterministic demo API that imitates paginated HTTP APIs.

The server lets the example syncs, the demo and the benchmark run without internet access. It
serves three data sets that are derived from the same record count and seed:

* Pokémon-like records in the PokeAPI style (offset/limit, absolute ``next``/``previous`` links),
* contacts in the HubSpot CRM v3 style (opaque ``after`` cursor, in the query string for the list
  endpoint and in the JSON body for the search endpoint),
* nested objects behind a page-numbered endpoint whose records sit deep inside the response.

The objects are also served in the paging styles of other well-known APIs: a top-level array with a
``Link`` header (GitHub), offset with a total (Jira), page numbers with a has-more flag (Zoho), a cursor in
a POST body with a has-more flag (Notion), the last record's id as the cursor (Stripe) and an incremental
export whose next link repeats once ``end_of_stream`` is true (Zendesk).

Records are generated deterministically from their id, built lazily on first use and cached, so a
server with a million records starts instantly and a page is one ``json.dumps`` of already built
dicts. ``mutate`` changes, removes and adds records in all three data sets so that a following sync
sees updates, deletions and insertions; ``reset`` restores the initial data.

Endpoints::

    GET  /api/v2/pokemon?offset=0&limit=20          PokeAPI list (limit max 1000)
    GET  /api/v2/pokemon/<id>/  and  /pokemon/<id>/  one Pokémon record
    GET  /crm/v3/objects/contacts?limit=10&after=..  HubSpot list (limit max 1000); &updated_since=<ISO 8601>
                                                     keeps only contacts updated at or after that time
    GET  /crm/v3/objects/contacts/<id>               one contact
    POST /crm/v3/objects/contacts/search             HubSpot search, cursor in the JSON body
    GET  /v1/objects?page=1&per_page=50              nested objects (per_page max 1000)
    GET  /v1/objects/<id>                            one object
    GET  /repos/demo/items?per_page=30&page=1        GitHub style: JSON array, next page in the Link header
    GET  /rest/api/3/search?startAt=0&maxResults=50  Jira style: offset, page size and total in the body
    GET  /crm/v2/Leads?page=1&per_page=200           Zoho style: page number, info.more_records flag
    POST /v1/databases/demo/query                    Notion style: {start_cursor, page_size} -> next_cursor, has_more
    GET  /v1/customers?limit=10&starting_after=<id>  Stripe style: the last record's id is the cursor, has_more
    GET  /api/v2/incremental/tickets/cursor.json     Zendesk style export: after_url repeats at end_of_stream
    GET  /tenants/<tenant>/v1/accounts?page=1&per_page=10   one tenant's accounts (acme, globex, initech), each
                                                     tenant with its own data; needs the tenant's credentials
                                                     (HTTP Basic: login <tenant>, password <tenant>-demo-token)
    POST /_demo/mutate   {"changed": 25, "removed": 5, "added": 10}
    POST /_demo/reset
    GET  /_demo/health

The tenants share their account ids (``1..n``) but not their data, as the customers of one SaaS API do: a sync
with one connection per tenant (``connections:``) lands them side by side. ``remove_tenant_accounts`` and
``fail_tenant_page`` change one tenant's data or make one of its pages fail.

Run ``python -m devtools.demo_api --port 8700 --records 3000`` to serve until interrupted; ``--latency 0.02``
makes every response take 20 ms, like a remote API (each connection waits on its own; the 20 ms count from the
request's arrival, so reading it and building the answer are part of them).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import bisect
import json
import logging
import random
import re
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self, cast
from urllib.parse import parse_qs, urlsplit

__all__ = ["TENANT_ACCOUNTS", "DemoApi", "main", "tenant_connections", "tenant_token"]

logger = logging.getLogger(__name__)

JsonDict = dict[str, Any]

MAX_PAGE_SIZE = 1000
POKEMON_DEFAULT_LIMIT = 20
STYLE_DEFAULT_LIMIT = 50
NOTION_MAX_PAGE_SIZE = 100
CONTACTS_DEFAULT_LIMIT = 10
OBJECTS_DEFAULT_PER_PAGE = 50
TENANT_ACCOUNTS = {"acme": 45, "globex": 30, "initech": 20}
"""The demo's tenants and how many accounts each has."""
TENANTS_DEFAULT_PER_PAGE = 10
_PLANS = ("free", "team", "business", "enterprise")

_MASK64 = (1 << 64) - 1
_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
_SYLLABLES = tuple(c + v for c in _CONSONANTS for v in _VOWELS)
# Endings never start with a consonant-vowel syllable, so names stay uniquely decodable.
_ENDINGS = ("", "", "", "x", "chu", "ion", "eon", "ite", "hy", "ix")
_TYPES = (
    "normal",
    "fire",
    "water",
    "grass",
    "electric",
    "ice",
    "fighting",
    "poison",
    "ground",
    "flying",
    "psychic",
    "bug",
    "rock",
    "ghost",
    "dragon",
    "dark",
    "steel",
    "fairy",
)
_FIRST_NAMES = (
    "Alice",
    "Bruno",
    "Chloe",
    "Dmitri",
    "Elena",
    "Farid",
    "Greta",
    "Hiro",
    "Ines",
    "Jonas",
    "Keiko",
    "Liam",
    "Maya",
    "Noah",
    "Olga",
    "Pablo",
    "Quinn",
    "Rosa",
    "Sven",
    "Tara",
    "Umar",
    "Vera",
    "Wen",
    "Yara",
)
_LAST_NAMES = (
    "Anders",
    "Berger",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Hansen",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Lopez",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Varga",
    "Weber",
    "Zhang",
)
_COMPANIES = (
    "Acme Corp",
    "Globex",
    "Initech",
    "Umbrella Labs",
    "Stark Industries",
    "Wayne Enterprises",
    "Hooli",
    "Vandelay Imports",
    "Soylent",
    "Tyrell Systems",
    "Cyberdyne",
    "Wonka Foods",
)
_DOMAINS = ("example.com", "example.org", "example.net", "mail.test", "corp.test")
_STAGES = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)
_ADJECTIVES = (
    "sturdy",
    "shiny",
    "compact",
    "vintage",
    "rugged",
    "silent",
    "bright",
    "modular",
    "golden",
    "tiny",
    "smart",
    "classic",
)
_NOUNS = ("lamp", "chair", "kettle", "backpack", "drone", "clock", "speaker", "bicycle", "desk", "camera")
_TAGS = ("new", "sale", "eco", "bestseller", "limited", "refurbished", "imported", "handmade")
_CURRENCIES = ("EUR", "USD", "GBP")

# Awkward values placed on fixed contact ids so that the first page already contains them.
_CONTACT_QUOTE_ID = 2
_CONTACT_EMOJI_ID = 3
_CONTACT_ESCAPES_ID = 4
_CONTACT_BIGINT_ID = 5
_BIG_SCORE = 2**62

_INITIAL_EPOCH = 1672531200  # 2023-01-01T00:00:00Z: initial records are created within a year of this.
_MUTATION_EPOCH = 1735689600  # 2025-01-01T00:00:00Z: every mutation happens after all initial data.
_YEAR_SECONDS = 365 * 24 * 3600
_GENERATION_SECONDS = 3600

_TENANT_RE = re.compile(r"/tenants/(?P<tenant>[a-z]+)/v1/accounts")
_CURSOR_RE = re.compile(r"o:(0|[1-9][0-9]{0,11})")
_DETAIL_RE = re.compile(r"(?P<base>/api/v2/pokemon|/pokemon|/crm/v3/objects/contacts|/v1/objects)/(?P<id>\d+)")
_DETAIL_DATASET = {
    "/api/v2/pokemon": "pokemon",
    "/pokemon": "pokemon",
    "/crm/v3/objects/contacts": "contacts",
    "/v1/objects": "objects",
}


class _BadRequestError(Exception):
    """A request that is answered with ``400`` and the exception text as JSON error."""


def _mix(value: int) -> int:
    """Return the SplitMix64 finalizer of ``value``: a cheap, well distributed 64-bit hash."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


def _bijective_syllables(number: int) -> str:
    """Encode a positive integer in bijective base ``len(_SYLLABLES)``: distinct numbers, distinct strings."""
    parts: list[str] = []
    base = len(_SYLLABLES)
    while number > 0:
        number, digit = divmod(number - 1, base)
        parts.append(_SYLLABLES[digit])
    return "".join(reversed(parts))


def _pokemon_name(record_id: int, digest: int) -> str:
    """Build a unique lowercase name: two hashed syllables, the encoded id and an optional ending."""
    count = len(_SYLLABLES)
    prefix = _SYLLABLES[digest % count] + _SYLLABLES[(digest >> 8) % count]
    return prefix + _bijective_syllables(record_id) + _ENDINGS[(digest >> 16) % len(_ENDINGS)]


def _iso(seconds: int, millis: int) -> str:
    """Format a UTC timestamp the way HubSpot does: ``2024-05-01T12:00:00.123Z``."""
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{millis:03d}Z"


def _mutation_time(generation: int, record_id: int) -> int:
    """Return the deterministic time of a change made by mutation ``generation`` to ``record_id``."""
    return _MUTATION_EPOCH + generation * _GENERATION_SECONDS + record_id % (_GENERATION_SECONDS - 1)


def _since_seconds(text: str) -> float:
    """Epoch seconds of an ISO 8601 timestamp (``2025-01-01T00:00:00.000Z``), or ``_BadRequestError``."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise _BadRequestError(f"updated_since must be an ISO 8601 timestamp, got {text!r}") from exc
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _dumps(payload: object) -> bytes:
    """Serialize compactly to UTF-8 JSON bytes."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _encode_cursor(offset: int) -> str:
    """Return the opaque cursor for ``offset``: unpadded base64url of ``o:<offset>``."""
    return base64.urlsafe_b64encode(f"o:{offset}".encode("ascii")).decode("ascii").rstrip("=")


def _decode_cursor(cursor: str) -> int:
    """Return the offset inside an opaque cursor or raise ``_BadRequestError``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise _BadRequestError(f"invalid cursor: {cursor!r}") from exc
    match = _CURSOR_RE.fullmatch(raw)
    if match is None:
        raise _BadRequestError(f"invalid cursor: {cursor!r}")
    return int(match.group(1))


def tenant_token(tenant: str) -> str:
    """The password of ``tenant``'s credentials (its login is the tenant's name)."""
    return f"{tenant}-demo-token"


def tenant_connections(api_url: str) -> dict[str, str]:
    """Airflow connections of the demo's tenants as environment variables: ``AIRFLOW_CONN_DEMO_TENANT_<NAME>``, each
    with its tenant's host path (``<api_url>/tenants/<name>``) and credentials."""
    return {
        f"AIRFLOW_CONN_DEMO_TENANT_{tenant.upper()}": json.dumps(
            {
                "conn_type": "nango",
                "host": f"{api_url}/tenants/{tenant}",
                "login": tenant,
                "password": tenant_token(tenant),
            }
        )
        for tenant in TENANT_ACCOUNTS
    }


def _basic_auth(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """``(login, password)`` of an ``Authorization: Basic`` header, or ``None``."""
    value = next((item for name, item in headers.items() if name.lower() == "authorization"), "")
    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        login, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return login, password


def _int_param(query: dict[str, list[str]], name: str, default: int, minimum: int) -> int:
    """Read an integer query parameter, enforcing ``minimum``."""
    values = query.get(name)
    if not values or values[0] == "":
        return default
    try:
        value = int(values[0])
    except ValueError as exc:
        raise _BadRequestError(f"{name} must be an integer") from exc
    if value < minimum:
        raise _BadRequestError(f"{name} must be >= {minimum}")
    return value


def _json_int(body: JsonDict, name: str, default: int, minimum: int) -> int:
    """Read an integer from a JSON request body, enforcing ``minimum``."""
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _BadRequestError(f"{name} must be an integer")
    if value < minimum:
        raise _BadRequestError(f"{name} must be >= {minimum}")
    return value


def _json_object(body: bytes, *, allow_empty: bool) -> JsonDict:
    """Parse a request body that must be a JSON object (an empty body is ``{}`` when allowed)."""
    if not body.strip():
        if allow_empty:
            return {}
        raise _BadRequestError("request body must be a JSON object")
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _BadRequestError("request body is not valid JSON") from exc
    if not isinstance(parsed, dict):
        raise _BadRequestError("request body must be a JSON object")
    return parsed


class _DemoServer(ThreadingHTTPServer):
    """Threading HTTP server that knows the ``DemoApi`` it serves."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], api: DemoApi) -> None:
        self.api = api
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (a killed task) is not an error of the server; anything else is printed."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def server_bind(self) -> None:
        """Bind without the reverse DNS lookup of ``HTTPServer.server_bind``."""
        super(ThreadingHTTPServer, self).server_bind()  # TCPServer.server_bind
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler that forwards every request to ``DemoApi``."""

    protocol_version = "HTTP/1.1"
    server_version = "DemoApi/1.0"
    timeout = 30
    wbufsize = 64 * 1024  # a page's head and body leave in one write when the body fits (flushed per request)

    def setup(self) -> None:
        """Send each write at once (TCP_NODELAY): a body larger than the write buffer leaves in a write of its own
        after the head, and with Nagle's algorithm it would wait for the client's delayed ACK (40 ms on Linux)."""
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the console quiet: no per-request logging."""

    def parse_request(self) -> bool:
        """Note when the request arrived (its first line was read), then parse its headers."""
        self._received = time.monotonic()
        return super().parse_request()

    def do_GET(self) -> None:
        """Serve a GET request."""
        self._dispatch("GET")

    def do_POST(self) -> None:
        """Serve a POST request."""
        self._dispatch("POST")

    def do_PUT(self) -> None:
        """Answer a PUT request (no endpoint accepts it)."""
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        """Answer a PATCH request (no endpoint accepts it)."""
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        """Answer a DELETE request (no endpoint accepts it)."""
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self._send(411, _dumps({"error": "Content-Length required"}))
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        api = cast(_DemoServer, self.server).api
        headers: dict[str, str] = {}
        try:
            status, payload, headers = api.respond(method, self.path, body, dict(self.headers.items()))
        except Exception:  # a bug must not kill the connection silently
            logger.exception("demo API failed on %s %s", method, self.path)
            status, payload = 500, _dumps({"error": "internal server error"})
        answer = self._answer(status, payload, headers)
        if api.latency and not self.path.startswith("/_demo/"):
            # A remote API's response time, from the request's arrival: reading it and building the answer are
            # part of it, and the whole answer leaves once it is over. Each connection waits on its own. A sync
            # waiting only for the API then reaches records per page / latency, less its own time per request.
            time.sleep(max(0.0, self._received + api.latency - time.monotonic()))
        self.wfile.write(answer)

    def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        self.wfile.write(self._answer(status, payload, headers))

    def _answer(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> bytes:
        """The whole response, head and body, as the bytes to send."""
        fields = {
            "Server": self.version_string(),
            "Date": self.date_time_string(),
            "Content-Type": "application/json",
            **(headers or {}),
            "Content-Length": str(len(payload)),
        }
        if self.close_connection:
            fields["Connection"] = "close"
        lines = [f"{self.protocol_version} {status} {self.responses[status][0]}"]
        lines += [f"{name}: {value}" for name, value in fields.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


class DemoApi:
    """Deterministic loopback server imitating PokeAPI, HubSpot CRM v3 contacts and a nested API.

    All three data sets share one ordered list of record ids (``1..records`` initially). Records are
    generated from ``(seed, id, revision)``, so two servers with the same arguments serve the same
    bytes, and ``mutate`` followed by ``reset`` returns to the initial data.
    """

    _DATASETS: ClassVar[tuple[str, ...]] = ("pokemon", "contacts", "objects")

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, records: int = 3000, seed: int = 7, latency: float = 0.0
    ) -> None:
        if records < 0:
            raise ValueError("records must be >= 0")
        if latency < 0:
            raise ValueError("latency must be >= 0")
        self.latency = latency
        self._host = host
        self._port = port
        self._records = records
        self._seed = seed
        self._salts = {name: _mix(seed * 8 + index) for index, name in enumerate(self._DATASETS)}
        self._builders: dict[str, Callable[[int], JsonDict]] = {
            "pokemon": self._build_pokemon,
            "contacts": self._build_contact,
            "objects": self._build_object,
        }
        self._lock = threading.Lock()
        self._server: _DemoServer | None = None
        self._thread: threading.Thread | None = None
        self._ids: list[int] = []
        self._caches: dict[str, dict[int, JsonDict]] = {}
        self._revisions: dict[int, int] = {}
        self._touched: dict[int, int] = {}
        self._born: dict[int, int] = {}
        self._next_id = 1
        self._generation = 0
        self._tenant_removed: dict[str, set[int]] = {}
        self._tenant_failures: dict[tuple[str, int], int] = {}
        self.reset()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        """Bind and serve in a daemon thread; return ``self``. A restart reuses the first port."""
        if self._server is not None:
            return self
        server = _DemoServer((self._host, self._port), self)
        self._port = server.server_port
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="demo-api", daemon=True
        )
        self._server, self._thread = server, thread
        thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket (idempotent)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL without trailing slash, e.g. ``http://127.0.0.1:43123``."""
        if self._port == 0:
            raise RuntimeError("DemoApi has no port yet: call start() first")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    @property
    def count(self) -> int:
        """Current number of records in each data set."""
        with self._lock:
            return len(self._ids)

    # ------------------------------------------------------------------ data changes

    def reset(self) -> None:
        """Return to the initial deterministic data set."""
        with self._lock:
            self._ids = list(range(1, self._records + 1))
            self._caches = {name: {} for name in self._DATASETS}
            self._revisions = {}
            self._touched = {}
            self._born = {}
            self._next_id = self._records + 1
            self._generation = 0
            self._tenant_removed = {tenant: set() for tenant in TENANT_ACCOUNTS}
            self._tenant_failures = {}

    def mutate(self, changed: int = 25, removed: int = 5, added: int = 10) -> dict[str, int]:
        """Change, remove and add records in all three data sets, deterministically.

        ``changed`` records get new content (Pokémon ``base_experience``, contact ``lifecyclestage`` and
        ``updatedAt``, object ``price``), ``removed`` records spread over the list disappear and
        ``added`` records with fresh ids and names are appended. The counts are capped by the number of
        available records; the returned dict holds the numbers actually applied, the new ``total`` and
        the mutation ``generation``.
        """
        if min(changed, removed, added) < 0:
            raise ValueError("changed, removed and added must be >= 0")
        with self._lock:
            self._generation += 1
            generation = self._generation
            rng = random.Random(f"demo-api:{self._seed}:{generation}")
            size = len(self._ids)
            removed = min(removed, size)
            changed = min(changed, size - removed)
            positions = rng.sample(range(size), removed + changed)
            gone = {self._ids[p] for p in positions[:removed]}
            for position in positions[removed:]:
                record_id = self._ids[position]
                self._revisions[record_id] = self._revisions.get(record_id, 0) + 1
                self._touched[record_id] = generation
                self._forget(record_id)
            self._remove(gone)
            for record_id in range(self._next_id, self._next_id + added):
                self._born[record_id] = generation
                self._ids.append(record_id)
            self._next_id += added
            return {
                "changed": changed,
                "removed": removed,
                "added": added,
                "total": len(self._ids),
                "generation": generation,
            }

    def remove_tenant_accounts(self, tenant: str, ids: list[int]) -> None:
        """Remove accounts of one tenant only (the other tenants keep theirs, same ids included)."""
        with self._lock:
            self._tenant_removed[tenant].update(ids)

    def fail_tenant_page(self, tenant: str, page: int, times: int = 1) -> None:
        """Answer 503 to the next ``times`` requests for ``page`` of ``tenant``'s accounts."""
        with self._lock:
            self._tenant_failures[(tenant, page)] = times

    def _forget(self, record_id: int) -> None:
        for cache in self._caches.values():
            cache.pop(record_id, None)

    def _remove(self, gone: set[int]) -> None:
        if not gone:
            return
        if len(gone) <= 64:
            for record_id in sorted(gone, reverse=True):
                del self._ids[bisect.bisect_left(self._ids, record_id)]
        else:
            self._ids = [record_id for record_id in self._ids if record_id not in gone]
        for record_id in gone:
            self._forget(record_id)
            self._revisions.pop(record_id, None)
            self._touched.pop(record_id, None)
            self._born.pop(record_id, None)

    # ------------------------------------------------------------------ record generation

    def _build_pokemon(self, record_id: int) -> JsonDict:
        digest = _mix(self._salts["pokemon"] ^ record_id)
        first = _TYPES[(digest >> 24) % len(_TYPES)]
        second = _TYPES[(digest >> 32) % len(_TYPES)]
        types = [first, second] if (digest >> 20) & 1 and second != first else [first]
        return {
            "name": _pokemon_name(record_id, digest),
            "url": f"{self.url}/pokemon/{record_id}/",
            "id": record_id,
            "base_experience": 36 + (digest >> 40) % 300 + 7 * self._revisions.get(record_id, 0),
            "types": types,
        }

    def _contact_times(self, record_id: int, digest: int) -> tuple[str, str]:
        born = self._born.get(record_id)
        if born is None:
            created = _INITIAL_EPOCH + (digest >> 28) % _YEAR_SECONDS
            updated = created + (digest >> 12) % (200 * 24 * 3600)
        else:
            created = updated = _mutation_time(born, record_id)
        touched = self._touched.get(record_id)
        if touched is not None:
            updated = _mutation_time(touched, record_id)
        return _iso(created, (digest >> 44) % 1000), _iso(updated, (digest >> 54) % 1000)

    def _build_contact(self, record_id: int) -> JsonDict:
        digest = _mix(self._salts["contacts"] ^ record_id)
        first = _FIRST_NAMES[digest % len(_FIRST_NAMES)]
        last = _LAST_NAMES[(digest >> 8) % len(_LAST_NAMES)]
        stage = (digest >> 16) % len(_STAGES) + self._revisions.get(record_id, 0)
        domain = _DOMAINS[(digest >> 24) % len(_DOMAINS)]
        properties: JsonDict = {
            "email": f"{first}.{last}.{record_id}@{domain}".lower(),
            "firstname": first,
            "lastname": last,
            "company": _COMPANIES[(digest >> 36) % len(_COMPANIES)],
            "lifecyclestage": _STAGES[stage % len(_STAGES)],
        }
        if record_id == _CONTACT_QUOTE_ID:
            properties["lastname"] = "O'Brien"
        elif record_id == _CONTACT_EMOJI_ID:
            properties["firstname"] = "Zoë 🚀"
        elif record_id == _CONTACT_ESCAPES_ID:
            properties["company"] = "Back\\slash\tTab Ltd"
        elif record_id == _CONTACT_BIGINT_ID:
            properties["score"] = _BIG_SCORE
        created, updated = self._contact_times(record_id, digest)
        return {
            "id": str(record_id),
            "properties": properties,
            "createdAt": created,
            "updatedAt": updated,
            "archived": False,
        }

    def _build_object(self, record_id: int) -> JsonDict:
        digest = _mix(self._salts["objects"] ^ record_id)
        adjective = _ADJECTIVES[digest % len(_ADJECTIVES)]
        noun = _NOUNS[(digest >> 8) % len(_NOUNS)]
        shifts = range(16, 16 + 4 * ((digest >> 12) % 4), 4)
        tags = sorted({_TAGS[(digest >> shift) % len(_TAGS)] for shift in shifts})
        cents = 50 + (digest >> 40) % 20000 + 125 * self._revisions.get(record_id, 0)
        return {
            "id": record_id,
            "name": f"{adjective.title()} {noun} {record_id}",
            "tags": tags,
            "price": {"amount": cents / 100, "currency": _CURRENCIES[(digest >> 32) % len(_CURRENCIES)]},
        }

    def _page(self, dataset: str, offset: int, limit: int) -> tuple[list[JsonDict], int]:
        """Return the records at ``offset`` (at most ``limit``) and the current total."""
        builder = self._builders[dataset]
        with self._lock:
            cache = self._caches[dataset]
            page: list[JsonDict] = []
            for record_id in self._ids[offset : offset + limit]:
                record = cache.get(record_id)
                if record is None:
                    record = cache[record_id] = builder(record_id)
                page.append(record)
            return page, len(self._ids)

    def _updated_page(self, since: float, offset: int, limit: int) -> tuple[list[JsonDict], int]:
        """Contacts whose ``updatedAt`` is at or after ``since`` (epoch seconds): the records at ``offset`` of that
        list and its length. Records never changed by ``mutate`` predate every mutation, so a ``since`` after the
        first mutation only looks at changed and added ones."""
        floor = _iso(int(since), int(since % 1 * 1000))  # every updatedAt has this fixed format
        with self._lock:
            candidates = self._ids
            if since >= _MUTATION_EPOCH:  # removed records leave _touched and _born, so these are all present
                candidates = sorted(self._touched.keys() | self._born.keys())
            cache = self._caches["contacts"]
            matching: list[JsonDict] = []
            for record_id in candidates:
                record = cache.get(record_id)
                if record is None:
                    record = cache[record_id] = self._build_contact(record_id)
                if record["updatedAt"] >= floor:
                    matching.append(record)
            return matching[offset : offset + limit], len(matching)

    def _record(self, dataset: str, record_id: int) -> JsonDict | None:
        with self._lock:
            position = bisect.bisect_left(self._ids, record_id)
            if position == len(self._ids) or self._ids[position] != record_id:
                return None
            cache = self._caches[dataset]
            record = cache.get(record_id)
            if record is None:
                record = cache[record_id] = self._builders[dataset](record_id)
            return record

    # ------------------------------------------------------------------ HTTP endpoints

    def handle(self, method: str, target: str, body: bytes = b"") -> tuple[int, bytes]:
        """Answer one request: return the HTTP status and the JSON body bytes."""
        status, payload, _ = self.respond(method, target, body)
        return status, payload

    def respond(
        self, method: str, target: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes, dict[str, str]]:
        """Answer one request: the HTTP status, the JSON body bytes and the extra headers (``Link``)."""
        parts = urlsplit(target)
        path = parts.path.rstrip("/") or "/"
        query = parse_qs(parts.query, keep_blank_values=True)
        if (tenant := _TENANT_RE.fullmatch(path)) is not None and method == "GET":
            try:
                status, payload = self._tenant_accounts(tenant.group("tenant"), query, headers or {})
            except _BadRequestError as exc:
                return 400, _dumps({"error": str(exc)}), {}
            return status, _dumps(payload), {}
        routes: dict[tuple[str, str], Callable[[dict[str, list[str]], bytes], tuple[int, JsonDict]]] = {
            ("GET", "/api/v2/pokemon"): self._pokemon_list,
            ("GET", "/crm/v3/objects/contacts"): self._contacts_list,
            ("POST", "/crm/v3/objects/contacts/search"): self._contacts_search,
            ("GET", "/v1/objects"): self._objects_list,
            ("GET", "/rest/api/3/search"): self._jira_search,
            ("GET", "/crm/v2/Leads"): self._zoho_leads,
            ("POST", "/v1/databases/demo/query"): self._notion_query,
            ("GET", "/v1/customers"): self._stripe_customers,
            ("GET", "/api/v2/incremental/tickets/cursor.json"): self._zendesk_export,
            ("POST", "/_demo/mutate"): self._demo_mutate,
            ("POST", "/_demo/reset"): self._demo_reset,
            ("GET", "/_demo/health"): self._demo_health,
        }
        try:
            if (method, path) == ("GET", "/repos/demo/items"):
                return self._github_items(query)
            route = routes.get((method, path))
            if route is not None:
                status, payload = route(query, body)
                return status, _dumps(payload), {}
            if any(known == path for _, known in routes):
                return 405, _dumps({"error": "method not allowed"}), {}
            return (*self._detail(method, path), {})
        except _BadRequestError as exc:
            return 400, _dumps({"error": str(exc)}), {}

    def _detail(self, method: str, path: str) -> tuple[int, bytes]:
        match = _DETAIL_RE.fullmatch(path)
        if match is None:
            return 404, _dumps({"error": "not found"})
        if method != "GET":
            return 405, _dumps({"error": "method not allowed"})
        record = self._record(_DETAIL_DATASET[match.group("base")], int(match.group("id")))
        if record is None:
            return 404, _dumps({"error": "not found"})
        return 200, _dumps(record)

    def _pokemon_list(self, query: dict[str, list[str]], _body: bytes) -> tuple[int, JsonDict]:
        offset = _int_param(query, "offset", 0, 0)
        limit = min(_int_param(query, "limit", POKEMON_DEFAULT_LIMIT, 1), MAX_PAGE_SIZE)
        results, total = self._page("pokemon", offset, limit)
        base = f"{self.url}/api/v2/pokemon"
        following = f"{base}?offset={offset + limit}&limit={limit}" if offset + limit < total else None
        previous = None
        if offset > 0:
            previous = f"{base}?offset={max(0, min(offset, total) - limit)}&limit={limit}"
        return 200, {"count": total, "next": following, "previous": previous, "results": results}

    def _contacts_list(self, query: dict[str, list[str]], _body: bytes) -> tuple[int, JsonDict]:
        limit = min(_int_param(query, "limit", CONTACTS_DEFAULT_LIMIT, 1), MAX_PAGE_SIZE)
        after = query.get("after", [""])[0]
        offset = _decode_cursor(after) if after else 0
        since = query.get("updated_since", [""])[0]
        if since:
            results, total = self._updated_page(_since_seconds(since), offset, limit)
        else:
            results, total = self._page("contacts", offset, limit)
        payload: JsonDict = {"results": results}
        if offset + limit < total:
            cursor = _encode_cursor(offset + limit)
            payload["paging"] = {"next": {"after": cursor, "link": f"?after={cursor}&limit={limit}"}}
        return 200, payload

    def _contacts_search(self, _query: dict[str, list[str]], body: bytes) -> tuple[int, JsonDict]:
        request = _json_object(body, allow_empty=False)
        limit = min(_json_int(request, "limit", CONTACTS_DEFAULT_LIMIT, 1), MAX_PAGE_SIZE)
        after = request.get("after")
        if after is not None and not isinstance(after, str):
            raise _BadRequestError("after must be a string")
        offset = _decode_cursor(after) if after else 0
        results, total = self._page("contacts", offset, limit)
        payload: JsonDict = {"total": total, "results": results}
        if offset + limit < total:
            payload["paging"] = {"next": {"after": _encode_cursor(offset + limit)}}
        return 200, payload

    def _objects_list(self, query: dict[str, list[str]], _body: bytes) -> tuple[int, JsonDict]:
        page = _int_param(query, "page", 1, 1)
        per_page = min(_int_param(query, "per_page", OBJECTS_DEFAULT_PER_PAGE, 1), MAX_PAGE_SIZE)
        offset = (page - 1) * per_page
        objects, total = self._page("objects", offset, per_page)
        next_page = page + 1 if offset + per_page < total else None
        return 200, {
            "status": "ok",
            "code": 200,
            "returned": {"data": {"objects": objects}},
            "meta": {"next_page": next_page},
        }

    def _tenant_accounts(
        self, tenant: str, query: dict[str, list[str]], headers: Mapping[str, str]
    ) -> tuple[int, JsonDict]:
        """One tenant's accounts, page by page; only with that tenant's credentials."""
        if tenant not in TENANT_ACCOUNTS:
            return 404, {"error": f"no tenant {tenant!r}"}
        if _basic_auth(headers) != (tenant, tenant_token(tenant)):
            return 401, {"error": f"the credentials are not those of tenant {tenant!r}"}
        page = _int_param(query, "page", 1, 1)
        per_page = min(_int_param(query, "per_page", TENANTS_DEFAULT_PER_PAGE, 1), MAX_PAGE_SIZE)
        with self._lock:
            failures = self._tenant_failures.get((tenant, page), 0)
            if failures:
                self._tenant_failures[(tenant, page)] = failures - 1
                return 503, {"error": "try again later"}
            ids = [n for n in range(1, TENANT_ACCOUNTS[tenant] + 1) if n not in self._tenant_removed[tenant]]
        start = (page - 1) * per_page
        salt = zlib.crc32(tenant.encode())
        accounts = [
            {
                "id": n,
                "tenant": tenant,
                "name": f"{tenant.capitalize()} account {n}",
                "plan": _PLANS[_mix(salt ^ n) % len(_PLANS)],
                "seats": 1 + (_mix(salt ^ n) >> 8) % 500,
            }
            for n in ids[start : start + per_page]
        ]
        return 200, {"accounts": accounts, "next_page": page + 1 if start + per_page < len(ids) else None}

    # ------------------------------------------------------------------ the objects in other APIs' paging styles

    def _github_items(self, query: dict[str, list[str]]) -> tuple[int, bytes, dict[str, str]]:
        """A JSON array; the next, previous, first and last pages only in the ``Link`` header."""
        page = _int_param(query, "page", 1, 1)
        per_page = min(_int_param(query, "per_page", 30, 1), 100)
        items, total = self._page("objects", (page - 1) * per_page, per_page)
        last = max(1, -(-total // per_page))
        base = f"{self.url}/repos/demo/items?per_page={per_page}&page="
        links = []
        if page < last:
            links += [f'<{base}{page + 1}>; rel="next"', f'<{base}{last}>; rel="last"']
        if page > 1:
            links += [f'<{base}{page - 1}>; rel="prev"', f'<{base}1>; rel="first"']
        return 200, _dumps(items), {"Link": ", ".join(links)} if links else {}

    def _jira_search(self, query: dict[str, list[str]], _body: bytes) -> tuple[int, JsonDict]:
        start_at = _int_param(query, "startAt", 0, 0)
        max_results = min(_int_param(query, "maxResults", STYLE_DEFAULT_LIMIT, 1), MAX_PAGE_SIZE)
        issues, total = self._page("objects", start_at, max_results)
        return 200, {"startAt": start_at, "maxResults": max_results, "total": total, "issues": issues}

    def _zoho_leads(self, query: dict[str, list[str]], _body: bytes) -> tuple[int, JsonDict]:
        page = _int_param(query, "page", 1, 1)
        per_page = min(_int_param(query, "per_page", 200, 1), MAX_PAGE_SIZE)
        data, total = self._page("objects", (page - 1) * per_page, per_page)
        more = page * per_page < total
        return 200, {
            "data": data,
            "info": {"per_page": per_page, "count": len(data), "page": page, "more_records": more},
        }

    def _notion_query(self, _query: dict[str, list[str]], body: bytes) -> tuple[int, JsonDict]:
        request = _json_object(body, allow_empty=True)
        page_size = min(_json_int(request, "page_size", NOTION_MAX_PAGE_SIZE, 1), NOTION_MAX_PAGE_SIZE)
        start = request.get("start_cursor")
        if start is not None and not isinstance(start, str):
            raise _BadRequestError("start_cursor must be a string")
        offset = _decode_cursor(start) if start else 0
        results, total = self._page("objects", offset, page_size)
        more = offset + page_size < total
        return 200, {
            "object": "list",
            "results": results,
            "next_cursor": _encode_cursor(offset + page_size) if more else None,
            "has_more": more,
        }

    def _stripe_customers(self, query: dict[str, list[str]], _body: bytes) -> tuple[int, JsonDict]:
        limit = min(_int_param(query, "limit", 10, 1), 100)
        after = query.get("starting_after", [""])[0]
        offset = 0
        if after:
            if not after.isdigit():
                raise _BadRequestError(f"no such object: {after!r}")
            with self._lock:
                offset = bisect.bisect_right(self._ids, int(after))
        data, total = self._page("objects", offset, limit)
        return 200, {"object": "list", "url": "/v1/customers", "has_more": offset + limit < total, "data": data}

    def _zendesk_export(self, query: dict[str, list[str]], _body: bytes) -> tuple[int, JsonDict]:
        """Cursor-based incremental export: once the end is reached, ``after_url`` points at the end itself, so
        following it returns the same ``after_url`` again; ``end_of_stream`` says to stop."""
        per_page = min(_int_param(query, "per_page", 1000, 1), MAX_PAGE_SIZE)
        cursor = query.get("cursor", [""])[0]
        if not cursor:
            _int_param(query, "start_time", 0, 0)  # required by Zendesk; every demo record is newer than 0
        offset = _decode_cursor(cursor) if cursor else 0
        tickets, total = self._page("objects", offset, per_page)
        after = _encode_cursor(min(offset + per_page, max(total, offset)))
        base = f"{self.url}/api/v2/incremental/tickets/cursor.json?per_page={per_page}&cursor="
        return 200, {
            "tickets": tickets,
            "after_cursor": after,
            "after_url": base + after,
            "before_cursor": cursor or None,
            "before_url": base + cursor if cursor else None,
            "end_of_stream": offset + per_page >= total,
        }

    def _demo_mutate(self, _query: dict[str, list[str]], body: bytes) -> tuple[int, JsonDict]:
        request = _json_object(body, allow_empty=True)
        changed = _json_int(request, "changed", 25, 0)
        removed = _json_int(request, "removed", 5, 0)
        added = _json_int(request, "added", 10, 0)
        return 200, dict(self.mutate(changed=changed, removed=removed, added=added))

    def _demo_reset(self, _query: dict[str, list[str]], _body: bytes) -> tuple[int, JsonDict]:
        self.reset()
        return 200, {"ok": True, "total": self.count}

    def _demo_health(self, _query: dict[str, list[str]], _body: bytes) -> tuple[int, JsonDict]:
        return 200, {"ok": True}


def main(argv: list[str] | None = None) -> None:
    """Serve the demo API until interrupted: ``python -m devtools.demo_api --port 8700``."""
    parser = argparse.ArgumentParser(prog="python -m devtools.demo_api", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8700, help="port, 0 picks a free one (default: 8700)")
    parser.add_argument("--records", type=int, default=3000, help="records per data set (default: 3000)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated data (default: 7)")
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds every response takes, like a remote API (default: 0)"
    )
    args = parser.parse_args(argv)
    api = DemoApi(host=args.host, port=args.port, records=args.records, seed=args.seed, latency=args.latency).start()
    print(f"demo API serving {args.records} records per data set at {api.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        api.stop()


if __name__ == "__main__":
    main()
