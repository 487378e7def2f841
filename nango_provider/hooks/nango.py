"""``NangoHook``: sends a sync's requests over one session, retries what is worth retrying, and yields pages.

It knows HTTP, JSON and pagination; it knows nothing of Postgres. Each page carries its records, the
request that fetched it and the request for the next page (the checkpoint a retried task resumes from).
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NoReturn
from urllib.parse import urljoin, urlsplit

import msgspec
import requests
import requests.utils
from airflow.providers.http.hooks.http import HttpHook

from nango_provider.budget import RateBudget, budget_key
from nango_provider.definition import SyncDefinition, is_absolute_url
from nango_provider.exceptions import HttpError, NangoError, PaginationError, ResponseError, SyncCancelled
from nango_provider.hooks.ahead import PagesAhead
from nango_provider.pagination import (
    OffsetPaginator,
    PageRequest,
    PageResponse,
    Paginator,
    first_request,
    paginator_for,
)
from nango_provider.pagination.base import host_of
from nango_provider.pagination.hints import partial_data_warning, signs_of_more_pages
from nango_provider.paths import MISSING, CompiledPath, compile_path
from nango_provider.redaction import redact_text, redact_url, secret_values
from nango_provider.targets import ConnectionSecrets, Host, HostGuard, parse_allowed_hosts, secret_values_of

_TRANSIENT_REQUEST_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
"""``requests`` errors that are usually temporary (refused, reset, timed out, cut off); every other one, a TLS
certificate refused included, repeats until the definition or the server's setup change."""
_MAX_BACKOFF_SECONDS = 60.0
_HOLD_OFF_STATUSES = frozenset({429, 503})
"""Answers that say the API is overloaded: every request of the sync's rate budget waits, not only this one."""
_PREVIEW_BYTES = 200


@dataclass(frozen=True)
class Page:
    """One fetched page: its number in the run, its records, and the request that comes next (or None).

    ``cut`` is true when ``max_total`` ended the run on this page although the API had more. ``warning`` says
    why the data may be incomplete although the API gave no error (page 1 was the last page, yet the response
    shows signs of more).
    """

    number: int
    records: list[Any]
    request: PageRequest
    next_request: PageRequest | None
    url: str
    cut: bool = False
    warning: str | None = None


@dataclass(frozen=True)
class _Shown:
    """A request as error messages show it (method, URL with its secrets hidden, page number); the text is made
    only when a message shows it."""

    method: str
    url: str
    number: int

    def __str__(self) -> str:
        return f"{self.method} {redact_url(self.url)} (page {self.number})"


