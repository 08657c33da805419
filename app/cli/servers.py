"""The commands that run the portal: `demo` (sandbox AWS, throwaway database) and `serve`."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import shutil
import socket
import sys
import tempfile
from typing import Any

from app.config import Settings, load_settings
from app.errors import PortalError
from app.i18n import _
from app.services.portal import CLI_ACTOR, Portal, build_portal

log = logging.getLogger("iam_onboard")


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _run_server(portal: Portal, *, host: str, port: int) -> None:
    from app.server import serve

    serve(portal, host=host, port=port)


def cmd_demo(args: argparse.Namespace) -> int:
    # The sandbox (moto) is the optional `demo` extra: a production install does not have it,
    # and only this command imports it.
    if importlib.util.find_spec("moto") is None:
        raise PortalError(
            _(
                "The demo needs the sandbox AWS, which is not installed: install the demo extra "
                "({command})."
            ).format(command="pip install 'iam-onboard[demo]'")
        )
    from app.demo_realism import banner_lines, realism_for_demo
    from app.sandbox import start_sandbox
    from app.services.bootstrap import bootstrap

    host = "127.0.0.1"
    if not _port_free(host, args.port):
        raise PortalError(
            _("Port {port} is already in use; choose another with {option}.").format(
                port=args.port, option="--port"
            )
        )
    if args.iam_port and not _port_free(host, args.iam_port):
        raise PortalError(
            _("Port {port} is already in use; choose another with {option}.").format(
                port=args.iam_port, option="--iam-port"
            )
        )
    realism = realism_for_demo(args)  # issue 16: realism modes (app/demo_realism.py)
    tmpdir = None
    database_url = args.database_url
    if not database_url:
        tmpdir = tempfile.mkdtemp(prefix="iam-onboard-demo-")
        database_url = f"sqlite:///{tmpdir}/demo.db"
    # None: IAM_ONBOARD_SANDBOX_ENFORCE_POLICIES=1 decides (start_sandbox reads it).
    enforce = True if args.iam_enforce_policies else None
    sandbox = start_sandbox(
        host=host, port=args.iam_port or 0, enforce_policies=enforce, realism=realism
    )
    try:
        settings = load_settings(
            sandbox=True, database_url=database_url, base_url=f"http://{host}:{args.port}"
        )
        portal = build_portal(settings, endpoint=sandbox.url)
        if sandbox.enforcing:
            from app import demo_identities

            bootstrap(demo_identities.as_admin(portal, sandbox), dry_run=False, actor=CLI_ACTOR)
            portal = demo_identities.as_runtime_identity(portal, sandbox)
        else:
            bootstrap(portal, dry_run=False, actor=CLI_ACTOR)
        portal.clock = sandbox.now  # the real time unless a test moves the sandbox's clock
        _first_refresh(portal)
        print(_("iam-onboard demo: sandbox AWS and a throwaway database; Ctrl-C stops everything."))
        print(_("Portal: {url}").format(url=settings.base_url))
        print(_("Sandbox IAM endpoint (for AWS_ENDPOINT_URL_IAM and the AWS CLI):"))
        print(sandbox.url)
        if sandbox.enforcing:
            _print_enforcement(sandbox)
        for line in banner_lines(realism):  # issue 16: the realism modes that are on
            print(line)
        _print_demo_admin(portal, args.admin_email)
        print(_("Database: {url}").format(url=database_url))
        sys.stdout.flush()
        _run_server(portal, host=host, port=args.port)
    finally:
        sandbox.stop()
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
    return 0


def _first_refresh(portal: Portal) -> None:
    """Read the sandbox's users once, so the dashboard opens with them rather than empty."""
    from app.services.directory import refresh_directory

    try:
        refresh_directory(portal, actor=CLI_ACTOR)
    except PortalError as exc:  # the dashboard offers the refresh again, and says why it failed
        log.warning("the first refresh of the directory failed: %s", exc.message)


def _print_enforcement(sandbox: Any) -> None:
    from app.demo_identities import ADMIN_KEYS, PORTAL_USER

    print(_("The sandbox enforces IAM policies; its administrator's access key (sandbox only):"))
    print(f"AWS_ACCESS_KEY_ID={ADMIN_KEYS['aws_access_key_id']}")
    print(f"AWS_SECRET_ACCESS_KEY={ADMIN_KEYS['aws_secret_access_key']}")
    print(_("The portal runs as IAM user {user} with its runtime policy.").format(user=PORTAL_USER))


def _print_demo_admin(portal: Portal, email: str) -> None:
    from app.services.admins import AdminAlreadySetUp, create_admin

    try:
        setup = create_admin(portal, email=email, actor=CLI_ACTOR)
    except AdminAlreadySetUp:
        print(
            _("Admin {email} exists and has finished setup: sign in at {url}").format(
                email=email, url=portal.link("/admin")
            )
        )
        return
    print(
        _("Admin: {email} (choose a password and a code app within 24 hours)").format(
            email=setup.email
        )
    )
    print(_("Admin setup link (shown once):"))
    print(setup.link)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = load_settings()
    settings.require_real_secret()
    if args.workers > 1:
        return _serve_workers(settings, args)
    portal = build_portal(settings)
    log.info("serving on %s:%s, links built from %s", args.host, args.port, settings.base_url)
    _run_server(portal, host=args.host, port=args.port)
    return 0


def _serve_workers(settings: Settings, args: argparse.Namespace) -> int:
    """N uvicorn worker processes (spawned: each imports the app anew, app.server.app_factory)
    and this process supervising them, running housekeeping once for all of them."""
    from app import metrics
    from app.server import serve_workers
    from app.services import housekeeping

    if "prometheus_client.values" in sys.modules and not os.environ.get(metrics.MULTIPROC_ENV):
        # Only if a change made something count before this point: this process's own
        # counts (housekeeping) would then stay out of /metrics.
        log.warning("metrics were counted before the workers' metrics directory was set")
    # Each process writes its metrics to files here; /metrics sums them. prometheus-client
    # reads the variable on its first import (app/metrics.py imports it on first use), and
    # the workers inherit it. A fresh directory: counts from an earlier run would be summed in.
    metrics_dir = tempfile.mkdtemp(prefix="iam-onboard-metrics-")
    os.environ[metrics.MULTIPROC_ENV] = metrics_dir
    portal = build_portal(settings)  # migrates once, before any worker starts
    interval = settings.housekeeping_interval_seconds
    os.environ["IAM_ONBOARD_HOUSEKEEPING_INTERVAL_SECONDS"] = "0"  # the workers' lifespans
    stopper = housekeeping.start_background(portal, interval) if interval > 0 else None
    log.info(
        "serving on %s:%s with %d workers, links built from %s",
        args.host,
        args.port,
        args.workers,
        settings.base_url,
    )
    try:
        serve_workers(
            host=args.host, port=args.port, workers=args.workers, log_format=settings.log_format
        )
    finally:
        if stopper:
            stopper()
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0
