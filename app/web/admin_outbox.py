"""The outbox: the mail the portal wrote, readable by admins in the sandbox or without SMTP."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.errors import NotFound
from app.i18n import _, ngettext
from app.services.outbox import (
    Mail,
    get_mail,
    list_outbox,
    outbox_readable,
    retry_unsent,
    unsent_count,
)
from app.web.deps import AdminDep, PortalDep
from app.web.templating import render

router = APIRouter(include_in_schema=False)

# A mail's number as the database can hold it (a larger one would not reach it: 400, not 500).
MailId = Annotated[int, Path(ge=1, le=2**63 - 1)]

# A mail's HTML is shown on its own, with no script, no form and an origin of its own; its
# inline style attributes are the one thing allowed inline, and no other site may frame it.
_MAIL_CSP = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'none'; object-src 'none'; base-uri 'none'; form-action 'none'"
)


@router.get("/admin/outbox")
def outbox(
    request: Request,
    portal: PortalDep,
    admin: AdminDep,
    sent: Annotated[int | None, Query(ge=0, le=1_000_000)] = None,
) -> Response:
    if sent is not None:
        request.state.flash = ngettext(
            "{n} waiting mail was sent.", "{n} waiting mails were sent.", sent
        ).format(n=sent)
    readable = outbox_readable(portal)
    return render(
        request,
        "admin/outbox.html",
        {
            "readable": readable,
            "mails": list_outbox(portal) if readable else [],
            "unsent": unsent_count(portal),
            "smtp": bool(portal.settings.smtp_url),
        },
    )


@router.post("/admin/outbox/retry")
def retry(portal: PortalDep, admin: AdminDep) -> Response:
    return RedirectResponse(f"/admin/outbox?sent={retry_unsent(portal)}", status_code=303)


def _readable_mail(portal: PortalDep, mail_id: int) -> Mail:
    row = get_mail(portal, mail_id) if outbox_readable(portal) else None
    if row is None:
        raise NotFound(_("There is no such mail in the outbox."))
    return row


@router.get("/admin/outbox/{mail_id}")
def outbox_mail(request: Request, portal: PortalDep, admin: AdminDep, mail_id: MailId) -> Response:
    return render(request, "admin/outbox_mail.html", {"mail": _readable_mail(portal, mail_id)})


@router.get("/admin/outbox/{mail_id}/html")
def outbox_mail_html(portal: PortalDep, admin: AdminDep, mail_id: MailId) -> Response:
    row = _readable_mail(portal, mail_id)
    if not row.html_body:
        raise NotFound(_("This mail has no HTML version."))
    return HTMLResponse(row.html_body, headers={"Content-Security-Policy": _MAIL_CSP})