class _Retry(Exception):
    """A failed attempt that may be retried; ``error`` is raised if no attempt is left."""

    def __init__(self, reason: str, error: Exception, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error
        self.retry_after = retry_after


def _fail(error: NangoError, reason: str, retry_after: float | None = None) -> NoReturn:
    """Raise ``error`` for a retry of the request when it is retryable, as it is otherwise."""
    if error.retryable:
        raise _Retry(reason, error, retry_after)
    raise error


class NangoHook(HttpHook):
    """HTTP side of a sync, on top of the HTTP provider's ``HttpHook``.

    :param http_conn_id: connection holding the API's host, auth and default headers (``extra``). Without
        one, the definition's URL must be absolute.
    :param sleep: how to wait between retries (tests pass a recorder); by default the wait ends early, with
        :class:`SyncCancelled`, when the ``stop`` event given to :meth:`pages` is set.
    :param template_connections: ids of the connections the definition's templates read (the operator finds them
        before rendering): no request may carry their secrets to a host other than theirs.

    Every request passes a :class:`~nango_provider.targets.HostGuard` before it is sent (docs/security.md).
    """

    conn_name_attr = "http_conn_id"
    default_conn_name = "nango_default"
    conn_type = "nango"
    hook_name = "Nango sync (HTTP API)"

    def __init__(
        self,
        http_conn_id: str | None = None,
        *,
        sleep: Callable[[float], None] | None = None,
        template_connections: Collection[str] = (),
    ) -> None:
        super().__init__(method="GET", http_conn_id=http_conn_id or self.default_conn_name)
        self._has_connection = http_conn_id is not None
        self._sleep = sleep
        self._secrets: list[str] = []
        self._template_connections = frozenset(template_connections)
        self._guard: HostGuard | None = None
        self._environment: EnvironmentPerHost | None = None

    def host_guard(self, definition: SyncDefinition) -> HostGuard:
        """The checks every request of ``definition`` passes: ``[nango] allowed_hosts``, no cloud metadata
        address, not Airflow's own API server (``[api] base_url``), and each connection's secrets only to its host.
        """
        from airflow.sdk import conf

        own = {self.http_conn_id} if self._has_connection else set()  # this run's one connection (of a list, too)
        connections = [self._connection_secrets(conn_id, sends_credentials=True) for conn_id in sorted(own)]
        connections += [self._connection_secrets(conn_id) for conn_id in sorted(self._template_connections - own)]
        if definition.postgres_conn_id not in own:
            connections.append(self._connection_secrets(definition.postgres_conn_id, never_sent=True))
        return HostGuard(
            definition.name,
            allowed=parse_allowed_hosts(conf.get("nango", "allowed_hosts", fallback="")),
            airflow_url=conf.get("api", "base_url", fallback=None),
            connections=tuple(found for found in connections if found is not None),
        )

    def _connection_secrets(
        self, conn_id: str, *, sends_credentials: bool = False, never_sent: bool = False
    ) -> ConnectionSecrets | None:
        """What the guard needs of one connection; ``None`` when it is not defined (nothing of it can be sent)."""
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            found = self.get_connection(conn_id)
        except AirflowNotFoundException:
            return None
        secrets = secret_values_of(found.password, found.get_uri(), found.extra_dejson)
        host = None if never_sent else Host.of_connection(found.host, found.port)
        return ConnectionSecrets(conn_id, host, secrets, sends_credentials=sends_credentials, never_sent=never_sent)

    def secrets(self, definition: SyncDefinition) -> list[str]:
        """Values that must never be shown: secret headers and parameters, the connection's password."""
        found = secret_values(definition.headers, definition.query_params, definition.body)
        return [*found, self._connection_password] if self._connection_password else found

    def budget_key(self, definition: SyncDefinition) -> str:
        """The key of the sync's request budget: a hash of the API's host and the credentials sent to it (the
        connection's login, password and extra, the definition's secret headers and parameters). Syncs and
        tasks with the same key share one budget."""
        credentials = secret_values(definition.headers, definition.query_params, definition.body)
        host = "{}:{}".format(*host_of(definition.url))
        if self._has_connection:
            connection = self.get_connection(self.http_conn_id)
            credentials += [str(connection.login), str(connection.password), str(connection.extra)]
            if not is_absolute_url(definition.url):
                host = f"{connection.schema or 'http'}://{connection.host}:{connection.port}"
        return budget_key(host, credentials)

    @cached_property
    def _connection_password(self) -> str | None:
        return self.get_connection(self.http_conn_id).password if self._has_connection else None

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> requests.Session:
        """A session with the connection's auth and headers (if any) plus ``headers``."""
        if self._has_connection:
            return super().get_conn(headers=headers, extra_options=extra_options)
        session = requests.Session()
        if self.keep_alive_adapter is not None:
            session.mount("http://", self.keep_alive_adapter)
            session.mount("https://", self.keep_alive_adapter)
        session.headers.update(headers or {})
        return session

    def pages(
        self,
        definition: SyncDefinition,
        *,
        start: PageRequest | None = None,
        start_page: int = 1,
        fetched: int = 0,
        stop: threading.Event | None = None,
        since: Any = None,
        budget: RateBudget | None = None,
    ) -> Iterator[Page]:
        """Yield the sync's pages in order, from ``start`` (a checkpoint) or the first request (asking for records
        changed ``since``, for an incremental sync).

        ``fetched`` records were already fetched by earlier tries of this run (they count towards
        ``max_total``). One session serves the whole run. With a ``budget``, every request (retries included)
        waits for a slot of it first. Raises a :class:`SyncRunError` subclass when a
        request fails for good, a response is not what the definition says, or pagination loops; setting
        ``stop`` ends a wait between retries at once (:class:`SyncCancelled`).
        """
        session = self.get_conn(headers=dict(definition.headers))
        self._environment = EnvironmentPerHost(session)
        self._secrets = self.secrets(definition)
        self._guard = self.host_guard(definition)
        concurrency = definition.paging.concurrency if definition.paging else 1
        # One page at a time, the next request is prepared before its page is handed on: the thread that writes
        # the page then wakes while the request is all but sent, and does not hold up the rest of its sending.
        # With a rate budget it is prepared once it has its slot, so that an auth signing requests signs them then.
        prepared_early: list[tuple[PageRequest, requests.PreparedRequest]] = []

        def fetch(request: PageRequest, number: int, ended: threading.Event) -> tuple[requests.Response, Any]:
            early = prepared_early.pop() if prepared_early else None
            prepared = early[1] if early is not None and early[0] == request else None
            return self.fetch(session, definition, request, number, stop=ended, budget=budget, prepared=prepared)

        ahead = PagesAhead(fetch, concurrency, stop=stop)
        try:
            paginator = paginator_for(definition)
            records_path = compile_path(definition.records_path)
            request: PageRequest | None = start or first_request(definition, since)
            number = start_page
            while request is not None:
                if number > definition.max_pages:
                    raise PaginationError(
                        f"stopped before page {number}: max_pages is {definition.max_pages}; raise it if the API "
                        "really has more pages",
                        sync=definition.name,
                    )
                response, document = ahead.get(request, number)
                records = extract_records(document, records_path, definition.name, number)
                seen = PageResponse(response.url, document, records, response.headers)
                following = paginator.next_request(request, seen, number)
                alone = number == 1 and start is None and following is None
                warning = self._partial_data_warning(definition, paginator, seen) if alone else None
                room = None if definition.max_total is None else definition.max_total - fetched
                if following is not None and (room is None or len(records) < room):
                    if concurrency > 1:
                        planned = _planned(paginator, following, seen, number, concurrency)
                        ahead.send_ahead(planned[: max(0, definition.max_pages - number)], number + 1)
                    elif budget is None and number < definition.max_pages:
                        prepared_early[:] = self._prepare_early(session, definition, following)
                if room is not None and len(records) >= room:
                    cut = len(records) > room or following is not None
                    yield Page(number, records[:room], request, None, redact_url(response.url), cut, warning)
                    return
                yield Page(number, records, request, following, redact_url(response.url), warning=warning)
                fetched += len(records)
                request = following
                number += 1
        finally:
            ahead.close()
            session.close()
            self._environment = None

    def _partial_data_warning(
        self,
        definition: SyncDefinition,
        paginator: Paginator,
        response: PageResponse,
    ) -> str | None:
        """For a run's first page that was its last: a warning when no next value ended it, yet it looks like more."""
        if paginator.ended_by != "no next value":
            return None
        signs = signs_of_more_pages(response)
        if not signs:
            return None
        warning = partial_data_warning(signs)
        self.log.warning("sync %r: %s", definition.name, warning)
        return warning

    def fetch(
        self,
        session: requests.Session,
        definition: SyncDefinition,
        request: PageRequest,
        number: int,
        *,
        stop: threading.Event | None = None,
        budget: RateBudget | None = None,
        prepared: requests.PreparedRequest | None = None,
    ) -> tuple[requests.Response, Any]:
        """Send one request with retries; return the response and its decoded JSON body. A set ``stop`` ends a
        wait between retries (or for a slot of the ``budget``) at once (:class:`SyncCancelled`). ``prepared`` is
        ``request`` prepared already, for its first attempt.

        A 429 or 503 (and any ``Retry-After``) holds off the whole budget for the wait before the retry, so that
        the sync's other requests, and those of every task sharing the budget, wait too."""
        deadline = time.monotonic() + definition.request_retry_max_seconds
        for attempt in range(definition.request_retries + 1):
            try:
                if budget is not None:
                    budget.acquire(stop)
                return self._attempt(session, definition, request, number, prepared if attempt == 0 else None)
            except _Retry as retry:
                wait = self._backoff(attempt, retry.retry_after, definition)
                if budget is not None and (retry.retry_after is not None or _status(retry.error) in _HOLD_OFF_STATUSES):
                    budget.hold_off(wait)
                if attempt >= definition.request_retries or time.monotonic() + wait > deadline:
                    raise retry.error from None
                self.log.warning(
                    "sync %r page %d: %s; retry %d of %d in %.1f s",
                    definition.name,
                    number,
                    retry.reason,
                    attempt + 1,
                    definition.request_retries,
                    wait,
                )
                self._wait(wait, stop, definition.name)
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, seconds: float, stop: threading.Event | None, sync: str) -> None:
        """Wait before a retry; a set ``stop`` ends the wait (a long ``Retry-After`` never delays a shutdown)."""
        if self._sleep is not None:
            self._sleep(seconds)
        elif (stop or threading.Event()).wait(seconds):
            raise SyncCancelled(f"sync {sync!r}: stopped while waiting {seconds:.1f} s to retry a request")

    def _prepare(
        self, session: requests.Session, definition: SyncDefinition, request: PageRequest
    ) -> requests.PreparedRequest:
        """``request`` as ``requests`` sends it, with the session's headers, auth and cookies, once the host guard
        let it pass."""
        url = self._url(request)
        params = dict(request.params)
        if self._guard is not None:
            self._guard.check(url, (params, request.body, dict(session.headers)))
        return self._prepared(session, request.method, url, params, request.body)

    def _prepare_early(
        self, session: requests.Session, definition: SyncDefinition, request: PageRequest
    ) -> list[tuple[PageRequest, requests.PreparedRequest]]:
        """``request`` with its preparation, or nothing when preparing it fails: it is then prepared again when
        its turn comes, and fails there, once the page before it is handed on."""
        try:
            return [(request, self._prepare(session, definition, request))]
        except Exception:  # raised again, in its place, by the request's own attempt
            return []

    def _prepared(
        self, session: requests.Session, method: str, url: str, params: Mapping[str, Any] | None, body: Any
    ) -> requests.PreparedRequest:
        auth = self._environment.auth(url) if self._environment is not None else None
        return session.prepare_request(requests.Request(method, url, params=params or None, json=body, auth=auth))

    def _url(self, request: PageRequest) -> str:
        return request.url if is_absolute_url(request.url) else self.url_from_endpoint(request.url)

    def _attempt(
        self,
        session: requests.Session,
        definition: SyncDefinition,
        request: PageRequest,
        number: int,
        prepared: requests.PreparedRequest | None = None,
    ) -> tuple[requests.Response, Any]:
        shown = _Shown(request.method, self._url(request), number)
        try:
            prepared = prepared or self._prepare(session, definition, request)
            response = self._send(session, definition, prepared, request.body, shown)
            content = response.content  # reads the whole body: a truncated one raises here
        except requests.RequestException as error:
            reason = f"{type(error).__name__} on {shown}"
            detail = redact_text(str(error), self._secrets)
            transient = isinstance(error, _TRANSIENT_REQUEST_ERRORS) and not isinstance(
                error, requests.exceptions.SSLError
            )
            _fail(HttpError(f"{reason}: {detail}", sync=definition.name, status=0, retryable=transient), reason)
        self._check_status(response, definition, shown)
        return response, self._decode(response, content, definition, shown)

    def _send(
        self,
        session: requests.Session,
        definition: SyncDefinition,
        prepared: requests.PreparedRequest,
        body: Any,
        shown: _Shown,
    ) -> requests.Response:
        """Send ``prepared`` (whose JSON body is ``body``) and follow its redirects on the same host (and port) only.

        Redirects are followed here, not by ``requests``, so that the next-URL host guard applies to them too:
        the sync's headers and the connection's credentials are never sent to another host.
        """
        method = prepared.method or "GET"
        for _ in range(session.max_redirects + 1):
            settings = (self._environment or EnvironmentPerHost(session)).settings(prepared.url or "")
            response = session.send(prepared, timeout=definition.request_timeout, allow_redirects=False, **settings)
            if not response.is_redirect:
                return response
            response.content  # noqa: B018  # read the redirect's own body, which frees the connection
            target = urljoin(response.url, response.headers["Location"])
            if host_of(target) != host_of(response.url):
                raise HttpError(
                    f"{shown} answered {response.status_code} {response.reason}, a redirect to "
                    f"{redact_url(target)!r} on another host; it is not followed, as that would send the sync's "
                    "headers and credentials there (use the final URL in the definition)",
                    sync=definition.name,
                    status=response.status_code,
                    request=response.request,
                    response=response,
                    retryable=False,
                )
            method, body = _redirected_method(response.status_code, method, body)
            prepared = self._prepared(session, method, target, None, body)
        raise HttpError(
            f"{shown} was redirected more than {session.max_redirects} times",
            sync=definition.name,
            status=response.status_code,
            request=response.request,
            response=response,
            retryable=False,
        )

    def _check_status(self, response: requests.Response, definition: SyncDefinition, shown: _Shown) -> None:
        status = response.status_code
        if status < 400:
            return
        error = HttpError(
            f"{shown} answered {status} {response.reason}: {self._preview(response.content)}",
            sync=definition.name,
            status=status,
            request=response.request,
            response=response,
        )
        _fail(error, f"{status} {response.reason}", _retry_after(response.headers))

    def _decode(self, response: requests.Response, content: bytes, definition: SyncDefinition, shown: _Shown) -> Any:
        """The decoded JSON body; ``None`` for a 204 or an empty body (an empty page)."""
        if response.status_code == 204 or not content.strip():
            return None
        try:
            return msgspec.json.decode(content)
        except RecursionError:
            raise ResponseError(
                f"{shown} answered JSON nested too deeply to decode ({len(content)} bytes); the page was not written",
                sync=definition.name,
            ) from None
        except msgspec.DecodeError as decode_error:
            content_type = response.headers.get("Content-Type", "(none)")
            error = ResponseError(
                f"{shown} answered {response.status_code} with a body that is not JSON "
                f"(Content-Type {content_type}, {len(content)} bytes: {self._preview(content)}): {decode_error}",
                sync=definition.name,
                retryable="json" in content_type.lower(),  # labelled JSON: cut off or garbled on the way
            )
            _fail(error, "malformed or truncated JSON")

    def _preview(self, content: bytes) -> str:
        """The first bytes of a body, for error messages, with known secrets replaced."""
        text = redact_text(content[:_PREVIEW_BYTES].decode("utf-8", errors="replace"), self._secrets)
        return repr(text) + (" ..." if len(content) > _PREVIEW_BYTES else "")

    def _backoff(self, attempt: int, retry_after: float | None, definition: SyncDefinition) -> float:
        exponential = min(_MAX_BACKOFF_SECONDS, definition.request_backoff_seconds * 2**attempt)
        jittered = exponential * random.uniform(0.5, 1.0)
        return max(jittered, retry_after or 0.0)


