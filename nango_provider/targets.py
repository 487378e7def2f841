"""Where a sync may send its requests, and which connections its templates may read.

The rule: a value from connection X (its password, extra, URI) is sent only to X's own host. It is checked twice:

- when a definition is read (:func:`template_connection_ids`, used by ``definition.py``): a request field
  (``url``, ``headers``, ``query_params``, ``body``) may template only the sync's own connections, by literal id
  (``conn.my_api.password``, ``conn['my_api']``, ``conn.get('my_api')``); any other use of ``conn`` is refused,
  as it cannot be checked;
- before every request of a run (:class:`HostGuard`, used by the hook): the target host is not a cloud metadata
  address, not Airflow's own API server, and in the deployment's allow-list when there is one; a connection whose
  host is another one lends the request neither its credentials nor any of its secrets.

This module touches neither the network nor Airflow.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from jinja2 import Environment, nodes
from jinja2.exceptions import TemplateSyntaxError

from nango_provider.exceptions import ForbiddenTargetError
from nango_provider.redaction import secret_values

METADATA_HOSTS: Final = frozenset(
    {
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "metadata.google.internal",
        "metadata",
    }
)
"""Cloud metadata services: they hand out the machine's own credentials to whoever asks from inside."""
REQUEST_FIELDS: Final = ("url", "headers", "query_params", "body")
"""The fields whose rendered values are sent with a request."""
MIN_SECRET_LENGTH: Final = 4
"""Shorter connection values (a port, ``true``) are not looked for in requests."""
_LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "::1"})
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_JINJA: Final = Environment()


# -- templates ------------------------------------------------------------------------------------------------


def template_connection_ids(text: str) -> set[str]:
    """The ids of the connections a Jinja template reads by literal id; raises ``ValueError`` saying why when it
    uses ``conn`` in any other way (a computed id, the accessor passed on or assigned), which no check could
    follow."""
    if "conn" not in text or ("{{" not in text and "{%" not in text):
        return set()
    try:
        tree = _JINJA.parse(text)
    except TemplateSyntaxError as error:
        raise ValueError(f"a template that reads a connection must be valid Jinja ({error.message})") from None
    found: set[str] = set()
    _collect(tree, found)
    return found


def _collect(node: nodes.Node, found: set[str]) -> None:
    """Walk the template: each literal connection read adds its id; any other ``conn`` is refused."""
    conn_id = _literal_connection(node)
    if conn_id is not None:
        found.add(conn_id)
        return
    if isinstance(node, nodes.Name) and node.name == "conn":
        raise ValueError(
            "a template may read a connection only by its literal id (conn.my_api.password, conn['my_api'], "
            "conn.get('my_api')), so that where its secrets go can be checked"
        )
    for child in node.iter_child_nodes():
        _collect(child, found)


def _literal_connection(node: nodes.Node) -> str | None:
    """``X`` of ``conn.X``, ``conn['X']`` or ``conn.get('X')``; else ``None``."""
    if isinstance(node, nodes.Getattr) and _is_conn(node.node) and node.attr != "get":
        return node.attr
    if isinstance(node, nodes.Getitem) and _is_conn(node.node) and isinstance(node.arg, nodes.Const):
        return str(node.arg.value)
    if (
        isinstance(node, nodes.Call)
        and isinstance(node.node, nodes.Getattr)
        and node.node.attr == "get"
        and _is_conn(node.node.node)
        and len(node.args) == 1
        and isinstance(node.args[0], nodes.Const)
        and not node.kwargs
    ):
        return str(node.args[0].value)
    return None


