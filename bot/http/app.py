"""The bot's HTTP endpoints: health, metrics, Kannel callbacks and "acknowledge by link".

Everything a handler needs is handed to :func:`build_app` (no globals, no default Prometheus
registry), so tests build an app from fakes and the composition root (``bot/app.py``) from the
real parts. A route exists only if its capability was given.

Rules the handlers keep:

- **Kannel must not drop input.** ``/sms/inbound`` and ``/sms/dlr`` check the shared secret
  (constant time, 403 otherwise), parse with :mod:`bridges.sms.kannel` (400 for junk), hand the
  value to the injected async callback and answer 200 with an empty body as soon as it
  returns. The callback is meant to *store* (inbox row, outbox status), not to act, so it is
  fast; if it fails or exceeds ``callback_timeout`` the answer is 503, and the work is not
  cancelled (a store that completes late is harmless: the inbox is keyed by Kannel's id).
- **A link opened is not a link clicked.** ``GET /ack/{token}`` only shows a confirm page;
  ``POST /ack/{token}`` acknowledges, and only if the form echoes the token (so a POST needs
  the page or the link, not merely the URL shape), the browser does not say it is cross-site
  (``Sec-Fetch-Site``), and, if ``public_origin`` is given, ``Origin`` matches it. The callback
  is idempotent (the link uses up the message's single-use reply code), so a second POST says
  "already acknowledged".
- **No secret in any log line or error page.** The access log names the *route* (``/ack/
  {token}``), never the path or query; the server's own error log goes through
  :class:`RedactingLogger`; error pages are fixed texts; exceptions are logged by type only.
- **Loopback by default**: :func:`serve` listens on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import json
import logging
import re
import sys
from collections.abc import Awaitable, Callable, Mapping
from ipaddress import ip_address
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import SecretStr

from bot.clock import Clock
from bot.contracts import AckForm, AckOutcome
from bot.domain.answer import MAX_REMARK, NotACount, negates, read_count
from bot.http.pages import AckPage, PageState, ack_page_renderer
from bot.i18n import Catalog
from bridges.signed_links import LinkClaim, LinkProblem, LinkRejected, SignedLinks
from bridges.sms.kannel import (
    CallbackRejected,
    DeliveryReport,
    InboundSms,
    parse_dlr,
    parse_mo,
)

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024
MAX_REQUEST_LINE = 64 * 1024
DEFAULT_CALLBACK_TIMEOUT = 5.0

HealthCheck = Callable[[], Mapping[str, Any] | Awaitable[Mapping[str, Any]]]
SmsCallback = Callable[[InboundSms], Awaitable[None]]
DlrCallback = Callable[[DeliveryReport], Awaitable[None]]
PageRenderer = Callable[[AckPage], str]


AckCallback = Callable[[LinkClaim, AckForm], Awaitable[AckOutcome]]
#: Called with the reason (malformed, tampered, expired) when a POST brings a bad link.
LinkRefusedCallback = Callable[[str], Awaitable[None]]


# -- redaction ---------------------------------------------------------------------------------

_SECRET_PARAM = re.compile(r"(?i)\b(secret|token|password|pass)=[^&\s'\"]*")
_ACK_PATH = re.compile(r"/ack/[^\s?#'\"]+")


def redact(text: str) -> str:
    """``text`` with link tokens and secret query parameters replaced by ``***``."""
    return _ACK_PATH.sub("/ack/***", _SECRET_PARAM.sub(lambda m: m.group(1) + "=***", text))


class RedactingLogger:
    """Stands in for aiohttp's server logger: its messages (which may quote a request line)
    are redacted, and an exception is logged as its type and redacted text, no traceback."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - the logging API's name
        return self._logger.isEnabledFor(level)

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if not self._logger.isEnabledFor(level):
            return
        try:
            text = str(msg) % args if args else str(msg)
        except Exception:
            text = str(msg)
        exc = kwargs.get("exc_info")
        if exc is True:
            exc = sys.exc_info()[1]
        elif isinstance(exc, tuple):
            exc = exc[1]
        if isinstance(exc, BaseException):
            text += f" ({type(exc).__name__}: {exc})"
        self._logger.log(level, "%s", redact(text))

    def debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.log(logging.DEBUG, msg, *args, **kwargs)

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.log(logging.INFO, msg, *args, **kwargs)

    def warning(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.log(logging.WARNING, msg, *args, **kwargs)

    def error(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.log(logging.ERROR, msg, *args, **kwargs)

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        kwargs.setdefault("exc_info", True)
        self.log(logging.ERROR, msg, *args, **kwargs)


def _route_name(request: web.BaseRequest) -> str:
    try:  # a request refused before routing (a bad request line) has no match info
        match_info = getattr(request, "match_info", None)
    except AssertionError:
        return "<unmatched>"
    route = getattr(match_info, "route", None)
    resource = getattr(route, "resource", None)
    return resource.canonical if resource is not None else "<unmatched>"


class RouteAccessLogger(AbstractAccessLogger):
    """One line per request naming the route pattern, never the path or the query string."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %.3fs", request.method, _route_name(request), response.status, time
        )


# -- the application ---------------------------------------------------------------------------


_HTML_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Robots-Tag": "noindex, nofollow",
}


_COMMON_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Fixed error texts, exceptions logged by type only, safe headers on every answer."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        # aiohttp's own 404/405/413 texts name no part of the request; keep them.
        for name, value in _COMMON_HEADERS.items():
            exc.headers.setdefault(name, value)
        raise
    except Exception as exc:
        log.error("HTTP handler of %s failed: %s", _route_name(request), type(exc).__name__)
        response = web.Response(status=500, text="internal error\n")
    for name, value in _COMMON_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


class _Handlers:
    """The handlers, holding the injected capabilities (one instance per application)."""

    def __init__(
        self,
        *,
        health: HealthCheck,
        registry: CollectorRegistry | None,
        gateway_secret: SecretStr | None,
        on_sms: SmsCallback | None,
        on_dlr: DlrCallback | None,
        links: SignedLinks | None,
        on_ack: AckCallback | None,
        clock: Clock | None,
        language_for: Callable[[LinkClaim], str],
        default_language: str,
        renderer: PageRenderer,
        public_origin: str | None,
        callback_timeout: float,
        on_link_refused: LinkRefusedCallback | None = None,
    ) -> None:
        self.on_link_refused = on_link_refused
        self.health_check = health
        self.registry = registry
        self._secret_digest = (
            hashlib.sha256(gateway_secret.get_secret_value().encode()).digest()
            if gateway_secret is not None
            else None
        )
        self.on_sms = on_sms
        self.on_dlr = on_dlr
        self.links = links
        self.on_ack = on_ack
        self.clock = clock
        self.language_for = language_for
        self.default_language = default_language
        self.renderer = renderer
        self.public_origin = public_origin.rstrip("/") if public_origin else None
        self.callback_timeout = callback_timeout
        self._running: set[asyncio.Task[Any]] = set()

    # -- helpers -------------------------------------------------------------------------------

    async def _call(self, make: Callable[[], Awaitable[Any]]) -> tuple[bool, Any]:
        """Run a callback with a deadline; on timeout it keeps running (it is storing something
        a retry would store again) but we stop waiting. (ok, result)."""
        task = asyncio.ensure_future(make())
        self._running.add(task)
        task.add_done_callback(self._finished)
        try:
            return True, await asyncio.wait_for(asyncio.shield(task), self.callback_timeout)
        except TimeoutError:
            log.warning("HTTP callback still running after %.1f s", self.callback_timeout)
            return False, None
        except Exception as exc:
            log.error("HTTP callback failed: %s", type(exc).__name__)
            return False, None

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Retrieved so asyncio does not complain; _call reported it if it was waiting.
            log.debug("HTTP callback ended with %s", type(task.exception()).__name__)

    def _secret_ok(self, request: web.Request) -> bool:
        if self._secret_digest is None:
            return False
        given = request.rel_url.query.getall("secret", [])
        if len(given) != 1:
            return False
        digest = hashlib.sha256(given[0].encode("utf-8", "replace")).digest()
        return hmac.compare_digest(digest, self._secret_digest)

    @staticmethod
    def _forbidden() -> web.Response:
        return web.Response(status=403, text="forbidden\n")

    # -- health and metrics --------------------------------------------------------------------

    async def healthz(self, _request: web.Request) -> web.Response:
        try:
            result = self.health_check()
            if inspect.isawaitable(result):
                result = await result
            status = dict(result)
            healthy = bool(status.get("ok", True))
            body = json.dumps(status, default=str, sort_keys=True)
        except Exception as exc:
            log.error("health check failed: %s", type(exc).__name__)
            healthy, body = False, json.dumps({"ok": False})
        return web.Response(
            status=200 if healthy else 503, text=body, content_type="application/json"
        )

    async def metrics(self, _request: web.Request) -> web.Response:
        assert self.registry is not None
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    # -- Kannel --------------------------------------------------------------------------------

    async def sms_inbound(self, request: web.Request) -> web.Response:
        if not self._secret_ok(request):
            return self._forbidden()
        source: str = request.rel_url.raw_query_string
        if request.method == "POST":
            body = await request.text()
            if body.strip():
                source = body
        parsed = parse_mo(source)
        if isinstance(parsed, CallbackRejected):
            return web.Response(status=400, text=f"rejected: {parsed.reason}\n")
        assert self.on_sms is not None
        on_sms = self.on_sms
        ok, _ = await self._call(lambda: on_sms(parsed))
        return web.Response(status=200, text="") if ok else web.Response(status=503, text="")

    async def sms_dlr(self, request: web.Request) -> web.Response:
        if not self._secret_ok(request):
            return self._forbidden()
        parsed = parse_dlr(request.rel_url.raw_query_string)
        if isinstance(parsed, CallbackRejected):
            return web.Response(status=400, text=f"rejected: {parsed.reason}\n")
        assert self.on_dlr is not None
        on_dlr = self.on_dlr
        ok, _ = await self._call(lambda: on_dlr(parsed))
        return web.Response(status=200, text="") if ok else web.Response(status=503, text="")

    # -- acknowledge by link -------------------------------------------------------------------

    def _page(self, page: AckPage, status: int) -> web.Response:
        response = web.Response(
            status=status, text=self.renderer(page), content_type="text/html", charset="utf-8"
        )
        response.headers.update(_HTML_HEADERS)
        return response

    def _language(self, claim: LinkClaim | None) -> str:
        if claim is None:
            return self.default_language
        try:
            return self.language_for(claim)
        except Exception:
            return self.default_language

    def _verify(self, token: str) -> LinkClaim | LinkRejected:
        assert self.links is not None
        assert self.clock is not None
        return self.links.verify(token, now=self.clock.now())

    def _rejected_page(self, rejected: LinkRejected) -> web.Response:
        if rejected.reason is LinkProblem.EXPIRED:
            return self._page(AckPage(PageState.EXPIRED, self.default_language), 410)
        return self._page(AckPage(PageState.INVALID, self.default_language), 404)

    async def ack_get(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        claim = self._verify(token)
        if isinstance(claim, LinkRejected):
            return self._rejected_page(claim)
        page = AckPage(
            PageState.CONFIRM, self._language(claim), claim.incident_id, claim.party_id, token
        )
        return self._page(page, 200)

    def _cross_site(self, request: web.Request) -> bool:
        if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
            return True
        origin = request.headers.get("Origin")
        if self.public_origin is None or origin is None:
            return False
        return origin.rstrip("/") != self.public_origin

    async def ack_post(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        claim = self._verify(token)
        if isinstance(claim, LinkRejected):
            if self.on_link_refused is not None:  # a POST is an attempt: it is audited
                on_link_refused = self.on_link_refused
                await self._call(lambda: on_link_refused(claim.reason.value))
            return self._rejected_page(claim)
        language = self._language(claim)
        invalid = AckPage(PageState.INVALID, language)
        if self._cross_site(request):
            return self._page(invalid, 403)
        if request.content_type not in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            return self._page(invalid, 400)
        form = await request.post()
        echoed = form.getall("token", [])
        if (
            len(echoed) != 1
            or not isinstance(echoed[0], str)
            or not hmac.compare_digest(echoed[0].encode("utf-8", "replace"), token.encode("utf-8"))
        ):
            return self._page(invalid, 403)
        count_text = _field(form, "count")
        remark = " ".join(_field(form, "remark").split())
        again = AckPage(
            PageState.BAD_INPUT,
            language,
            claim.incident_id,
            claim.party_id,
            token,
            count=count_text[:10],
            remark=remark[:MAX_REMARK],
        )
        pledge: int | None = None
        if count_text.strip():
            try:
                pledge = read_count(count_text.strip())
            except NotACount:
                return self._page(_with_problem(again, "count"), 400)
        if len(remark) > MAX_REMARK:
            return self._page(_with_problem(again, "remark"), 400)
        if negates(remark):  # "inte än", "not yet": the same rule as in chat, SMS and e-mail
            return self._page(_with_problem(again, "negated"), 400)
        assert self.on_ack is not None
        on_ack = self.on_ack
        ok, outcome = await self._call(lambda: on_ack(claim, AckForm(pledge, remark)))
        if not ok or not isinstance(outcome, AckOutcome):
            return self._page(AckPage(PageState.ERROR, language), 503)
        state, status = {
            AckOutcome.ACKNOWLEDGED: (PageState.DONE, 200),
            AckOutcome.ALREADY: (PageState.ALREADY, 200),
            AckOutcome.CLOSED: (PageState.CLOSED, 200),
            AckOutcome.EXPIRED: (PageState.EXPIRED, 410),
        }[outcome]
        return self._page(AckPage(state, language, claim.incident_id, claim.party_id), status)


def _field(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def _with_problem(page: AckPage, problem: str) -> AckPage:
    return AckPage(
        page.state,
        page.language,
        page.incident_id,
        page.party_id,
        page.token,
        problem,
        page.count,
        page.remark,
    )


def build_app(
    *,
    health: HealthCheck,
    registry: CollectorRegistry | None = None,
    gateway_secret: SecretStr | None = None,
    on_sms: SmsCallback | None = None,
    on_dlr: DlrCallback | None = None,
    links: SignedLinks | None = None,
    on_ack: AckCallback | None = None,
    clock: Clock | None = None,
    language_for: Callable[[LinkClaim], str] | None = None,
    default_language: str = "sv",
    catalog: Catalog | None = None,
    renderer: PageRenderer | None = None,
    public_origin: str | None = None,
    callback_timeout: float = DEFAULT_CALLBACK_TIMEOUT,
    on_link_refused: LinkRefusedCallback | None = None,
) -> web.Application:
    """The application, with a route for each capability given.

    - ``health`` (always): ``GET /healthz`` → its mapping as JSON; 503 if it says
      ``"ok": False`` or fails.
    - ``registry``: ``GET /metrics`` in Prometheus text format, from that registry only.
    - ``gateway_secret`` with ``on_sms``: ``GET``/``POST /sms/inbound``; with ``on_dlr``:
      ``GET /sms/dlr``. Kannel's URLs must carry ``secret=<gateway_secret>``.
    - ``links``, ``on_ack`` and ``clock``: ``GET``/``POST /ack/{token}``. ``language_for``
      picks the page language from the claim (the party's language), default
      ``default_language``. The built-in pages take their texts from ``catalog`` (the bot's;
      loaded from ``bot/i18n`` if not given); ``renderer`` replaces them.
    """
    if (on_sms or on_dlr) and gateway_secret is None:
        raise ValueError("the Kannel callbacks need gateway_secret")
    if gateway_secret is not None and len(gateway_secret.get_secret_value()) < 16:
        raise ValueError("gateway_secret must be at least 16 characters")
    if (links is None) != (on_ack is None) or (links is not None and clock is None):
        raise ValueError("acknowledge-by-link needs links, on_ack and clock together")
    handlers = _Handlers(
        health=health,
        registry=registry,
        gateway_secret=gateway_secret,
        on_sms=on_sms,
        on_dlr=on_dlr,
        links=links,
        on_ack=on_ack,
        clock=clock,
        language_for=language_for or (lambda _claim: default_language),
        default_language=default_language,
        renderer=renderer or ack_page_renderer(catalog if catalog is not None else Catalog.load()),
        public_origin=public_origin,
        callback_timeout=callback_timeout,
        on_link_refused=on_link_refused,
    )
    app = web.Application(middlewares=[_guard], client_max_size=MAX_REQUEST_BYTES)
    app.router.add_get("/healthz", handlers.healthz)
    if registry is not None:
        app.router.add_get("/metrics", handlers.metrics)
    if on_sms is not None:
        app.router.add_get("/sms/inbound", handlers.sms_inbound)
        app.router.add_post("/sms/inbound", handlers.sms_inbound)
    if on_dlr is not None:
        app.router.add_get("/sms/dlr", handlers.sms_dlr)
    if links is not None:
        app.router.add_get("/ack/{token}", handlers.ack_get)
        app.router.add_post("/ack/{token}", handlers.ack_post)
    return app


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


async def serve(app: web.Application, host: str = "127.0.0.1", port: int = 8080) -> web.AppRunner:
    """Start serving ``app``; returns the runner (``await runner.cleanup()`` to stop).

    Port 0 picks a free port: read it from ``runner.addresses``. The access log and aiohttp's
    server log both go through the redacting loggers above.
    """
    if not _is_loopback(host):
        log.warning("HTTP endpoints listen on %s, not on loopback", host)
    runner = web.AppRunner(
        app,
        access_log_class=RouteAccessLogger,
        access_log=log.getChild("access"),
        logger=RedactingLogger(log.getChild("server")),
        # Kannel puts a whole SMS into the MO URL: 1600 UCS-2 characters percent-encoded are
        # ~20 KB, above aiohttp's default 8 KB request line, and a 400 would drop the reply.
        max_line_size=MAX_REQUEST_LINE,
        max_field_size=MAX_REQUEST_LINE,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner
