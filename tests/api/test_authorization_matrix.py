"""The authorization matrix, generated from `/openapi.json`: nobody writes a test per route.

For every operation that takes a bearer token (`x-fastest-ability`, set by `authorize(...)`):
- no token → 401, a revoked token of the owner's → 401, the owner's token lacking the route's
  ability → 403 (routes open to any valid token, `"*"`, skip that one);
and for every operation with a path parameter, with the owner's real ids in the path:
- a second user (every ability) → 404, exactly like a missing resource;
- the owner's data is unchanged by all of the above: every GET route the owner can read with the
  ids made (and the listings) answers the same before and after;
- finally the owner's own call reaches the resource (not 401/403, and not the stranger's answer),
  which proves the ids were real.

A NEW ROUTE IS COVERED BY ITSELF if it uses `authorize(...)` (or `openapi_extra=public("why")` for a
route that takes no bearer token). If its path has a parameter no factory knows, this test fails
until one is added in `tests/api/authz_resources.py` (the one place), e.g. for `{webhook_id}`:

    @factory("webhook_id")
    async def webhook(owner: Owner) -> str:
        return (await owner.post("/v1/integrations/webhooks", json={"url": "https://example.com/h", "events": ["snapshot.created"]}))["webhook"]["id"]

(`owner.id("project_id")` gives another factory's id; see the top of that file.) A parameter that
cannot have one goes in `EXCEPTIONS` there, with its reason. Bodies come from the route's JSON schema
(fields named like a factory get the owner's ids); `BODIES` / `QUERIES` there override.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest

from fastest.api.deps import ABILITY_EXTENSION, ANY_ABILITY, PUBLIC_EXTENSION
from fastest.app import create_app
from fastest.config import Settings
from fastest.domain.tokens import ABILITIES
from tests.api.cloudflare_standin import CloudflareStandIn
from tests.api import authz_resources as resources
from tests.conftest import make_caller
from tests.edge_runtime import is_edge
from tests.loopback import PUBLIC_ADDRESS

OPENAPI = create_app(lambda scope: None).openapi()
METHODS = ("get", "post", "put", "patch", "delete")
PARAM = re.compile(r"\{([^}]+)\}")


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in OPENAPI["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


BEARER = [(m, p, op) for m, p, op in operations() if ABILITY_EXTENSION in op]
WITH_IDS = [(m, p, op) for m, p, op in BEARER if PARAM.search(p)]


@pytest.fixture(scope="module")
def cloudflare():
    """A loopback Cloudflare API, so the owner can save a deploy credential (it is verified first)."""
    with CloudflareStandIn() as stand_in:
        yield stand_in


@pytest.fixture
def settings(cloudflare) -> Settings:
    # Each case makes a few dozen calls as one user; the limits have their own tests.
    return Settings(rate_limit_per_minute=100_000, sync_rate_limit_per_minute=100_000, ai_rate_limit_per_minute=100_000,
                    cloudflare_api_base=cloudflare.base, webhooks_allow_loopback_http="1")


# --------------------------------------------------------------------------------------------------
# Every route says who may call it.


def test_every_route_declares_an_ability_or_is_marked_public():
    unmarked = [f"{m} {p}" for m, p, op in operations() if ABILITY_EXTENSION not in op and PUBLIC_EXTENSION not in op]
    assert not unmarked, (
        "these routes neither use authorize(ability) nor say openapi_extra=public('why') (api/deps.py): "
        f"{unmarked}"
    )
    both = [f"{m} {p}" for m, p, op in operations() if ABILITY_EXTENSION in op and PUBLIC_EXTENSION in op]
    assert not both, f"marked public but authorize(...) too: {both}"
    unknown = {op[ABILITY_EXTENSION] for _, _, op in BEARER} - set(ABILITIES) - {ANY_ABILITY}
    assert not unknown, f"abilities not in domain/tokens.ABILITIES: {unknown}"
    assert all(op[PUBLIC_EXTENSION].strip() for m, p, op in operations() if PUBLIC_EXTENSION in op)


def test_every_path_parameter_has_a_factory_or_a_stated_exception():
    missing = sorted(
        {f"{{{name}}} in {m} {p}" for m, p, _ in WITH_IDS for name in PARAM.findall(p)
         if resources.factory_key(p, name) is None and name not in resources.EXCEPTIONS}
    )
    assert not missing, (
        "add a factory for these path parameters in tests/api/authz_resources.py (see the top of that file), "
        f"or an exception with its reason: {missing}"
    )
    assert len(resources.EXCEPTIONS) <= 5, "the exceptions list must stay short"
    unused = set(resources.EXCEPTIONS) - {name for _, p, _ in WITH_IDS for name in PARAM.findall(p)}
    assert not unused, f"exceptions for parameters no route has any more: {unused}"


# --------------------------------------------------------------------------------------------------
# Request bodies from the schema.


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = OPENAPI["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _string(schema: dict[str, Any]) -> str:
    pattern = schema.get("pattern")
    low, high = schema.get("minLength", 1), schema.get("maxLength", 64)
    candidates = ["x", "x" * low, "0" * 64, "current", "README.md", "X_1"]
    if pattern:
        for prefix in re.findall(r"([a-z]{3}_)\[0-9A-HJKMNP-TV-Z\]\{26\}", pattern):
            candidates.append(prefix + "0" * 26)
    for candidate in candidates:
        if low <= len(candidate) <= high and (pattern is None or re.fullmatch(pattern, candidate)):
            return candidate
    raise AssertionError(f"cannot make a string for {schema}: add the route to BODIES in tests/api/authz_resources.py")


async def example(schema: dict[str, Any], owner: resources.Owner, name: str = "") -> Any:
    """A small valid instance of `schema`: required fields only; fields named like a factory get
    the owner's ids."""
    schema = _resolve(schema)
    if name and resources.factory_key(owner.path, name) is not None and name not in ("key", "hash"):
        return await owner.id(name)
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            options = [o for o in schema[combinator] if _resolve(o).get("type") != "null"]
            return await example(options[0], owner, name)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        return {key: await example(properties[key], owner, key) for key in schema.get("required", [])}
    if kind == "array":
        return [await example(schema.get("items", {}), owner) for _ in range(schema.get("minItems", 0))]
    if kind == "integer":
        return int(schema.get("minimum", 0))
    if kind == "number":
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    if kind == "string":
        return _string(schema)
    return None


