"""The OpenID Connect protocol for admin sign-in: the authorization code flow with PKCE, `state`
and `nonce` (Authlib's OAuth 2 client), and the ID token checked against the provider's keys
(signature, issuer, audience, expiry, nonce, auth_time: Authlib's CodeIDToken over joserfc).

Who may be an admin, and what a sign-in does to the admin records: app/services/admins/sso.py.
The flow's secrets (state, nonce, PKCE verifier) live in the server-side session row; only
`state` travels, as the standard parameter (docs/architecture.md, "Admin sign-in with SSO").
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import urllib3

from app.errors import PortalError
from app.i18n import _
from app.security.secretbox import SecretBox, SecretBoxError
from app.services.portal import Portal

if TYPE_CHECKING:
    from joserfc.jwk import KeySet

# Authlib and joserfc are imported by the functions that use them: ~10 MiB that `serve` without
# SSO never needs (issue: serve's peak memory at 5,000 users under 130 MiB).

log = logging.getLogger("iam_onboard.oidc")

SIGN_IN = "sign_in"
STEP_UP = "step_up"
# A flow not finished in this time is refused (the provider's login page left open).
FLOW_SECONDS = 10 * 60
# Clock skew allowed between the provider and us, for exp, iat and auth_time.
LEEWAY_SECONDS = 60
# The discovery document is read again after this long; keys are read again on an unknown kid.
METADATA_SECONDS = 3600
# urllib3 (already there for boto3) carries the three calls: discovery, keys, the code exchange.
_HTTP = urllib3.PoolManager(
    timeout=urllib3.Timeout(connect=5.0, read=10.0), retries=False, maxsize=4
)
# Asymmetric signatures only: HS256 would make the client secret a signing key, and "none" is
# no signature at all.
_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")


class OidcRefused(PortalError):
    """A sign-in or step-up through the provider that is not accepted.

    `message` is for the person; `reason` (never a token) is for the audit log.
    """

    status = 403
    code = "oidc_refused"

    def __init__(self, message: str, *, reason: str, subject: str | None = None):
        super().__init__(message)
        self.reason = reason
        self.subject = subject


class OidcUnavailable(PortalError):
    status = 502
    code = "oidc_unavailable"


@dataclass(frozen=True)
class Identity:
    """Who the provider says signed in, from a checked ID token."""

    issuer: str
    subject: str
    email: str
    email_verified: bool
    groups: tuple[str, ...]
    auth_time: int | None


@dataclass
class _ProviderCache:
    metadata: dict[str, Any] | None = None
    metadata_at: float = 0.0
    keys: KeySet | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


_CACHES: dict[str, _ProviderCache] = {}
_CACHES_LOCK = threading.Lock()


def _cache(issuer: str) -> _ProviderCache:
    with _CACHES_LOCK:
        return _CACHES.setdefault(issuer, _ProviderCache())


def _issuer(portal: Portal) -> str:
    issuer = portal.settings.oidc_issuer
    if not issuer:
        raise OidcUnavailable(_("Sign-in with an identity provider is not set up."))
    return issuer


def _json(response: urllib3.BaseHTTPResponse) -> Any:
    return json.loads(response.data.decode("utf-8"))


def _get_json(url: str) -> dict[str, Any]:
    try:
        response = _HTTP.request("GET", url, headers={"Accept": "application/json"}, redirect=False)
        if response.status != 200:
            raise ValueError(f"HTTP {response.status}")
        document = _json(response)
    except (urllib3.exceptions.HTTPError, ValueError) as exc:
        log.warning("the identity provider did not answer at %s: %s", url, exc)
        raise OidcUnavailable(
            _("The identity provider cannot be reached just now. Try again in a minute.")
        ) from exc
    if not isinstance(document, dict):
        raise OidcUnavailable(_("The identity provider answered with something unexpected."))
    return document


def metadata(portal: Portal) -> dict[str, Any]:
    """The provider's discovery document, cached for an hour."""
    issuer = _issuer(portal)
    cache = _cache(issuer)
    with cache.lock:
        if cache.metadata is None or time.monotonic() - cache.metadata_at > METADATA_SECONDS:
            document = _get_json(f"{issuer}/.well-known/openid-configuration")
            # OpenID Connect Discovery 1.0, 4.3: the issuer in the document must be the one
            # asked for exactly, or another provider could pose as ours.
            if document.get("issuer") != issuer:
                raise OidcUnavailable(
                    _("The identity provider's discovery document names another issuer.")
                )
            cache.metadata = document
            cache.metadata_at = time.monotonic()
        return cache.metadata


