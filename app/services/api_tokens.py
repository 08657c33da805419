"""API tokens for automation (HR systems, CI): shown once, stored only as a SHA-256 hash."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from app.errors import Conflict, ValidationError
from app.i18n import _
from app.security.tokens import hash_token, new_token, token_matches
from app.services import audit
from app.services.portal import CLI_ACTOR, Actor, Portal
from app.store.models import ApiToken

# A recognisable prefix lets secret scanners (and people) tell what a leaked string is.
TOKEN_PREFIX = "iob_"  # noqa: S105 (a label, not a secret)
MAX_NAME = 128
# Writing last_used_at on every API call would turn each read into a write.
_TOUCH_EVERY = timedelta(seconds=60)

# What each scope opens (the API routes name the scope they need).
SCOPES = {
    "users:read": "GET /api/v1/users, GET /api/v1/users/{name}",
    "invitations:write": "POST /api/v1/invitations",
    "users:lifecycle": "POST /api/v1/users/{name}/resend, /revoke, /reset-mfa",
    "users:adopt": "POST /api/v1/users/{name}/send-link (brings an existing user under the portal)",
    "users:delete": "DELETE /api/v1/users/{name}, and revoke with delete_user",
}
# A new token reads and invites; anything that hands someone a way into an existing user
# (a link for it, a reset, a delete) must be asked for by name.
DEFAULT_SCOPES = ("users:read", "invitations:write")


def check_scopes(scopes: list[str] | tuple[str, ...]) -> list[str]:
    """The scopes in a stable order, or a ValidationError naming the unknown one."""
    for scope in scopes:
        if scope not in SCOPES:
            raise ValidationError(
                _("Unknown scope {scope}; choose from {choices}.").format(
                    scope=scope, choices=", ".join(SCOPES)
                ),
                field="scope",
            )
    return [s for s in SCOPES if s in scopes]


def create_api_token(
    portal: Portal,
    *,
    name: str,
    scopes: list[str] | tuple[str, ...] = DEFAULT_SCOPES,
    actor: Actor = CLI_ACTOR,
) -> str:
    """Create a token named `name` and return it; this is the only time it is ever shown."""
    granted = check_scopes(scopes)
    name = name.strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise ValidationError(
            _("Give the token a name of 1 to {limit} printable characters.").format(limit=MAX_NAME),
            field="name",
        )
    raw = TOKEN_PREFIX + new_token()
    with portal.db.session() as session:
        # One live token per name, so `api:<name>` in the audit log points at one caller.
        taken = session.scalars(
            select(ApiToken.id).where(ApiToken.name == name).where(ApiToken.revoked_at.is_(None))
        ).first()
        if taken is not None:
            raise Conflict(
                _("An API token named {name} already exists. Choose another name.").format(
                    name=name
                )
            )
        session.add(
            ApiToken(
                name=name, token_hash=hash_token(raw), scopes=granted, created_at=portal.clock()
            )
        )
    audit.record(
        portal,
        actor=actor,
        action="api_token.create",
        detail=f"name={name}; scopes={' '.join(granted)}",
    )
    return raw


def authenticate(portal: Portal, raw: str | None) -> ApiToken | None:
    """The live token behind a presented bearer value, or None."""
    if not raw or len(raw) > 200:
        return None
    # Looked up by the SHA-256 of what was presented: the lookup reveals nothing about
    # stored tokens, and the final comparison is constant-time.
    digest = hash_token(raw)
    now = portal.clock()
    with portal.db.session() as session:
        row = session.scalars(select(ApiToken).where(ApiToken.token_hash == digest)).first()
        if row is None or row.revoked_at is not None or not token_matches(raw, row.token_hash):
            return None
        if row.last_used_at is None or now - row.last_used_at >= _TOUCH_EVERY:
            session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
        return row


def list_api_tokens(portal: Portal) -> list[ApiToken]:
    with portal.db.session() as session:
        return list(session.scalars(select(ApiToken).order_by(ApiToken.created_at)))