async def request_parts(method: str, path: str, operation: dict[str, Any], owner: resources.Owner) -> dict[str, Any]:
    """The URL (owner's ids in the path, required query parameters) and the body, as httpx kwargs."""
    route = f"{method} {path}"
    url = path
    for name in PARAM.findall(path):
        value = await owner.id(name) if name not in resources.EXCEPTIONS else "placeholder_0000"
        url = url.replace("{" + name + "}", str(value))
    parts: dict[str, Any] = {"url": url}
    if route in resources.QUERIES:
        parts["params"] = await resources.QUERIES[route](owner)
    else:
        required = [p for p in operation.get("parameters", []) if p.get("in") == "query" and p.get("required")]
        parts["params"] = {p["name"]: await example(p.get("schema", {}), owner, p["name"]) for p in required}
    if route in resources.BODIES:
        parts["json"] = await resources.BODIES[route](owner)
        return parts
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        parts["json"] = await example(content["application/json"].get("schema", {}), owner)
    elif "application/octet-stream" in content:
        parts["content"] = b"not the owner's bytes"
    return parts


# --------------------------------------------------------------------------------------------------
# The owner's view: every GET they can make with the ids at hand, before and after.


# GETs left out of the owner's view: reading them writes (an audit event per reveal), or they log
# the callers' own requests by design.
NOT_A_VIEW = {
    "/v1/audit": "the security log records every call, including the matrix's own",
    "/v1/auth/api-keys/values": "a reveal: each read adds an audit event",
    "/v1/projects/{project_id}/env-vars/values": "a reveal: each read adds an audit event",
    "/v1/workspaces/{workspace_id}/drift/compare": "computes and records a drift report",
}
# Fields that move with the owner's own use (the lacking-ability token is the owner's).
MOVING_FIELDS = {"last_used_at"}


def _steady(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _steady(v) for k, v in value.items() if k not in MOVING_FIELDS}
    if isinstance(value, list):
        return [_steady(v) for v in value]
    return value


def _readable(owner: resources.Owner) -> list[str]:
    urls = []
    for path, item in OPENAPI["paths"].items():
        operation = item.get("get")
        if operation is None or ABILITY_EXTENSION not in operation or path in NOT_A_VIEW:
            continue
        if any(p.get("in") == "query" and p.get("required") for p in operation.get("parameters", [])):
            continue
        names = PARAM.findall(path)
        if any(name not in owner.ids for name in names):
            continue
        url = path
        for name in names:
            url = url.replace("{" + name + "}", str(owner.ids[name]))
        urls.append(url)
    return urls


