"""A real JWT issuer on loopback for the federation tests: discovery, JWKS, RS256 tokens.

It serves ``/.well-known/openid-configuration`` (or, with ``discovery_path``, the seeds'
``/.well-known/oidc-configuration`` only) and ``/.well-known/jwks.json`` over HTTP on
127.0.0.1, and mints whatever a test asks for in-process, so tests can also make expired,
wrong-audience or wrongly signed tokens. ``rotate()`` starts signing with a new key and keeps
publishing the old one, as a real key rollover does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.slow_answers import http_answer, send_slowly

OPENID_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/.well-known/jwks.json"


def new_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": uuid.uuid4().hex, "alg": "RS256"})


class JwtIssuer:
    """``JwtIssuer().start()``; ``mint(sub=..., aud=...)``; ``rotate()``; ``stop()``."""

    def __init__(self, *, discovery_path: str = OPENID_PATH) -> None:
        self.discovery_path = discovery_path
        self.keys: list[RSAKey] = [new_key()]
        self.rogue = new_key()  # never published
        self.port = 0
        self.requests: list[str] = []
        #: Canned answers by path, overriding the real ones: ``(status, body bytes)``.
        self.overrides: dict[str, tuple[int, bytes]] = {}
        #: Paths whose canned answer is sent a byte at a time (status line and headers too), this
        #: many seconds apart.
        self.dripping: dict[str, float] = {}
        self._server: ThreadingHTTPServer | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def signing_key(self) -> RSAKey:
        return self.keys[0]

    def rotate(self) -> str:
        """Sign with a new key from now on; the old one stays in the JWKS."""
        self.keys.insert(0, new_key())
        return self.signing_key.kid  # type: ignore[return-value]

    def retire_old_keys(self) -> None:
        """Publish only the current signing key."""
        del self.keys[1:]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.as_dict(private=False) for key in self.keys]}

    def claims(self, ttl: int = 300, **claims: Any) -> dict[str, Any]:
        now = int(time.time())
        base = {"iss": self.issuer, "iat": now, "nbf": now, "exp": now + ttl}
        base["jti"] = uuid.uuid4().hex
        return {**base, **claims}

    def mint(
        self,
        *,
        ttl: int = 300,
        header: dict[str, Any] | None = None,
        key: RSAKey | None = None,
        **claims: Any,
    ) -> str:
        """A signed JWT; ``key`` (default: the signing key) and header fields override."""
        key = key or self.signing_key
        hdr = {"alg": "RS256", "typ": "JWT", "kid": key.kid, **(header or {})}
        return jwt.encode(hdr, self.claims(ttl, **claims), key)

    def mint_hs256_with_public_key(self, **claims: Any) -> str:
        """The algorithm-confusion attack: HS256 keyed with the issuer's public RSA key."""
        # Made by hand: joserfc itself refuses to use a public key as an HMAC secret.
        public_pem = self.signing_key.as_pem(private=False)
        hdr = {"alg": "HS256", "typ": "JWT", "kid": self.signing_key.kid}
        signing_input = f"{_part(hdr)}.{_part(self.claims(**claims))}"
        mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(mac)}"

    def mint_by_hand(self, header: dict[str, Any], **claims: Any) -> str:
        """RS256 over any header, even one joserfc would refuse to write (``crit`` ...)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        hdr = {"alg": "RS256", "typ": "JWT", "kid": self.signing_key.kid, **header}
        signing_input = f"{_part(hdr)}.{_part(self.claims(**claims))}"
        private = self.signing_key.private_key
        signature = private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"

    def start(self) -> JwtIssuer:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                """A canned answer (``overrides``) to a POST, such as a token endpoint's; the
                request's body is read and dropped."""
                issuer.requests.append(f"POST {self.path}")
                self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.path in issuer.overrides:
                    self._canned()
                else:
                    self._json(404, {"error": "not_found"})

            def _canned(self) -> None:
                status, data = issuer.overrides[self.path]
                interval = issuer.dripping.get(self.path)
                if interval is None:
                    self.send_response(status)
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                # A byte at a time from the status line on: headers as slow as the body.
                send_slowly(self.wfile, http_answer(status, data), interval)

            def do_GET(self) -> None:
                issuer.requests.append(self.path)
                if self.path in issuer.overrides:
                    self._canned()
                elif self.path == issuer.discovery_path:
                    self._json(
                        200,
                        {
                            "issuer": issuer.issuer,
                            "jwks_uri": issuer.issuer + JWKS_PATH,
                            "id_token_signing_alg_values_supported": ["RS256"],
                            "subject_types_supported": ["public"],
                            "response_types_supported": ["id_token"],
                        },
                    )
                elif self.path == JWKS_PATH:
                    self._json(200, issuer.jwks())
                else:
                    self._json(404, {"error": "not_found"})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _part(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def unsigned(claims: dict[str, Any]) -> str:
    """An ``alg: none`` JWT (RFC 7519 §6): header.claims with an empty signature."""
    return f"{_part({'alg': 'none', 'typ': 'JWT'})}.{_part(claims)}."