class EnvironmentPerHost:
    """What ``requests`` takes from the environment for a request of ``session``, read once per scheme and host of
    a run: the proxies, the CA bundle (``HTTPS_PROXY``, ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``...) and the
    ``~/.netrc`` entry.

    ``Session.request`` reads them for every request, scanning the whole environment twice and looking for
    ``~/.netrc`` on disk: a large part of a request's CPU time when pages come fast. They depend only on the URL's
    scheme and host (and port) and on the environment, which a run does not change.
    """

    def __init__(self, session: requests.Session) -> None:
        self._session = session
        self._settings: dict[tuple[str, str], dict[str, Any]] = {}
        self._netrc: dict[tuple[str, str], Any] = {}

    def auth(self, url: str) -> Any:
        """The ``auth`` to prepare a request to ``url`` with: ``None`` where ``requests`` would not read
        ``~/.netrc`` (the session has auth, or ignores the environment), else the host's entry in it or
        :func:`_no_netrc_entry`, which ``requests`` takes as found and leaves the request as it is."""
        if self._session.auth is not None or not self._session.trust_env:
            return None
        key = _scheme_and_host(url)
        if key not in self._netrc:
            self._netrc[key] = requests.utils.get_netrc_auth(url) or _no_netrc_entry
        return self._netrc[key]

    def settings(self, url: str) -> dict[str, Any]:
        """The ``proxies``, ``stream``, ``verify`` and ``cert`` to send a request to ``url`` with, as
        ``Session.merge_environment_settings`` gives them."""
        key = _scheme_and_host(url)
        if key not in self._settings:
            settings: dict[str, Any] = {**self._session.merge_environment_settings(url, {}, None, None, None)}
            if key[0] == "http" and not settings["proxies"]:
                settings["verify"] = True  # no TLS: a CA bundle's path would only be looked up on disk each time
            self._settings[key] = settings
        settings = self._settings[key]
        return {**settings, "proxies": dict(settings["proxies"])}


