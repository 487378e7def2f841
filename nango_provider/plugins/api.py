"""The REST API of the original Nango product, on Airflow's API server under ``/nango``.

::

    POST   /nango/v1/syncs              create a sync (the original JSON body, plus ``name``)
    GET    /nango/v1/syncs              every sync: definition, state, last run, recent runs; definition errors
    GET    /nango/v1/syncs/{id}         one sync
    GET    /nango/v1/syncs/{id}/runs    its recent runs (one per try), newest first, with links to Airflow's UI
    PUT    /nango/v1/syncs              {"action": "pause" | "resume" | "trigger" | "cancel", "sync_id": ...}
    DELETE /nango/v1/syncs/{id}         remove a sync created through the API (its table is kept)
    GET    /nango/ui                    the "Nango syncs" page

Airflow does not protect plugin apps, so every route depends on Airflow's ``get_user`` (a JWT from
``POST /auth/token`` as ``Authorization: Bearer``, or the UI's ``_token`` cookie) and asks the auth manager
whether the user may read (GET), change (PUT), create (POST) or delete (DELETE) the sync's DAG. Creating a sync
also takes reading every connection it uses, and a URL that no sync may reach is refused (docs/security.md).

Every error has one JSON shape (:func:`error_response`): ``{"status", "code", "detail", "sync", "field"}``,
whatever refused the request (a definition, a missing sync, malformed JSON, a wrong content type, FastAPI's
own validation, Airflow's authentication).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from email.message import Message
from http import HTTPStatus
from typing import Annotated, Any, Final, Literal

from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from nango_provider.definition import SyncDefinition, connection_ids, http_connection_ids, is_absolute_url
from nango_provider.exceptions import (
    StoreError,
    SyncDefinitionError,
    SyncExistsError,
    SyncNotFoundError,
    SyncStateError,
    TriggerParamsError,
)
from nango_provider.plugins import airflow_internals, service
from nango_provider.plugins.airflow_internals import (
    BaseUser,
    DagAccessEntity,
    authorized_dag_ids,
    get_user,
    is_authorized_connection,
    is_authorized_dag,
    login_url,
)
from nango_provider.plugins.page import ICON_DARK_SVG, ICON_SVG, PAGE_HTML
from nango_provider.store.registry import SyncRegistry
from nango_provider.targets import Host, parse_allowed_hosts, refused_target

API_PREFIX: Final = "/v1/syncs"
UserDep = Annotated[BaseUser, Depends(get_user)]

app = FastAPI(
    title="Nango syncs",
    description="The REST API of Nango Sync, on Airflow: create, list, pause, resume, trigger and delete syncs.",
    version="1",
)


class SyncAction(BaseModel):
    """Body of ``PUT /v1/syncs``."""

    action: Literal["pause", "resume", "trigger", "cancel"]
    sync_id: str = Field(description="the sync's name (its DAG is nango_sync_<sync_id>)")
    conf: dict[str, Any] | None = Field(default=None, description="trigger only: the run's params")


# -- errors: one shape -------------------------------------------------------------------------------------

_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})


def error_response(
    status_code: int,
    detail: str,
    *,
    code: str | None = None,
    sync: str | None = None,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The one error body of the API: ``status`` (the HTTP status), ``code`` (a stable word to branch on),
    ``detail`` (what went wrong, for people), ``sync`` and ``field`` (where, when known, else ``null``)."""
    body = {
        "status": status_code,
        "code": code or HTTPStatus(status_code).phrase.lower().replace(" ", "_").replace("-", "_"),
        "detail": detail,
        "sync": sync,
        "field": field,
    }
    return JSONResponse(body, status_code=status_code, headers=headers)


