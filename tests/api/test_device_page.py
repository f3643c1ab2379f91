"""`GET /device` and its forms: accessible HTML, the local owner sign-in (and every place it is
refused), Google's form_post callback, and the same-origin form token on approve/deny.

The `browser` is on the server's own machine: on the local runtime, an in-process client whose peer
is loopback; on `edge`, the client of the Worker on the harness (loopback too, as the Worker sees it
in CF-Connecting-IP), so what the Worker serves is tested by the same tests."""

from __future__ import annotations

import re
from typing import Iterator

import pytest
from fastapi.testclient import TestClient

from fastest.app import create_app
from fastest.config import Settings
from fastest.domain.device_codes import GRANT_TYPE
from fastest.platform import EDGE
from tests.api.google_idp import CLIENT_ID
from tests.conftest import count_rows, run
from tests.edge_runtime import is_edge

LOCAL = ("127.0.0.1", 50000)


@pytest.fixture
def browser(request, platform) -> Iterator[TestClient]:
    """A browser on the server's own machine."""
    if is_edge():
        yield request.getfixturevalue("client")
        return
    with TestClient(create_app(lambda scope: platform), client=LOCAL, base_url="http://127.0.0.1:8787") as c:
        yield c


def start(client) -> dict:
    return client.post("/v1/oauth/device", json={"client_name": "fastest CLI on laptop"}).json()


def run_rows(platform, sql: str) -> list[dict]:
    return run(platform.db.prepare(sql).all()).results


def form_token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_the_entry_page_is_an_accessible_form_with_no_external_resources(browser):
    response = browser.get("/device")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert '<html lang="en">' in html and "<title>" in html
    assert '<label for="user_code">' in html and 'id="user_code"' in html
    assert "<script" not in html and "<link" not in html and "http" not in html.replace("http-equiv", "")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"


def test_local_owner_approves_from_the_page(browser, platform):
    started = start(browser)
    page = browser.get(f"/device?user_code={started['user_code'].lower()}")
    assert page.status_code == 200
    assert started["user_code"] in page.text and "fastest CLI on laptop" in page.text
    assert "owner@localhost" in page.text and "<code>projects:read</code>" in page.text
    assert "secrets:read" not in page.text
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Path=/device" in cookie

    done = browser.post("/device/approve", data={"user_code": started["user_code"], "csrf_token": form_token(page.text)},
                        headers={"Origin": "http://127.0.0.1:8787"})
    assert done.status_code == 200, done.text
    assert "Sign-in approved" in done.text and "owner@localhost" in done.text
    grant = browser.post("/v1/oauth/token", json={"grant_type": GRANT_TYPE, "device_code": started["device_code"]}).json()
    headers = {"Authorization": f"Bearer {grant['access_token']}"}
    assert browser.get("/v1/auth/me", headers=headers).json()["user"]["email"] == "owner@localhost"
    approval = browser.get("/v1/audit", headers=headers).json()["events"][-1]
    assert approval["type"] == "device.approved" and approval["data"]["method"] == "local-owner"
    assert approval["ip"] == "127.0.0.1"


def test_local_owner_can_deny_from_the_page(browser):
    started = start(browser)
    page = browser.get(f"/device?user_code={started['user_code']}")
    done = browser.post("/device/deny", data={"user_code": started["user_code"], "csrf_token": form_token(page.text)})
    assert "Sign-in denied" in done.text
    body = browser.post("/v1/oauth/token", json={"grant_type": GRANT_TYPE, "device_code": started["device_code"]}).json()
    assert body["error"] == "access_denied"


@pytest.mark.parametrize("attack", ["no token", "wrong token", "cross-site origin", "sec-fetch-site"])
def test_forged_form_posts_are_refused(google_browser, platform, clock, idp, attack):
    browser = google_browser
    started, confirm, credential = signed_in_with_google(browser, clock, idp)
    data = {"user_code": started["user_code"], "csrf_token": form_token(confirm.text), "credential": credential}
    headers = {}
    if attack == "no token":
        data.pop("csrf_token")
    elif attack == "wrong token":
        data["csrf_token"] = "x" * 43
    elif attack == "cross-site origin":
        headers["Origin"] = "https://evil.example.com"
    else:
        headers["Sec-Fetch-Site"] = "cross-site"
    response = browser.post("/device/approve", data=data, headers=headers)
    assert response.status_code == 403
    assert "not sent from this page" in response.text
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM device_codes WHERE status = 'pending'") == 1