def _keys(portal: Portal, *, refresh: bool) -> KeySet:
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    issuer = _issuer(portal)
    jwks_uri = str(metadata(portal).get("jwks_uri", ""))
    cache = _cache(issuer)
    with cache.lock:
        if cache.keys is None or refresh:
            try:
                cache.keys = KeySet.import_key_set(_get_json(jwks_uri))  # type: ignore[arg-type]
            except (ValueError, JoseError) as exc:
                raise OidcUnavailable(_("The identity provider's keys cannot be read.")) from exc
        return cache.keys


def signing_keys(portal: Portal) -> KeySet:
    """The provider's current keys, read now (for `iam-onboard doctor`)."""
    return _keys(portal, refresh=True)


def _flow_box(portal: Portal) -> SecretBox:
    return portal.secret_box("oidc-flow")


def _redirect_uri(portal: Portal) -> str:
    return portal.link("/admin/oidc/callback")


def _exchange(portal: Portal, code: str, verifier: str) -> dict[str, Any]:
    """The token request of the code flow (RFC 6749 4.1.3, RFC 7636 4.5), client_secret_basic."""
    from authlib.oauth2.auth import ClientAuth
    from authlib.oauth2.rfc6749.parameters import prepare_token_request

    settings = portal.settings
    body = prepare_token_request(
        "authorization_code", redirect_uri=_redirect_uri(portal), code=code, code_verifier=verifier
    )
    auth = ClientAuth(settings.oidc_client_id, settings.oidc_client_secret, "client_secret_basic")
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    url, headers, body = auth.prepare("POST", metadata(portal)["token_endpoint"], headers, body)
    response = _HTTP.request("POST", url, body=body, headers=headers, redirect=False)
    answer = _json(response)
    if response.status != 200 or not isinstance(answer, dict):
        error = answer.get("error") if isinstance(answer, dict) else None
        raise ValueError(f"token endpoint answered {response.status} {str(error)[:64]}")
    return answer


def begin(portal: Portal, *, purpose: str, next_path: str) -> tuple[str, dict[str, Any]]:
    """The provider's authorization URL, and the flow to keep in the session until the callback.

    A step-up asks for a fresh login (`prompt=login`, `max_age=0`); the callback checks that
    the token's auth_time is after the flow began.
    """
    from authlib.common.security import generate_token
    from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
    extra: dict[str, Any] = {"nonce": nonce}
    if purpose == STEP_UP:
        extra.update(prompt="login", max_age="0")
    url = prepare_grant_uri(
        metadata(portal)["authorization_endpoint"],
        client_id=portal.settings.oidc_client_id,
        response_type="code",
        redirect_uri=_redirect_uri(portal),
        scope="openid email profile",
        state=state,
        code_challenge=create_s256_code_challenge(verifier),
        code_challenge_method="S256",
        **extra,
    )
    flow = {
        "state": state,
        "nonce": nonce,
        # Sealed like every secret at rest (docs/architecture.md, "Security rules"), bound to
        # this flow's state.
        "verifier": _flow_box(portal).encrypt(verifier, bound_to=state),
        "purpose": purpose,
        "next": next_path,
        "started": int(portal.clock().timestamp()),
    }
    return str(url), flow


def _refused(reason: str, subject: str | None = None) -> OidcRefused:
    return OidcRefused(
        _("The identity provider's answer could not be accepted. Please sign in again."),
        reason=reason,
        subject=subject,
    )