async def owner_view(api: httpx.AsyncClient, owner: resources.Owner) -> dict[str, Any]:
    view = {}
    for url in _readable(owner):
        response = await api.get(url, headers=owner.headers)
        if response.status_code >= 400:
            view[url] = _answer(response)  # problems quote their request id: compare status and error
        elif "json" in response.headers.get("content-type", ""):
            view[url] = (response.status_code, _steady(response.json()))
        else:
            view[url] = (response.status_code, response.content)
    return view


def _answer(response: httpx.Response) -> tuple[int, str]:
    try:
        body = response.json()
    except ValueError:
        return response.status_code, ""
    error = body.get("error") if isinstance(body, dict) else None
    return response.status_code, json.dumps(error, sort_keys=True) if error else ""


# --------------------------------------------------------------------------------------------------
# The matrix.


def _everything_but(ability: str) -> tuple[str, ...]:
    return tuple(a for a in ABILITIES if a != ability) or ("projects:read",)


def matrix_client(platform) -> httpx.AsyncClient:
    """The API as the matrix calls it: the app in-process, or the Worker on the edge runtime."""
    harness = getattr(platform, "harness", None)
    if harness is not None:
        return httpx.AsyncClient(base_url=harness.url, timeout=60)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(lambda scope: platform)), base_url="http://testserver")


@pytest.mark.parametrize(("method", "path", "operation"), BEARER, ids=[f"{m} {p}" for m, p, _ in BEARER])
def test_authorization_matrix(method: str, path: str, operation: dict[str, Any], platform) -> None:
    ability = operation[ABILITY_EXTENSION]
    owner = make_caller(platform, "owner@example.com", tuple(ABILITIES))
    revoked = make_caller(platform, "owner@example.com", tuple(ABILITIES))
    lacking = make_caller(platform, "owner@example.com", _everything_but(ability)) if ability != ANY_ABILITY else None
    stranger = make_caller(platform, "stranger@example.com", tuple(ABILITIES))
    route = f"{method} {path}"
    if is_edge():
        platform.harness.register_host(resources.WEBHOOK_HOST, [PUBLIC_ADDRESS])

    async def check() -> None:
        async with matrix_client(platform) as api:
            mine = resources.Owner(api, owner.token, path)
            parts = await request_parts(method, path, operation, mine)
            assert (await api.post("/v1/auth/logout", headers={"Authorization": f"Bearer {revoked.token}"})).status_code == 204
            before = await owner_view(api, mine)

            def send(token: str | None) -> Any:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                return api.request(method, headers=headers, **parts)

            answer = await send(None)
            assert answer.status_code == 401, f"{route} without a token: {answer.status_code} {answer.text}"
            answer = await send(revoked.token)
            assert answer.status_code == 401, f"{route} with a revoked token: {answer.status_code} {answer.text}"
            assert answer.json()["error"]["code"] in ("invalid_token", "unauthenticated")
            if lacking is not None:
                answer = await send(lacking.token)
                assert answer.status_code == 403, f"{route} without `{ability}`: {answer.status_code} {answer.text}"
                assert answer.json()["error"]["code"] == "forbidden"
            strangers = None
            if PARAM.search(path):
                strangers = await send(stranger.token)
                if route not in resources.NOT_OWNED_BY_PATH:
                    assert strangers.status_code == 404, (
                        f"{route} as another user: {strangers.status_code} {strangers.text} (expected 404 like a "
                        "missing resource; if the body was refused first, add one to BODIES in authz_resources.py)"
                    )

            after = await owner_view(api, mine)
            changed = {url: (before.get(url), after.get(url)) for url in before.keys() | after.keys()
                       if before.get(url) != after.get(url)}
            assert not changed, f"{route}: the owner's data changed under other callers' requests: {changed}"

            # The ids were real: the owner's own call gets past authorization and finds the resource.
            if PARAM.search(path) and not any(name in resources.EXCEPTIONS for name in PARAM.findall(path)):
                own = await send(owner.token)
                assert own.status_code not in (401, 403), f"{route} as the owner: {own.status_code} {own.text}"
                if strangers is not None and route not in resources.NOT_OWNED_BY_PATH:
                    assert _answer(own) != _answer(strangers), (
                        f"{route}: the owner gets the stranger's answer ({own.status_code} {own.text}); does the "
                        "factory in authz_resources.py make the resource this route reads?"
                    )

    asyncio.run(check())