@app.middleware("http")
async def _require_json_body(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """415 for a POST, PUT or PATCH whose body is not declared JSON (FastAPI would read a body without a content
    type as JSON, and refuse form data with an unclear validation error)."""
    if request.method in _BODY_METHODS and not _is_json_content_type(request.headers.get("content-type")):
        given = request.headers.get("content-type")
        return error_response(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"expected a JSON body with Content-Type: application/json, got {given or 'no Content-Type'}",
            code="unsupported_media_type",
        )
    return await call_next(request)


def _is_json_content_type(value: str | None) -> bool:
    if not value:
        return False
    message = Message()
    message["content-type"] = value
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


@app.exception_handler(RequestValidationError)
def _invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
    """Malformed JSON is a 400; a body or parameter of the wrong form is a 422 naming the first field."""
    problems: Sequence[dict[str, Any]] = error.errors()
    malformed = next((problem for problem in problems if problem.get("type") == "json_invalid"), None)
    if malformed is not None:
        reason = (malformed.get("ctx") or {}).get("error") or "unreadable"
        position = malformed["loc"][-1] if len(malformed.get("loc", ())) > 1 else "?"
        detail = f"the body is not valid JSON: {reason} (at character {position})"
        return error_response(status.HTTP_400_BAD_REQUEST, detail, code="malformed_json")
    fields = [".".join(str(part) for part in problem.get("loc", ())[1:]) for problem in problems]
    detail = "; ".join(
        f"{name or 'body'}: {problem.get('msg', 'invalid')}" for name, problem in zip(fields, problems, strict=True)
    )
    first_field = fields[0] if fields and fields[0] else None
    return error_response(status.HTTP_422_UNPROCESSABLE_CONTENT, detail, code="invalid_request", field=first_field)


@app.exception_handler(SyncDefinitionError)
def _invalid_definition(_: Request, error: SyncDefinitionError) -> JSONResponse:
    """422 naming the sync and the field, with the text a YAML file would get."""
    return error_response(
        status.HTTP_422_UNPROCESSABLE_CONTENT, str(error), code="invalid_definition", sync=error.sync, field=error.field
    )


@app.exception_handler(TriggerParamsError)
def _invalid_params(_: Request, error: TriggerParamsError) -> JSONResponse:
    """422 naming the param (``conf.<name>``), with the nearest valid name for a misspelled one."""
    sync = error.dag_id.removeprefix(service.DAG_PREFIX)
    field = f"conf.{error.param}" if error.param else "conf"
    return error_response(
        status.HTTP_422_UNPROCESSABLE_CONTENT, str(error), code="invalid_params", sync=sync, field=field
    )


@app.exception_handler(SyncNotFoundError)
def _not_found(_: Request, error: SyncNotFoundError) -> JSONResponse:
    return error_response(status.HTTP_404_NOT_FOUND, str(error), code="sync_not_found", sync=error.name)


@app.exception_handler(SyncExistsError)
def _exists(_: Request, error: SyncExistsError) -> JSONResponse:
    return error_response(status.HTTP_409_CONFLICT, str(error), code="sync_exists", sync=error.name)


@app.exception_handler(SyncStateError)
def _conflict(_: Request, error: SyncStateError) -> JSONResponse:
    return error_response(status.HTTP_409_CONFLICT, str(error), code="sync_state")


@app.exception_handler(StoreError)
def _unavailable(_: Request, error: StoreError) -> JSONResponse:
    return error_response(status.HTTP_503_SERVICE_UNAVAILABLE, str(error), code="store_unavailable")


@app.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, error: StarletteHTTPException) -> Response:
    """An anonymous visitor of the page is sent to Airflow's login; everything else gets the one error shape
    (Airflow's authentication, 403s, unknown routes, wrong methods)."""
    if error.status_code == status.HTTP_401_UNAUTHORIZED and request.url.path.endswith("/ui"):
        return RedirectResponse(login_url(next_url=str(request.url)))
    detail = error.detail if isinstance(error.detail, str) else str(error.detail)
    return error_response(error.status_code, detail, headers=getattr(error, "headers", None))


@app.exception_handler(Exception)
def _internal_error(_: Request, error: Exception) -> JSONResponse:
    return error_response(
        status.HTTP_500_INTERNAL_SERVER_ERROR,
        f"internal error ({type(error).__name__}): see the API server's log",
        code="internal_error",
    )


