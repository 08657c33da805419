"""The commands for admins and API clients: `create-admin`, `unlock-admin`, `create-api-token`."""

from __future__ import annotations

import argparse

from app.config import load_settings
from app.i18n import _
from app.services.portal import CLI_ACTOR, build_portal


def cmd_create_admin(args: argparse.Namespace) -> int:
    from app.services.admins import create_admin

    setup = create_admin(build_portal(load_settings()), email=args.email, actor=CLI_ACTOR)
    print(
        _(
            "Admin {email}: open this link before {when} UTC to choose a password and set up "
            "a code app. It works once and is shown only now:"
        ).format(email=setup.email, when=f"{setup.expires_at:%Y-%m-%d %H:%M}")
    )
    print(setup.link)
    return 0


def cmd_unlock_admin(args: argparse.Namespace) -> int:
    from app.services.admins import unlock_admin

    info = unlock_admin(build_portal(load_settings()), email=args.email, actor=CLI_ACTOR)
    print(
        _("Admin {email} can sign in again; the failed attempts were forgotten.").format(
            email=info.email
        )
    )
    return 0


def cmd_create_api_token(args: argparse.Namespace) -> int:
    from app.services.api_tokens import DEFAULT_SCOPES, check_scopes, create_api_token

    scopes = check_scopes(args.scope or DEFAULT_SCOPES)
    token = create_api_token(
        build_portal(load_settings()), name=args.name, scopes=scopes, actor=CLI_ACTOR
    )
    print(
        _(
            "API token {name} created with the scopes {scopes}. Send it as {header}; it is "
            "stored hashed and shown only now:"
        ).format(
            name=args.name.strip(),
            scopes=", ".join(scopes),
            header="`Authorization: Bearer <token>`",
        )
    )
    print(token)
    return 0
