"""HTTP endpoints of the bot: health, metrics, SMS gateway callbacks and acknowledge-by-link.

Built by :func:`build_app` from injected capabilities and served on loopback by :func:`serve`.
"""

from bot.http.app import (
    AckCallback,
    AckForm,
    AckOutcome,
    DlrCallback,
    HealthCheck,
    PageRenderer,
    RedactingLogger,
    RouteAccessLogger,
    SmsCallback,
    build_app,
    redact,
    serve,
)
from bot.http.pages import AckPage, PageState, render_ack_page

__all__ = [
    "AckCallback",
    "AckForm",
    "AckOutcome",
    "AckPage",
    "DlrCallback",
    "HealthCheck",
    "PageRenderer",
    "PageState",
    "RedactingLogger",
    "RouteAccessLogger",
    "SmsCallback",
    "build_app",
    "redact",
    "render_ack_page",
    "serve",
]