def _refused(browser, started) -> None:
    page = browser.get(f"/device?user_code={started['user_code']}")
    assert "owner@localhost" not in page.text
    assert 'id="approve"' not in page.text
    token = page.headers.get("set-cookie", "")
    match = re.search(r"fastest_device_form=([^;]+)", token)
    data = {"user_code": started["user_code"], "csrf_token": match.group(1) if match else ""}
    response = browser.post("/device/approve", data=data)
    assert response.status_code == 403 and "Sign in first" in response.text


def test_local_owner_is_refused_when_google_is_configured(browser, platform):
    platform.settings = Settings(google_client_ids=CLIENT_ID)
    started = start(browser)
    page = browser.get(f"/device?user_code={started['user_code']}")
    assert 'id="google-sign-in"' in page.text and "accounts.google.com" in page.text
    _refused(browser, started)


def test_local_owner_is_refused_outside_the_local_environment(browser, platform):
    platform.settings = Settings(environment="production")
    _refused(browser, start(browser))


def test_local_owner_is_refused_on_the_worker_runtime(browser, platform):
    platform.capabilities = EDGE
    _refused(browser, start(browser))


def test_local_owner_is_refused_to_a_browser_on_another_machine(client):
    started = start(client)  # TestClient's peer is "testclient", not loopback
    _refused(client, started)


def test_an_unknown_code_shows_the_form_again_with_an_error(browser):
    page = browser.get("/device?user_code=BBBB-BBBB")
    assert page.status_code == 404
    assert 'role="alert"' in page.text and '<label for="user_code">' in page.text


def google_nonce(html: str) -> str:
    """The `nonce` of the page's "Sign in with Google" link."""
    return re.search(r'id="google-sign-in" href="[^"]*[?&;]nonce=([A-Za-z0-9_-]+)', html).group(1)


def own_form_token(browser: TestClient) -> str:
    """The form token in the browser's cookie: what an attacker's own browser has (the page shows the
    form only once signed in)."""
    return browser.cookies.get("fastest_device_form")


@pytest.fixture
def google_browser(request, platform, idp) -> Iterator[TestClient]:
    """A browser, where Google sign-in is configured (the JWKS on the tests' loopback Google)."""
    platform.settings = Settings(google_client_ids=CLIENT_ID, google_jwks_url=idp.jwks_url)
    if is_edge():
        yield request.getfixturevalue("client")
        return
    with TestClient(create_app(lambda scope: platform), base_url="http://127.0.0.1:8787") as c:
        yield c


def signed_in_with_google(browser, clock, idp) -> tuple[dict, object, str]:
    """A code started, its page opened and Google's form_post answered: (the code, the confirm page
    with the approve form, the ID token)."""
    started = start(browser)
    nonce = google_nonce(browser.get(f"/device?user_code={started['user_code']}").text)
    credential = idp.token(idp.claims(clock.now().timestamp(), nonce=nonce))
    confirm = browser.post("/device/google", data={"id_token": credential, "state": started["user_code"]})
    assert confirm.status_code == 200, confirm.text
    return started, confirm, credential


def test_google_form_post_callback_then_approve(google_browser, platform, clock, idp):
    browser = google_browser
    started = start(browser)
    page = browser.get(f"/device?user_code={started['user_code']}")
    nonce = google_nonce(page.text)
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM device_google_nonces") == 1
    assert nonce not in str(run_rows(platform, "SELECT * FROM device_google_nonces"))  # stored as a hash only
    credential = idp.token(idp.claims(clock.now().timestamp(), nonce=nonce))
    confirm = browser.post("/device/google", data={"id_token": credential, "state": started["user_code"]})
    assert confirm.status_code == 200, confirm.text
    assert "grace@example.com" in confirm.text and 'id="approve"' in confirm.text
    done = browser.post("/device/approve", data={
        "user_code": started["user_code"], "csrf_token": form_token(confirm.text), "credential": credential})
    assert "Sign-in approved" in done.text and "grace@example.com" in done.text
    grant = browser.post("/v1/oauth/token", json={"grant_type": GRANT_TYPE, "device_code": started["device_code"]})
    assert grant.json()["user"]["email"] == "grace@example.com"
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM device_google_nonces") == 0  # spent

    bad = browser.post("/device/google", data={"id_token": "not.a.token", "state": started["user_code"]})
    assert bad.status_code == 401 and "not valid" in bad.text