def finish(
    portal: Portal,
    *,
    flow: dict[str, Any] | None,
    state: str,
    code: str,
    error: str = "",
    iss: str = "",
) -> Identity:
    """Check the callback against the kept flow, exchange the code and check the ID token."""
    kept = str(flow.get("state", "")) if flow else ""
    # Bytes: compare_digest refuses str with anything but ASCII, and `state` is the visitor's.
    if flow is None or not kept or not hmac.compare_digest(kept.encode(), state.encode()):
        raise OidcRefused(
            _("This sign-in was already used or has expired. Please start again."),
            reason="state unknown or already used",
        )
    now = int(portal.clock().timestamp())
    started = int(flow.get("started", 0))
    if now - started > FLOW_SECONDS:
        raise OidcRefused(
            _("This sign-in took too long. Please start again."), reason="flow expired"
        )
    if iss and iss != portal.settings.oidc_issuer:
        # RFC 9207: a provider that names itself in the callback must be ours (mix-up attacks).
        raise _refused("another issuer in the callback (iss)")
    if error:
        raise OidcRefused(
            _("The identity provider did not sign you in. Please try again."),
            reason=f"provider answered {error[:64]}",
        )
    if not code:
        raise _refused("no code in the callback")
    try:
        verifier = _flow_box(portal).decrypt(str(flow.get("verifier", "")), bound_to=state)
    except SecretBoxError as exc:
        raise _refused("PKCE verifier unreadable") from exc
    try:
        token = _exchange(portal, code, verifier)
    except (urllib3.exceptions.HTTPError, ValueError) as exc:
        # The message names the HTTP status and OAuth error code only, never the code or a token.
        log.warning("the code exchange with the identity provider failed: %s", exc)
        raise _refused("code exchange failed") from exc
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise _refused("no ID token in the token response")
    step_up = flow.get("purpose") == STEP_UP
    claims = verify_id_token(
        portal,
        id_token,
        nonce=str(flow.get("nonce", "")),
        access_token=token.get("access_token"),
        max_age=0 if step_up else None,
    )
    subject = str(claims["sub"])
    auth_time = claims.get("auth_time")
    if step_up and (not isinstance(auth_time, int) or auth_time < started - LEEWAY_SECONDS):
        # max_age=0 asked for a login now; an older auth_time means the provider reused a
        # session, so nobody proved anything just now.
        raise OidcRefused(
            _("The identity provider did not ask you to sign in again. Please try again."),
            reason="step-up without a fresh login (auth_time)",
            subject=subject,
        )
    groups_claim = claims.get(portal.settings.oidc_groups_claim) or []
    groups = (
        tuple(str(g) for g in groups_claim)
        if isinstance(groups_claim, list)
        else (str(groups_claim),)
    )
    return Identity(
        issuer=str(claims["iss"]),
        subject=subject,
        email=str(claims.get("email") or ""),
        email_verified=claims.get("email_verified") is True,
        groups=groups,
        auth_time=auth_time if isinstance(auth_time, int) else None,
    )


def _key_ids(keys: KeySet) -> set[str]:
    return {str(key.kid) for key in keys.keys if key.kid}


def verify_id_token(
    portal: Portal,
    id_token: str,
    *,
    nonce: str,
    access_token: Any = None,
    max_age: int | None = None,
) -> dict[str, Any]:
    """The ID token's claims once signature, iss, aud, exp, iat, nonce (and at_hash) hold."""
    from authlib.oidc.core import CodeIDToken
    from joserfc import jwt
    from joserfc.errors import (
        ExpiredTokenError,
        InvalidClaimError,
        JoseError,
        MissingClaimError,
    )
    from joserfc.jws import extract_compact

    settings = portal.settings
    try:
        header = extract_compact(id_token.encode("ascii")).protected
    except (JoseError, ValueError, UnicodeError) as exc:
        raise _refused("malformed ID token") from exc
    algorithm = str(header.get("alg", ""))
    if algorithm not in _ALGORITHMS:
        raise _refused(f"ID token signed with {algorithm[:16] or 'nothing'}")
    keys = _keys(portal, refresh=False)
    kid = header.get("kid")
    if kid is not None and str(kid) not in _key_ids(keys):
        # The provider rotated its keys since we read them. The ID token came over the back
        # channel from the token endpoint, so only the provider itself can make us read again.
        keys = _keys(portal, refresh=True)
    try:
        token = jwt.decode(id_token, keys, algorithms=[algorithm])
    except (JoseError, ValueError) as exc:
        raise _refused(f"ID token signature not valid ({type(exc).__name__})") from exc
    claims = CodeIDToken(
        token.claims,
        token.header,
        options={
            "iss": {"essential": True, "value": settings.oidc_issuer or ""},
            "aud": {"essential": True, "value": settings.oidc_client_id or ""},
            "sub": {"essential": True},
        },
        params={
            "nonce": nonce,
            "client_id": settings.oidc_client_id,
            "access_token": access_token,
            "max_age": max_age,
        },
    )
    subject = str(token.claims.get("sub", "")) or None
    try:
        claims.validate(now=int(portal.clock().timestamp()), leeway=LEEWAY_SECONDS)
    except ExpiredTokenError as exc:
        raise _refused("ID token expired", subject) from exc
    except (InvalidClaimError, MissingClaimError) as exc:
        claim = str(getattr(exc, "claim", "") or exc.description or "")[:32]
        raise _refused(f"ID token claim not valid: {claim}", subject) from exc
    except JoseError as exc:
        raise _refused(f"ID token not valid ({exc.error})", subject) from exc
    return dict(claims)
