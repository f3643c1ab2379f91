"""Where the deployment tests deploy: the runtime's own provider.

On the local runtime that is its `local` provider (no credential; the local server serves the sites).
The Worker has no provider of its own: it deploys to the user's Cloudflare account, so on `edge` the
tests deploy with Cloudflare's REST API — its loopback stand-in (tests/api/cloudflare_standin.py),
which judges every request by Cloudflare's rules — with each caller's token saved the documented way
(POST /v1/infrastructure/credentials) before they deploy.

`serves(url, path)` is what the deployment's address serves at `path`: locally, what the local
server answers for that host; on Cloudflare, the asset the script's live version holds for it.
`holds(resource)` says whether the provider still has a resource it provisioned.

A test module that deploys imports the `alice` and `bob` fixtures below: the usual callers, able to
deploy (`deploy_target`, the fixture, is in tests/api/conftest.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from fastest.api.deploy_sites import DeploymentSites
from fastest.app import create_app
from tests.api.cloudflare_standin import ACCOUNT, SUBDOMAIN, TOKEN, CloudflareStandIn


class DeployTarget:
    def __init__(self, platform: Any, client: Any, cloudflare: CloudflareStandIn | None) -> None:
        self.platform, self.client, self.cloudflare = platform, client, cloudflare
        self.provider = "cloudflare" if cloudflare is not None else "local"
        self._sites: TestClient | None = None
        if cloudflare is not None:
            platform.settings = dataclasses.replace(platform.settings, cloudflare_api_base=cloudflare.base)

    def ready(self, caller: Any) -> Any:
        """The caller, able to deploy (on Cloudflare: their API token saved and verified)."""
        if self.cloudflare is not None:
            saved = self.client.post("/v1/infrastructure/credentials", headers=caller.headers,
                                     json={"provider": "cloudflare", "api_token": TOKEN, "metadata": {"account_id": ACCOUNT}})
            assert saved.status_code == 200, saved.text
        return caller

    def site_url(self, deployment: dict[str, Any], project: dict[str, Any]) -> str:
        """The address a ready deployment of `project` answers on."""
        if self.cloudflare is not None:
            return f"https://{self.script(project)}.{SUBDOMAIN}.workers.dev/"
        return f"http://{deployment['id'].lower().replace('_', '-')}.localhost:8787/"

    @staticmethod
    def script(project: dict[str, Any]) -> str:
        """The Worker a project deploys as on Cloudflare: its name's slug and its id's tail."""
        return f"{project['name'].lower().replace(' ', '-')}-{project['id'][-8:].lower()}"

    def serves(self, url: str, path: str = "/") -> bytes | None:
        """What the address `url` serves at `path` (None: nothing, a 404)."""
        host = urlsplit(url).netloc
        if self.cloudflare is None:
            answer = self.sites.get(path, headers={"host": host})
            return answer.content if answer.status_code == 200 else None
        cf, script = self.cloudflare, host.split(".", 1)[0]
        if script not in cf.live:
            return None
        version = next(v for v in cf.scripts[script] if v["id"] == cf.live[script])
        assets = version["assets"] or {}
        entry = assets.get(path if not path.endswith("/") else path + "index.html")
        return cf.assets[entry["hash"]] if entry else None

    def holds(self, resource: dict[str, Any]) -> bool:
        """Whether the provider still has this provisioned resource (locally, a SQLite file)."""
        if self.cloudflare is None:
            root = self.platform.deploy_providers["local"].root
            return (root / "resources" / f"{resource['external_id']}.sqlite").exists()
        return resource["external_id"] in self.cloudflare.resources

    @property
    def sites(self) -> TestClient:
        if self._sites is None:
            platform = self.platform
            self._sites = TestClient(DeploymentSites(create_app(lambda scope: platform), lambda scope: platform),
                                     raise_server_exceptions=False)
        return self._sites


@pytest.fixture
def alice(alice: Any, deploy_target: DeployTarget) -> Any:
    return deploy_target.ready(alice)


@pytest.fixture
def bob(bob: Any, deploy_target: DeployTarget) -> Any:
    return deploy_target.ready(bob)