@pytest.mark.parametrize("minted_for", ["no nonce", "a nonce we never sent", "another code's page"])
def test_google_callback_refuses_a_token_minted_for_another_request(google_browser, platform, clock, idp, minted_for):
    browser = google_browser
    started = start(browser)
    page = browser.get(f"/device?user_code={started['user_code']}")
    google_nonce(page.text)  # this page's nonce exists, but the token below does not carry it
    if minted_for == "no nonce":
        nonce = None
    elif minted_for == "a nonce we never sent":
        nonce = "N" * 32
    else:
        other = start(browser)
        nonce = google_nonce(browser.get(f"/device?user_code={other['user_code']}").text)
    credential = idp.token(idp.claims(clock.now().timestamp(), nonce=nonce))
    confirm = browser.post("/device/google", data={"id_token": credential, "state": started["user_code"]})
    assert confirm.status_code == 401, confirm.text
    assert "not started from this page" in confirm.text and 'id="approve"' not in confirm.text

    # Posting the token straight to approve (with a valid form token of one's own) is refused too.
    done = browser.post("/device/approve", data={
        "user_code": started["user_code"], "csrf_token": own_form_token(browser), "credential": credential})
    assert done.status_code == 401 and "not started from this page" in done.text
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM device_codes WHERE status = 'pending'") >= 1
    answer = browser.post("/v1/oauth/token", json={"grant_type": GRANT_TYPE, "device_code": started["device_code"]})
    assert answer.json()["error"] == "authorization_pending"


def test_a_google_token_cannot_approve_twice(google_browser, platform, clock, idp):
    """The approval spends the nonce: the same ID token, replayed for another code, is refused."""
    browser = google_browser
    first = start(browser)
    nonce = google_nonce(browser.get(f"/device?user_code={first['user_code']}").text)
    credential = idp.token(idp.claims(clock.now().timestamp(), nonce=nonce))
    confirm = browser.post("/device/google", data={"id_token": credential, "state": first["user_code"]})
    done = browser.post("/device/approve", data={
        "user_code": first["user_code"], "csrf_token": form_token(confirm.text), "credential": credential})
    assert "Sign-in approved" in done.text

    second = start(browser)
    for route, state in (("/device/google", second["user_code"]), ("/device/google", first["user_code"])):
        assert browser.post(route, data={"id_token": credential, "state": state}).status_code == 401
    browser.get(f"/device?user_code={second['user_code']}")
    replay = browser.post("/device/approve", data={
        "user_code": second["user_code"], "csrf_token": own_form_token(browser), "credential": credential})
    assert replay.status_code == 401
    answer = browser.post("/v1/oauth/token", json={"grant_type": GRANT_TYPE, "device_code": second["device_code"]})
    assert answer.json()["error"] == "authorization_pending"


def test_an_expired_nonce_is_refused(google_browser, platform, clock, idp):
    browser = google_browser
    started = start(browser)
    nonce = google_nonce(browser.get(f"/device?user_code={started['user_code']}").text)
    clock.advance(platform.settings.device_code_ttl_seconds + 1)
    credential = idp.token(idp.claims(clock.now().timestamp(), nonce=nonce))
    confirm = browser.post("/device/google", data={"id_token": credential, "state": started["user_code"]})
    assert confirm.status_code == 401


def test_device_authorize_accepts_a_google_credential(google_browser, clock, idp):
    api = google_browser
    started = start(api)
    credential = idp.token(idp.claims(clock.now().timestamp()))
    response = api.post("/v1/oauth/device/authorize", json={"user_code": started["user_code"], "credential": credential})
    assert response.status_code == 200, response.text
    bad = api.post("/v1/oauth/device/authorize", json={"user_code": started["user_code"], "credential": "x.y.z"})
    assert bad.status_code == 401
