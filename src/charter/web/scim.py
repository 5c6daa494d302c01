"""The SCIM 2.0 routes (`/scim/v2`, RFC 7644): Users, Groups, discovery; every answer is `application/scim+json`.

The work is in charter.scim; here are the HTTP shapes: query parameters, If-Match and ETag, Location,
and the SCIM error message for every refusal (docs/scim.md).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from urllib.parse import quote

import anyio
import orjson
from fastapi import APIRouter, FastAPI, Request
from scim2_models import Context, Error, ListResponse, Schema, SCIMException
from scim2_models import ResourceType as ScimResourceType
from sqlalchemy.exc import DataError
from starlette.responses import Response

from charter import admin as admin_ops
from charter.scim import PROVIDER, ProvisioningAdmin, Scim, ScimError, response_parameters, search_request
from charter.web.errors import ApiError

MEDIA_TYPE = "application/scim+json"
PREFIX = "/scim/v2"
KINDS = ("Users", "Groups")


def scim_routes(app: FastAPI) -> None:
    """Register the SCIM service on the app (one line in create_app)."""
    service = Scim(ProvisioningAdmin(app.state.engine))
    router = APIRouter(prefix=PREFIX, tags=["scim"])

    @router.get("/ServiceProviderConfig", summary="SCIM: what this service supports")
    @_scim_errors
    async def config(request: Request) -> Response:
        _caller(request)
        return _answer(PROVIDER.config.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))  # type: ignore[union-attr]

    @router.get("/Schemas", summary="SCIM: the schemas of the resources")
    @_scim_errors
    async def schemas(request: Request) -> Response:
        _caller(request)
        return _answer(_listed(Schema, list(PROVIDER.schemas)))

    @router.get("/Schemas/{schema_id}", summary="SCIM: one schema")
    @_scim_errors
    async def schema(schema_id: str, request: Request) -> Response:
        _caller(request)
        return _answer(_one(PROVIDER.schemas, schema_id, "Schema"))

    @router.get("/ResourceTypes", summary="SCIM: the resource types (User with the enterprise extension, Group)")
    @_scim_errors
    async def resource_types(request: Request) -> Response:
        _caller(request)
        return _answer(_listed(ScimResourceType, list(PROVIDER.resource_types)))

    @router.get("/ResourceTypes/{type_id}", summary="SCIM: one resource type")
    @_scim_errors
    async def resource_type(type_id: str, request: Request) -> Response:
        _caller(request)
        return _answer(_one(PROVIDER.resource_types, type_id, "ResourceType"))

    for kind in KINDS:
        _resource_routes(router, service, kind)
    app.include_router(router)


def _resource_routes(router: APIRouter, service: Scim, kind: str) -> None:
    async def run(function, *args):
        return await anyio.to_thread.run_sync(function, *args)

    async def listing(request: Request, params: dict) -> Response:
        caller, base = _caller(request), _base(request)
        wanted = search_request(kind, params)
        found = await run(service.search, caller, base, kind, wanted)
        return _answer(found.model_dump(scim_ctx=Context.SEARCH_RESPONSE, response_parameters=wanted))

    @router.get(f"/{kind}", summary=f"SCIM: list or filter {kind}")
    @_scim_errors
    async def list_resources(request: Request) -> Response:
        return await listing(request, dict(request.query_params))

    @router.post(f"/{kind}/.search", summary=f"SCIM: search {kind} (a SearchRequest body)")
    @_scim_errors
    async def search(request: Request) -> Response:
        return await listing(request, await _body(request))

    @router.get(f"/{kind}/{{rid}}", summary=f"SCIM: one of the {kind}")
    @_scim_errors
    async def get(rid: str, request: Request) -> Response:
        caller, base = _caller(request), _base(request)
        shown = response_parameters(kind, request.query_params)
        resource = await run(service.get, caller, base, kind, rid)
        if _unchanged(request.headers.get("if-none-match"), resource.meta.version):
            return Response(status_code=304, headers={"ETag": resource.meta.version})
        return _resource(resource, Context.RESOURCE_QUERY_RESPONSE, shown)

    @router.post(f"/{kind}", summary=f"SCIM: create one of the {kind}")
    @_scim_errors
    async def create(request: Request) -> Response:
        caller, base = _caller(request), _base(request)
        resource = await run(service.create, caller, base, kind, await _body(request))
        shown = response_parameters(kind, request.query_params)
        return _resource(resource, Context.RESOURCE_CREATION_RESPONSE, shown, 201)

    @router.put(f"/{kind}/{{rid}}", summary=f"SCIM: replace one of the {kind}")
    @_scim_errors
    async def replace(rid: str, request: Request) -> Response:
        caller, base = _caller(request), _base(request)
        body, if_match = await _body(request), request.headers.get("if-match")
        resource = await run(service.replace, caller, base, kind, rid, body, if_match)
        shown = response_parameters(kind, request.query_params)
        return _resource(resource, Context.RESOURCE_REPLACEMENT_RESPONSE, shown)

    @router.patch(f"/{kind}/{{rid}}", summary=f"SCIM: modify one of the {kind} (PatchOp)")
    @_scim_errors
    async def patch(rid: str, request: Request) -> Response:
        caller, base = _caller(request), _base(request)
        body, if_match = await _body(request), request.headers.get("if-match")
        resource = await run(service.patch, caller, base, kind, rid, body, if_match)
        shown = response_parameters(kind, request.query_params)
        return _resource(resource, Context.RESOURCE_PATCH_RESPONSE, shown)

    @router.delete(f"/{kind}/{{rid}}", summary=f"SCIM: delete one of the {kind}")
    @_scim_errors
    async def delete(rid: str, request: Request) -> Response:
        caller = _caller(request)
        await run(service.delete, caller, _base(request), kind, rid, request.headers.get("if-match"))
        return Response(status_code=204)


# --- shapes -------------------------------------------------------------------------------------------


def _caller(request: Request):
    from charter.web.app import caller_of  # the same authentication as the rest of the API

    return caller_of(request)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + PREFIX


async def _body(request: Request) -> dict:
    try:
        value = orjson.loads(await request.body())
    except orjson.JSONDecodeError as error:
        raise ScimError(Error(status=400, scim_type="invalidSyntax", detail=f"the body is not JSON: {error}")) from None
    if not isinstance(value, dict):
        raise ScimError(Error(status=400, scim_type="invalidSyntax", detail="the body must be a JSON object"))
    return value


def _answer(body: dict, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _resource(resource, context: Context, shown, status: int = 200) -> Response:
    # A header is Latin-1: a name such as "熸" would fail to encode (a 500), so the Location is percent-encoded.
    location = quote(resource.meta.location, safe=":/?#[]@!$&'()*+,;=%")
    headers = {"ETag": resource.meta.version, "Location": location}
    return _answer(resource.model_dump(scim_ctx=context, response_parameters=shown), status, headers)


def _unchanged(if_none_match: str | None, version: str) -> bool:
    """RFC 7644 §3.14: a GET with If-None-Match naming the current version is answered 304 Not Modified."""
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or version.removeprefix("W/") in tags


def _listed(model, items: list) -> dict:
    response = ListResponse[model](  # type: ignore[valid-type]
        total_results=len(items), start_index=1, items_per_page=len(items), resources=items
    )
    return response.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)


def _one(items, wanted: str, noun: str) -> dict:
    for item in items:
        if str(item.id).casefold() == wanted.casefold():
            return item.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    raise ScimError(Error(status=404, detail=f'no {noun} "{wanted}"'))


def _error(status: int, detail: str, scim_type: str | None = None, headers: dict | None = None) -> Response:
    return _scim_error(Error(status=status, scim_type=scim_type, detail=detail), headers)


def _scim_error(error: Error, headers: dict | None = None) -> Response:
    body = error.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    return _answer(body, int(error.status or 500), headers)


def _scim_errors(route: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
    """Answer every refusal as a SCIM Error message (RFC 7644 §3.12)."""

    @functools.wraps(route)
    async def answer(*args, **kwargs) -> Response:
        try:
            return await route(*args, **kwargs)
        except ScimError as error:
            return _scim_error(error.error)
        except SCIMException as error:
            return _scim_error(error.to_error())
        except ApiError as error:  # authentication
            return _error(error.status, error.message, headers=error.headers)
        except admin_ops.Forbidden as error:
            return _error(403, f"the charter does not allow {error.action} on {error.resource}")
        except admin_ops.NotFound as error:
            return _error(404, str(error))
        except admin_ops.Conflict as error:
            return _error(409, str(error), "uniqueness" if "duplicate" in str(error) else None)
        except admin_ops.Invalid as error:
            return _error(400, str(error), "invalidValue")
        except DataError as error:  # a value the store cannot hold (a NUL character on PostgreSQL)
            cause = str(error.orig or "").splitlines()[0][:200] if error.orig else "a value was refused"
            return _error(400, f"the store cannot hold a value of this request: {cause}", "invalidValue")

    return answer
