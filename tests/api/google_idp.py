"""A stand-in for Google's identity platform, made by the tests: RSA keys, ID tokens signed with
them, and the JWKS served by a real HTTP server on loopback (a thread), counting its fetches."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.loopback import LoopbackServer, QuietHandler

CLIENT_ID = "test-client.apps.googleusercontent.com"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))


class FakeGoogle(LoopbackServer):
    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.published: list[str] = []  # kids in the JWKS
        self.cache_control = "public, max-age=3600"
        self.fetches = 0
        self.minted: list[str] = []  # ID tokens the authorize page posted, oldest first
        self.replay: str | None = None  # post this token instead of minting one (an attack)
        super().__init__(self._handler())
        self.add_key("key-1")

    # -- keys and the JWKS ------------------------------------------------------------------------

    def add_key(self, kid: str, *, publish: bool = True) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if publish:
            self.published.append(kid)

    def jwk(self, kid: str) -> dict[str, str]:
        numbers = self.keys[kid].public_key().public_numbers()
        n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
        e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
        return {"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": b64url(n), "e": b64url(e)}

    def public_pem(self, kid: str = "key-1") -> bytes:
        return self.keys[kid].public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        idp = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802
                if self.path.startswith("/o/oauth2/v2/auth?"):
                    self._authorize()
                    return
                if self.path != "/oauth2/v3/certs":
                    self.send_error(404)
                    return
                idp.fetches += 1
                body = json.dumps({"keys": [idp.jwk(k) for k in idp.published]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", idp.cache_control)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _authorize(self) -> None:
                """Google's OpenID Connect authorization endpoint with `response_mode=form_post`,
                the person already signed in: a page that posts `id_token` (carrying the request's
                `nonce`) and `state` to `redirect_uri` by itself."""
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                if query.get("response_type") != "id_token" or query.get("response_mode") != "form_post":
                    self.send_error(400)
                    return
                token = idp.replay or idp.token(idp.claims(aud=query["client_id"], nonce=query.get("nonce")))
                idp.minted.append(token)
                body = (
                    '<!doctype html><html><head><title>Google</title></head><body>'
                    f'<form id="f" method="post" action="{html.escape(query["redirect_uri"])}">'
                    f'<input type="hidden" name="id_token" value="{html.escape(token)}">'
                    f'<input type="hidden" name="state" value="{html.escape(query.get("state", ""))}">'
                    '</form><script>document.getElementById("f").submit()</script></body></html>'
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    @property
    def authorize_url(self) -> str:
        """On `localhost`, so that to a page on 127.0.0.1 it is another site, as Google is."""
        return f"http://localhost:{self.server.server_address[1]}/o/oauth2/v2/auth"

    @property
    def jwks_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/oauth2/v3/certs"

    # -- ID tokens --------------------------------------------------------------------------------

    def claims(self, now: float | None = None, **overrides: Any) -> dict[str, Any]:
        now = time.time() if now is None else now
        claims = {
            "iss": "https://accounts.google.com",
            "aud": CLIENT_ID,
            "sub": "1234567890",
            "email": "grace@example.com",
            "email_verified": True,
            "name": "Grace Hopper",
            "picture": "https://example.com/grace.png",
            "iat": int(now),
            "exp": int(now) + 3600,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, claims: dict[str, Any], *, kid: str = "key-1", header: dict[str, Any] | None = None) -> str:
        head = {"alg": "RS256", "kid": kid, "typ": "JWT", **(header or {})}
        signing_input = f"{b64url_json(head)}.{b64url_json(claims)}".encode("ascii")
        signature = self.keys[kid].sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input.decode()}.{b64url(signature)}"

    def hs256_with_public_key(self, claims: dict[str, Any], kid: str = "key-1") -> str:
        """The classic confusion attack: HMAC-SHA256 keyed with the RSA public key."""
        head = {"alg": "HS256", "kid": kid, "typ": "JWT"}
        signing_input = f"{b64url_json(head)}.{b64url_json(claims)}".encode("ascii")
        mac = hmac.new(self.public_pem(kid), signing_input, hashlib.sha256).digest()
        return f"{signing_input.decode()}.{b64url(mac)}"

    def unsigned(self, claims: dict[str, Any]) -> str:
        return f"{b64url_json({'alg': 'none', 'typ': 'JWT'})}.{b64url_json(claims)}."