# -- authorization ------------------------------------------------------------------------------------------


def authorize(
    user: BaseUser, method: Literal["GET", "POST", "PUT", "DELETE"], dag_id: str, entity: DagAccessEntity | None = None
) -> None:
    """403 unless the auth manager lets ``user`` do ``method`` on the DAG ``dag_id`` (or on its ``entity``)."""
    if not is_authorized_dag(user, method, dag_id, entity):
        what = f"{method} {entity.value + ' of ' if entity else ''}{dag_id}"
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"user {user.get_name()!r} is not allowed to {what}")


def authorize_connections(user: BaseUser, definition: SyncDefinition) -> None:
    """403 unless ``user`` may read every connection the sync uses (Airflow's connection permission): a sync sends
    its HTTP connection's credentials and writes with its database connection's. A templated ``connections``
    list may render to any connection: it takes the permission to read every connection."""
    if isinstance(definition.connections, str) and not is_authorized_connection(user, None):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"user {user.get_name()!r} is not allowed to read every connection, which sync {definition.name!r} "
            "may use: its connections are a template",
        )
    for conn_id in sorted(connection_ids(definition)):
        if not is_authorized_connection(user, conn_id):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"user {user.get_name()!r} is not allowed to read connection {conn_id!r}, which sync "
                f"{definition.name!r} uses: only users who may read a connection may create syncs that use it",
            )


def check_target(definition: SyncDefinition) -> None:
    """422 when the URL (as written, not templated) goes where no sync may: outside ``[nango] allowed_hosts``, to a
    cloud metadata address or to Airflow itself; or to a host other than that of the sync's HTTP connection, whose
    credentials go only there. The run checks every request again (templates included)."""
    url = definition.url
    if "{{" in url or not is_absolute_url(url):
        return
    allowed = parse_allowed_hosts(airflow_internals.allowed_hosts_setting())
    reason = refused_target(url, allowed, airflow_internals.api_server_url())
    if reason is not None:
        raise SyncDefinitionError(definition.name, "url", f"refused: {reason}")
    target = Host.of_url(url)
    for conn_id in sorted(http_connection_ids(definition)):
        host = Host.of_connection(*airflow_internals.connection_host(conn_id))
        if host is not None and target is not None and not host.serves(target):
            raise SyncDefinitionError(
                definition.name,
                "url",
                f"host {target} is not the host of connection {conn_id!r} ({host}), whose credentials go only "
                "there: use a URL on that host, or a path relative to it",
            )


def _dag_id(sync_id: str) -> str:
    return f"{service.DAG_PREFIX}{sync_id}"


def _readable(user: BaseUser, catalog: service.Catalog) -> list[str]:
    """Names of the syncs whose DAG ``user`` may read (syncs not parsed yet are checked one by one)."""
    permitted = authorized_dag_ids(user)
    names = []
    for name, entry in catalog.entries.items():
        if entry.dag_id in permitted or (entry.dag is None and is_authorized_dag(user, "GET", entry.dag_id)):
            names.append(name)
    return names


# -- routes -------------------------------------------------------------------------------------------------
# No route holds a session of Airflow's metadata database while it authorizes, reads the registry or looks up a
# connection (each of which may need a session of its own): every read and write of Airflow's metadata is one
# short session (service.metadata), so bursts of requests never exhaust the API server's pool.