def _is_conn(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == "conn"


def strings_in(value: Any) -> Iterator[str]:
    """Every string value in a JSON-like value (mapping values and list items, nested; keys are not rendered)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings_in(item)


# -- hosts ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Host:
    """A host a request may go to: its name (lower case) and port (``None``: any, or the scheme's default)."""

    name: str
    port: int | None = None

    @classmethod
    def of_url(cls, url: str) -> Host | None:
        """The host of an absolute URL, with its port (the scheme's default when not written)."""
        parts = urlsplit(url)
        if not parts.hostname:
            return None
        try:
            port = parts.port
        except ValueError:
            port = None
        return cls(parts.hostname.lower(), port or _DEFAULT_PORTS.get(parts.scheme.lower()))

    @classmethod
    def of_connection(cls, host: str | None, port: int | None) -> Host | None:
        """The host of an Airflow connection (``https://api.example.com`` or ``api.example.com``, and its port)."""
        if not host:
            return None
        found = cls.of_url(host if "://" in host else f"//{host}")
        if found is None:
            return None
        return cls(found.name, port or found.port)

    def serves(self, target: Host) -> bool:
        """Whether a request to ``target`` goes to this host (the port counts when this host has one)."""
        same_name = self.name == target.name or {self.name, target.name} <= _LOOPBACK_NAMES
        return same_name and (self.port is None or self.port == target.port)

    def __str__(self) -> str:
        return self.name if self.port is None else f"{self.name}:{self.port}"


def is_metadata_host(name: str) -> bool:
    """Whether ``name`` is a cloud metadata service or another link-local address (169.254.0.0/16, fe80::/10)."""
    bare = name.strip("[]").lower()
    if bare in METADATA_HOSTS:
        return True
    try:
        return ipaddress.ip_address(bare).is_link_local
    except ValueError:
        return False


def parse_allowed_hosts(text: str | None) -> tuple[str, ...]:
    """``[nango] allowed_hosts``: host names separated by commas or spaces (``api.example.com``,
    ``*.example.com``, ``host:8443``); empty: no allow-list."""
    return tuple(item.strip().lower() for item in (text or "").replace(",", " ").split() if item.strip())


def is_allowed(target: Host, allowed: Sequence[str]) -> bool:
    """Whether ``target`` matches an entry of the allow-list (a name, ``*.`` a suffix, ``name:port``)."""
    for entry in allowed:
        name, _, port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if port and (not port.isdigit() or int(port) != target.port):
            continue
        if name == target.name or (name.startswith("*.") and target.name.endswith(name[1:])):
            return True
    return False


def refused_target(url: str, allowed: Sequence[str], airflow_url: str | None) -> str | None:
    """Why a request to ``url`` is refused, or ``None``: outside the allow-list (when there is one); else a
    cloud metadata or link-local address, or Airflow's own API server, which only the allow-list can admit."""
    target = Host.of_url(url)
    if target is None:
        return None
    if allowed:
        if is_allowed(target, allowed):
            return None
        return f"host {target} is not in [nango] allowed_hosts ({', '.join(allowed)})"
    if is_metadata_host(target.name):
        return f"host {target.name} is a cloud metadata or link-local address, which hands out credentials"
    airflow = Host.of_url(airflow_url) if airflow_url else None
    if airflow is not None and airflow.serves(target):
        return f"host {target} is Airflow's own API server ([api] base_url)"
    return None


# -- the guard of a run ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionSecrets:
    """What a run knows of one connection: its id, its host (``None``: none set) and its secret values."""

    conn_id: str
    host: Host | None
    secrets: tuple[str, ...] = ()
    sends_credentials: bool = False  # the sync's own HTTP connection: its auth and extra ride on every request
    never_sent: bool = False  # a database connection: no HTTP request may carry its secrets


@dataclass
class HostGuard:
    """Checks each request of a run before it is sent; raises :class:`ForbiddenTargetError`."""

    sync: str
    allowed: tuple[str, ...] = ()
    airflow_url: str | None = None
    connections: tuple[ConnectionSecrets, ...] = ()
    # what the guard found for each scheme and host (with port): a run sends its pages to one or a few hosts
    _verdicts: dict[tuple[str, str], _HostVerdict] = field(default_factory=dict, init=False, repr=False, compare=False)

    def check(self, url: str, sent: Iterable[Any]) -> None:
        """Refuse a request to ``url`` carrying ``sent`` (its params, headers and body)."""
        verdict = self._verdict(url)
        if verdict.refusal is not None:
            raise ForbiddenTargetError(verdict.refusal, sync=self.sync)
        if not verdict.foreign:
            return
        text = "\n".join([url, *(_text_of(item) for item in sent)])
        for connection in verdict.foreign:
            self._check_foreign_connection(connection, verdict.target, text)

    def _verdict(self, url: str) -> _HostVerdict:
        """Whether requests to the host of ``url`` are refused, and which connections are foreign to it."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        verdict = self._verdicts.get(key)
        if verdict is None:
            reason = refused_target(url, self.allowed, self.airflow_url)
            refusal = None if reason is None else f"a request to {_host_text(url)} is refused: {reason}"
            target = Host.of_url(url)
            foreign = tuple(connection for connection in self.connections if _is_foreign(connection, target))
            verdict = self._verdicts[key] = _HostVerdict(target, refusal, foreign)
        return verdict

    def _check_foreign_connection(self, connection: ConnectionSecrets, target: Host | None, text: str) -> None:
        where = f"host {target}" if target else "this request"
        if connection.sends_credentials and not connection.never_sent:
            raise ForbiddenTargetError(
                f"the request goes to {where}, but the sync's connection {connection.conn_id!r} is for host "
                f"{connection.host}: its credentials go only there (use a URL on that host, or another connection)",
                sync=self.sync,
            )
        if any(secret in text for secret in connection.secrets):
            owner = "a database connection" if connection.never_sent else f"a connection of host {connection.host}"
            raise ForbiddenTargetError(
                f"the request to {where} carries a secret of connection {connection.conn_id!r} ({owner}); "
                "a connection's secrets go only to its own host",
                sync=self.sync,
            )


@dataclass(frozen=True)
class _HostVerdict:
    """What :class:`HostGuard` found for one host: the refusal of every request to it, or the connections whose
    credentials or secrets must not go there."""

    target: Host | None
    refusal: str | None
    foreign: tuple[ConnectionSecrets, ...]


def _is_foreign(connection: ConnectionSecrets, target: Host | None) -> bool:
    """Whether a request to ``target`` must carry none of ``connection``'s credentials and secrets."""
    return connection.never_sent or (
        connection.host is not None and (target is None or not connection.host.serves(target))
    )


def secret_values_of(password: str | None, uri: str | None, extra: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The values of a connection that must not travel elsewhere: its password, its URI (when it holds one) and
    the values of its extra whose names look secret (``token``, ``api_key``, ...)."""
    values = [password, uri if password else None, *secret_values(extra or {}, None)]
    return tuple(sorted({value for value in values if value and len(value) >= MIN_SECRET_LENGTH}))


def _text_of(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


def _host_text(url: str) -> str:
    host = Host.of_url(url)
    return f"host {host}" if host else "a URL without a host"