def _scheme_and_host(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _no_netrc_entry(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """The auth of a request to a host without a ``~/.netrc`` entry: none."""
    return request


def _planned(
    paginator: Paginator, following: PageRequest, response: PageResponse, number: int, concurrency: int
) -> list[PageRequest]:
    """The requests to send ahead: the next one, or with parallel paging the next ``concurrency`` of the total."""
    if concurrency > 1 and isinstance(paginator, OffsetPaginator):
        return paginator.planned(following, response, number, concurrency) or [following]
    return [following]


def _status(error: Exception) -> int | None:
    return error.status if isinstance(error, HttpError) else None


def extract_records(document: Any, path: CompiledPath, sync: str, page: int) -> list[Any]:
    """The list of records at ``path`` in a decoded response, or a :class:`ResponseError` saying why not.

    No document (a 204 or an empty body), ``null`` and ``[]`` are an empty page, as is ``null`` at ``path``.
    """
    if document is None or document == []:
        return []
    if not path.is_jsonpath and not isinstance(document, dict):
        raise ResponseError(
            f"page {page}: expected a JSON object with the records at {path.expression!r}, got "
            f"{_a(_json_type(document))} (use response_path '$' when the response itself is the list)",
            sync=sync,
        )
    records = path.get(document)
    if records is None:
        return []
    if records is MISSING:
        raise ResponseError(
            f"page {page}: response_path {path.expression!r} is not in the response; "
            f"its top-level keys are {_top_level_keys(document)}",
            sync=sync,
        )
    if not isinstance(records, list):
        raise ResponseError(
            f"page {page}: response_path {path.expression!r} holds {_a(_json_type(records))}, not a list of "
            f"records; top-level keys are {_top_level_keys(document)}",
            sync=sync,
        )
    return records


def _redirected_method(status: int, method: str, body: Any) -> tuple[str, Any]:
    """The method and body after a redirect, as browsers and ``requests`` do it: 307 and 308 keep both; 303
    and 302 (and 301 after a POST) become a GET; the body is dropped on every redirect but 307 and 308."""
    if status in (307, 308):
        return method, body
    if status == 303 or (status == 302 and method != "HEAD") or (status == 301 and method == "POST"):
        return "GET", None
    return method, None


def _a(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _top_level_keys(document: Any) -> str:
    if isinstance(document, Mapping):
        keys = list(document)
        return repr(keys[:20]) + (" ..." if len(keys) > 20 else "")
    return f"(none: the response is a {_json_type(document)})"


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), or None."""
    value = headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
