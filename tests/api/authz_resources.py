"""Real ids for the authorization matrix (tests/api/test_authorization_matrix.py): ONE place.

The matrix calls every route of `/openapi.json` that has a path parameter with ids of resources
its owner really has. Each path parameter name maps to a factory: an async function that creates
the owner's resource through the public API and returns the value to put in the path.

TO COVER A NEW PATH PARAMETER `{thing_id}`, add a factory here (3 lines):

    @factory("thing_id")
    async def thing(owner: Owner) -> str:
        return (await owner.post(f"/v1/projects/{await owner.id('project_id')}/things", json={"name": "t"}))["thing"]["id"]

- `owner.get/post/put/patch/delete(path, json=…, content=…)` call the API as the owner (every
  ability, a fresh session) and return the decoded JSON (bytes if not JSON); a non-2xx answer fails.
- `owner.id("project_id")` is the id another factory made, once per test: ids in one path (and in
  generated bodies) belong together, e.g. the workspace is in the project of the same URL.
- A name that means different things on different routes can be keyed by a path fragment that
  contains it, e.g. `@factory("/manifests/{hash}")`; the longest key found in the path wins.
- A JSON body field named like a factory (`workspace_id`, `manifest_hash`, …) gets the owner's id.
- If a route's body cannot be made from its schema, add it to BODIES (`"METHOD /path": async
  function(owner) -> json`); required query parameters go in QUERIES the same way.

A parameter that cannot have a factory goes in EXCEPTIONS with the reason (keep it short): the
matrix then uses a placeholder id and still checks 401/403 and the second user's 404, but not that
the owner reaches the route.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Awaitable, Callable

import httpx

from fastest.domain.device_codes import GRANT_TYPE
from fastest.domain.manifest import MODE_FILE
from fastest.domain.tree import build_manifests
from tests.edge_runtime import is_edge

Factory = Callable[["Owner"], Awaitable[Any]]
FACTORIES: dict[str, Factory] = {}

# Parameters with no factory, each with its reason. The matrix puts a placeholder id there.
EXCEPTIONS: dict[str, str] = {
    # A question exists only while a model's turn waits on it; the builtin engine (the tests' model)
    # asks none, so there is nothing real to point at.
    "request_id": "questions exist only while a model's turn waits on one; the builtin engine asks none",
}

# Routes where a second user's call is not about the owner's resource: content-addressed uploads
# name content, not a resource, and another user uploading the same bytes stores their own copy.
# The matrix still checks 401/403 there and that the owner's data is unchanged.
NOT_OWNED_BY_PATH: dict[str, str] = {
    "PUT /v1/blobs/upload/{hash}": "content-addressed: the hash names bytes anyone may upload",
    "PUT /v1/blobs/manifests/{hash}": "content-addressed: the hash names a manifest anyone may upload",
}

BODIES: dict[str, Callable[["Owner"], Awaitable[Any]]] = {}
QUERIES: dict[str, Callable[["Owner"], Awaitable[dict[str, str]]]] = {}


def factory(key: str) -> Callable[[Factory], Factory]:
    def register(function: Factory) -> Factory:
        assert key not in FACTORIES, f"two factories for {key}"
        FACTORIES[key] = function
        return function

    return register


def factory_key(path: str, param: str) -> str | None:
    """The registry key for `{param}` in `path`: the longest fragment key found in it, else the name."""
    fragments = [k for k in FACTORIES if "{" + param + "}" in k and k in path]
    if fragments:
        return max(fragments, key=len)
    return param if param in FACTORIES else None


class Owner:
    """The resource owner as seen by factories: API calls with their token, and memoised ids."""

    def __init__(self, api: httpx.AsyncClient, token: str, path: str) -> None:
        self.api, self.token, self.path = api, token, path
        self.ids: dict[str, Any] = {}

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def id(self, name: str) -> Any:
        """The owner's resource for `name` (a path parameter or body field), made once per test."""
        if name not in self.ids:
            key = factory_key(self.path, name)
            if key is None:
                raise KeyError(f"no factory for {name!r} in tests/api/authz_resources.py")
            self.ids[name] = await FACTORIES[key](self)
        return self.ids[name]

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.api.request(method, path, headers=self.headers, **kwargs)
        assert 200 <= response.status_code < 300, f"{method} {path} → {response.status_code}: {response.text}"
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.content

    async def get(self, path: str, **kwargs: Any) -> Any:
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Any:
        return await self.call("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> Any:
        return await self.call("PUT", path, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> Any:
        return await self.call("PATCH", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> Any:
        return await self.call("DELETE", path, **kwargs)


# --------------------------------------------------------------------------------------------------
# The factories, one per path parameter (or body field) name.

FILES = {"README.md": b"# owner's project\n", "src/app.py": b"print('owner')\n"}


@factory("project_id")
async def project(owner: Owner) -> str:
    return (await owner.post("/v1/projects", json={"name": "owner-project"}))["project"]["id"]


@factory("workspace_id")
async def workspace(owner: Owner) -> str:
    project_id = await owner.id("project_id")
    return (await owner.post(f"/v1/projects/{project_id}/workspaces", json={"name": "laptop"}))["workspace"]["id"]


@factory("hash")
async def blob(owner: Owner) -> str:
    content = b"the owner's blob\n"
    digest = hashlib.sha256(content).hexdigest()
    await owner.put(f"/v1/blobs/upload/{digest}", content=content)
    return digest


async def upload_tree(owner: Owner, files: dict[str, bytes]) -> str:
    """Upload every blob and manifest of a tree of `files`; its root manifest's hash."""
    records = []
    for path, content in files.items():
        digest = hashlib.sha256(content).hexdigest()
        await owner.put(f"/v1/blobs/upload/{digest}", content=content)
        records.append((path, digest, len(content), MODE_FILE))
    built = build_manifests(records)
    for digest, data in built.manifests.items():
        await owner.put(f"/v1/blobs/manifests/{digest}", content=data)
    return built.root


@factory("manifest_hash")
async def manifest(owner: Owner) -> str:
    """The root manifest of a small tree, every blob and manifest uploaded."""
    return await upload_tree(owner, FILES)


@factory("/manifests/{hash}")
async def manifest_by_hash(owner: Owner) -> str:
    return await owner.id("manifest_hash")


@factory("snapshot_id")
async def snapshot(owner: Owner) -> str:
    project_id, workspace_id = await owner.id("project_id"), await owner.id("workspace_id")
    body = {"manifest_hash": await owner.id("manifest_hash"), "workspace_id": workspace_id}
    return (await owner.post(f"/v1/projects/{project_id}/snapshots", json=body))["snapshot"]["id"]


@factory("conversation_id")
async def conversation(owner: Owner) -> str:
    workspace_id = await owner.id("workspace_id")
    return (await owner.post("/v1/conversations", json={"workspace_id": workspace_id}))["conversation"]["id"]


@factory("key")
async def env_var(owner: Owner) -> str:
    project_id = await owner.id("project_id")
    await owner.post(f"/v1/projects/{project_id}/env-vars", json={"key": "OWNER_SETTING", "value": "42"})
    return "OWNER_SETTING"


@factory("provider")
async def api_key(owner: Owner) -> str:
    await owner.post("/v1/auth/api-keys", json={"provider": "openai", "key_value": "sk-owner-0123456789abcdef"})
    return "openai"


@factory("token_id")
async def session(owner: Owner) -> str:
    """Another session of the owner's, signed in with the device flow and approved with their token."""
    started = (await owner.api.post("/v1/oauth/device", json={"client_name": "owner's other machine"})).json()
    await owner.post("/v1/oauth/device/authorize", json={"user_code": started["user_code"]})
    grant = await owner.api.post("/v1/oauth/token", json={"grant_type": GRANT_TYPE, "device_code": started["device_code"]})
    token = grant.json()["access_token"]
    me = await owner.api.get("/v1/auth/tokens", headers={"Authorization": f"Bearer {token}"})
    return next(item["id"] for item in me.json()["tokens"] if item["current"])


# --------------------------------------------------------------------------------------------------
# Bodies and queries the schema alone cannot give.


async def _docs_query(owner: Owner) -> dict[str, str]:
    return {"workspace": await owner.id("workspace_id"), "path": "README.md"}


QUERIES["GET /v1/projects/{project_id}/docs/content"] = _docs_query


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


@factory("item_id")
async def action_item(owner: Owner) -> str:
    """A finding in the owner's workspace: its snapshot has `src/app.py` and no test naming it."""
    await owner.id("snapshot_id")
    listed = (await owner.get("/v1/action-items"))["items"]
    return next(item["id"] for item in listed if item["action_type"] == "run")


@factory("run_id")
async def action_item_run(owner: Owner) -> str:
    """A run of that finding (with the tests' builtin engine it ends `model_not_configured`)."""
    return (await owner.post(f"/v1/action-items/{await owner.id('item_id')}/runs"))["run"]["id"]


@factory("deployment_id")
async def deployment(owner: Owner) -> str:
    """A deployment of the owner's project with the runtime's own provider (whatever its outcome)."""
    await owner.id("snapshot_id")
    await can_deploy(owner)
    return (await owner.post(f"/v1/infrastructure/projects/{await owner.id('project_id')}/deploy", json={}))["deployment_id"]


async def can_deploy(owner: Owner) -> None:
    """The Worker deploys to the owner's Cloudflare account (the matrix's loopback Cloudflare): their
    token saved first. The local runtime deploys with its own provider, which needs none."""
    if is_edge():
        await deploy_credential(owner)


WORKER_FILES = {
    "wrangler.toml": b'name = "w"\ncompatibility_date = "2025-01-01"\n[assets]\ndirectory = "./public"\n'
                     b'[[d1_databases]]\nbinding = "DB"\ndatabase_name = "main"\ndatabase_id = "x"\n',
    "public/index.html": b"<h1>owner's worker</h1>",
}


@factory("resource_id")
async def deployed_resource(owner: Owner) -> str:
    """The D1 database a deploy of a Worker project provisions (locally, a SQLite file)."""
    project_id, workspace_id = await owner.id("project_id"), await owner.id("workspace_id")
    root = await upload_tree(owner, WORKER_FILES)
    await owner.post(f"/v1/projects/{project_id}/snapshots", json={"manifest_hash": root, "workspace_id": workspace_id})
    await can_deploy(owner)
    await owner.post(f"/v1/infrastructure/projects/{project_id}/deploy", json={})
    return (await owner.get(f"/v1/infrastructure/projects/{project_id}/resources"))["resources"][0]["id"]


@factory("/credentials/{provider}")
async def deploy_credential(owner: Owner) -> str:
    """A Cloudflare credential, verified by the matrix's loopback Cloudflare."""
    from tests.api.cloudflare_standin import ACCOUNT, TOKEN

    await owner.post("/v1/infrastructure/credentials",
                     json={"provider": "cloudflare", "api_token": TOKEN, "metadata": {"account_id": ACCOUNT}})
    return "cloudflare"


# Where the matrix's webhook endpoint points: loopback locally (the matrix's settings allow it); on
# edge, where the Worker refuses loopback, a public name the harness resolves (the matrix registers
# it) where nothing answers. Either way a delivery is attempted and logged as failed.
WEBHOOK_HOST = "nobody-listens.example"


def webhook_url() -> str:
    return f"https://{WEBHOOK_HOST}/hook" if is_edge() else "http://127.0.0.1:9/hook"


@factory("webhook_id")
async def webhook_endpoint(owner: Owner) -> str:
    """An integration webhook endpoint where nothing listens."""
    created = await owner.post("/v1/integrations/webhooks", json={"url": webhook_url(), "events": ["*"]})
    return created["webhook"]["id"]


@factory("delivery_id")
async def webhook_delivery(owner: Owner) -> str:
    """The logged attempt of a test delivery to that endpoint (refused: nothing listens there)."""
    webhook_id = await owner.id("webhook_id")
    await owner.post(f"/v1/integrations/webhooks/{webhook_id}/test")
    return (await owner.get(f"/v1/integrations/webhooks/{webhook_id}/deliveries"))["deliveries"][0]["id"]


@factory("next_step_id")
async def next_step(owner: Owner) -> str:
    """A rules-made next step of the owner's project (no Atlas index yet: "index the project's Atlas")."""
    await owner.id("snapshot_id")
    generated = await owner.post(f"/v1/projects/{await owner.id('project_id')}/next-steps/generate")
    return generated["next_steps"][0]["id"]