@app.post(API_PREFIX, status_code=status.HTTP_201_CREATED)
def create_sync(body: Annotated[dict[str, Any], Body()], user: UserDep) -> dict[str, Any]:
    """Create a sync from the original JSON body (``url``, ``method``, ``headers``, ``body``, ``response_path``,
    ``unique_key``, ``paging_request_path``, ``paging_response_path``) plus ``name`` and any other field."""
    name = body.get("name")
    if not isinstance(name, str):
        raise SyncDefinitionError("?", "name", f"expected the sync's name (^[a-z][a-z0-9_]*$), got {name!r}")
    fields = {key: value for key, value in body.items() if key != "name"}
    definition = SyncDefinition.from_mapping(name, fields)
    authorize(user, "POST", definition.dag_id)
    authorize_connections(user, definition)
    check_target(definition)
    _refuse_taken_name(definition)
    registry = SyncRegistry()
    registry.save(name, fields)
    try:
        with service.metadata(None, f"recording the creation of sync {name!r}") as session:
            service.set_paused(session, definition.dag_id, False, missing_ok=True)  # the DAG of a deleted namesake
            reparse = service.request_reparse(session)
            service.audit(session, "sync_created", definition.dag_id, user.get_name(), sync=name, source="api")
    except (StoreError, SyncStateError):
        registry.delete(name)  # not created at all rather than created without its audit entry
        raise
    return {"id": name, "dag_id": definition.dag_id, "reparse_requested": reparse}


def _refuse_taken_name(definition: SyncDefinition) -> None:
    """409 when a YAML file or a DAG file already defines a sync with this name (the registry checks itself);
    422 when another sync already writes to the table."""
    catalog = service.load_catalog(registry=SyncRegistry())
    entry = catalog.entries.get(definition.name)
    if entry is not None:
        raise SyncExistsError(definition.name, entry.defined_in or entry.source)
    owner = catalog.owner_of_table(definition)
    if owner is not None:
        raise SyncDefinitionError(
            definition.name,
            "table",
            f"{'.'.join(definition.qualified_table)} is the table of sync {owner.name!r} "
            f"({owner.defined_in or owner.source}): every sync needs a table of its own",
        )


@app.get(API_PREFIX)
def list_syncs(user: UserDep) -> dict[str, Any]:
    """Every sync the user may read, with its state, its last run and its recent runs."""
    registry = SyncRegistry()
    catalog = service.load_catalog(registry=registry)
    entries = catalog.add_runs(None, _readable(user, catalog), registry.conn_id)
    return {
        "syncs": [{**entry.as_json(), "actions": service.action_permissions(user, entry)} for entry in entries],
        "total_entries": len(entries),
        "has_import_errors": bool(catalog.import_errors),
        "errors": catalog.all_errors,
        "definition_errors": [service.structured_error(line) for line in catalog.import_errors],
        "user": user.get_name(),
    }


@app.get(API_PREFIX + "/{sync_id}")
def get_sync(sync_id: str, user: UserDep) -> dict[str, Any]:
    """One sync, with its state, its last run and its recent runs."""
    authorize(user, "GET", _dag_id(sync_id))
    registry = SyncRegistry()
    catalog = service.load_catalog(registry=registry)
    entry = catalog.get(sync_id)
    catalog.add_runs(None, [sync_id], registry.conn_id)
    return {
        **entry.as_json(),
        "errors": catalog.all_errors,
        "actions": service.action_permissions(user, entry),
        "definition_errors": [service.structured_error(line) for line in catalog.import_errors],
        "user": user.get_name(),
    }


@app.get(API_PREFIX + "/{sync_id}/runs")
def get_sync_runs(
    sync_id: str, user: UserDep, limit: Annotated[int, Query(ge=1, le=service.RUNS_LIMIT)] = 50
) -> dict[str, Any]:
    """The sync's last ``limit`` runs (one row per try), newest first, with their counts, full error, duration
    and the paths of the Airflow run and task log."""
    authorize(user, "GET", _dag_id(sync_id))
    registry = SyncRegistry()
    catalog = service.load_catalog(registry=registry)
    entry = catalog.get(sync_id)
    with service.metadata(None, f"reading the latest DAG run of sync {sync_id!r}") as session:
        service.add_latest_dag_run(session, entry)
    runs = service.sync_runs(entry, registry.conn_id, limit)
    return {"id": entry.name, "dag_id": entry.dag_id, "runs": runs, "last_dag_run": entry.dag_run}


