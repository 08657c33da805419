"""The embedded AWS for the demo, the tests and the benchmarks (never imported by `serve`)."""

from app.sandbox.server import SANDBOX_ACCOUNT_ID, SANDBOX_CREDENTIALS, Sandbox, start_sandbox

__all__ = ["SANDBOX_ACCOUNT_ID", "SANDBOX_CREDENTIALS", "Sandbox", "start_sandbox"]