@app.put(API_PREFIX)
def act_on_sync(action: SyncAction, user: UserDep) -> dict[str, Any]:
    """Pause, resume, trigger (with optional ``conf``) or cancel (fail its queued and running runs) a sync."""
    dag_id = _dag_id(action.sync_id)
    authorize(user, "PUT", dag_id)
    if action.action == "trigger":
        authorize(user, "POST", dag_id, DagAccessEntity.RUN)
    elif action.action == "cancel":
        authorize(user, "PUT", dag_id, DagAccessEntity.RUN)
    _require_parsed(action.sync_id)
    result: dict[str, Any] = {"id": action.sync_id, "dag_id": dag_id, "action": action.action}
    with service.metadata(None, f"{action.action} of sync {action.sync_id!r}") as session:
        if action.action in ("pause", "resume"):
            service.set_paused(session, dag_id, paused=action.action == "pause")
            result["is_paused"] = action.action == "pause"
        elif action.action == "trigger":
            result |= service.trigger(session, dag_id, action.conf, user.get_name())
        else:
            result["cancelled"] = service.cancel(session, dag_id)
        service.audit(session, f"sync_{action.action}", dag_id, user.get_name(), sync=action.sync_id)
    return result


def _require_parsed(sync_id: str) -> None:
    """Nothing when the sync's DAG is parsed; else 404 for an unknown sync, 409 for one not parsed yet."""
    with service.metadata(None, f"reading the DAG of sync {sync_id!r}") as session:
        if service.dag_infos(session, [_dag_id(sync_id)]):
            return
    service.require_dag(service.load_catalog(registry=SyncRegistry()).get(sync_id))


@app.delete(API_PREFIX + "/{sync_id}")
def delete_sync(sync_id: str, user: UserDep) -> dict[str, Any]:
    """Remove a sync created through the API: its DAG goes away at the next parse; its table and rows stay."""
    dag_id = _dag_id(sync_id)
    authorize(user, "DELETE", dag_id)
    registry = SyncRegistry()
    table = _table_of(registry, sync_id)
    _delete_stored(registry, sync_id)
    with service.metadata(None, f"recording the deletion of sync {sync_id!r}") as session:
        service.set_paused(session, dag_id, True, missing_ok=True)  # no new run until the DAG goes stale
        service.request_reparse(session)
        service.audit(session, "sync_deleted", dag_id, user.get_name(), sync=sync_id)
    return {"id": sync_id, "dag_id": dag_id, "deleted": True, "table_kept": table}


def _delete_stored(registry: SyncRegistry, sync_id: str) -> None:
    """Remove the stored definition; 404 when there is no sync of that name, 409 for a YAML or DAG file sync.

    A sync created by a request racing this one may be stored between the delete and the catalog's read: it is
    then an API sync, and deleted on a second attempt."""
    for _ in range(3):
        if registry.delete(sync_id):
            return
        entry = service.load_catalog(registry=registry).get(sync_id)
        if entry.source != "api":
            raise SyncStateError(
                f"sync {sync_id!r} is defined in {entry.defined_in or 'a DAG file'}, not through the API: "
                "delete it from that YAML (or DAG) file"
            )
    raise SyncNotFoundError(sync_id)


def _table_of(registry: SyncRegistry, name: str) -> str | None:
    """The table of a stored sync (``None`` if there is none, or it no longer validates)."""
    try:
        stored = registry.get(name)
    except SyncDefinitionError:
        return None
    return ".".join(stored.definition.qualified_table) if stored else None


@app.get("/ui", response_class=HTMLResponse)
def page(user: UserDep) -> HTMLResponse:
    """The "Nango syncs" page: every sync, its state, last run, counts and a chart of records fetched."""
    return HTMLResponse(PAGE_HTML, headers={"Cache-Control": "no-store"})


@app.get("/icon.svg")
def icon(user: UserDep) -> Response:
    """The nav icon of the page."""
    return Response(ICON_SVG, media_type="image/svg+xml", headers={"Cache-Control": "max-age=3600"})


@app.get("/icon-dark.svg")
def icon_dark(user: UserDep) -> Response:
    """The nav icon of the page in Airflow's dark mode."""
    return Response(ICON_DARK_SVG, media_type="image/svg+xml", headers={"Cache-Control": "max-age=3600"})
