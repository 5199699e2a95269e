"""The SMS and e-mail bridges, built from ``[bridges]`` and wired to the engine.

One object owns every part that lives outside Matrix: the Kannel client and the SMTP relays
(through the channel outbox), the reply codes and link signer, the HTTP endpoints (Kannel's
callbacks, acknowledge links, health) and the SMTP listener for e-mail replies. It hands the
engine what the engine needs (:class:`bot.channel_replies.ChannelReplies`, a wakeup) and takes
from the engine what it needs (storing inbound replies, acknowledging by link).

Everything inbound is **stored before it is answered**: an SMS callback gets its 200, and an
e-mail its 250, only after the inbox row is committed; the engine's inbox worker then handles
it like a chat command. Everything outbound goes through the outbox; :meth:`prepare` fills in
the recipient's reply code and link at send time and cancels an alarm whose party has
acknowledged meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from bot.channel_replies import ChannelReplies
from bot.clock import Clock
from bot.config import BridgesConfig, Config, ConfigError
from bot.domain import IncidentState
from bot.engine import Engine
from bot.fallback import FallbackWatch
from bot.http.app import AckForm, AckOutcome, build_app, serve
from bot.matrix.session import StartupRefused
from bot.metrics import Metrics
from bridges.email.inbound import InboundMail, InboundMailServer
from bridges.email.smtp import Relay, SmtpSender
from bridges.outbox_worker import ChannelOutbox, EmailChannelSettings
from bridges.reply_codes import ReplyCodePolicy, ReplyCodes
from bridges.signed_links import LinkClaim, SignedLinks
from bridges.sms.kannel import (
    DeliveryReport,
    Endpoint,
    InboundSms,
    KannelClient,
    dlr_url_template,
)
from commands.outcome import CODE, LINK
from storage import audit, inbox, outbox
from storage.database import Database
from storage.incidents import make_repositories
from storage.models import OutboxRow

log = logging.getLogger(__name__)

#: Outbox purposes that ask for an acknowledgement: sent only while one is still wanted.
ASKING = frozenset({"alarm", "escalation"})


class BridgeHub:
    def __init__(
        self,
        config: Config,
        bridges: BridgesConfig,
        *,
        base_dir: Path,
        db: Database,
        clock: Clock,
        engine: Engine,
        fault: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.settings = bridges
        self.db = db
        self.clock = clock
        self.engine = engine
        secret = bridges.secret.resolve(base_dir)
        if len(secret.get_secret_value()) < 16:
            raise ConfigError("bridges.secret: must be at least 16 characters")
        self.codes = ReplyCodes(
            secret, ReplyCodePolicy(ttl=timedelta(minutes=bridges.reply_code_ttl_min))
        )
        self.links = SignedLinks(secret)
        self.replies = ChannelReplies(self.codes)
        http = bridges.http
        self.gateway_secret = (
            http.gateway_secret.resolve(base_dir) if http.gateway_secret is not None else None
        )
        if self.gateway_secret is not None and len(self.gateway_secret.get_secret_value()) < 16:
            raise ConfigError("bridges.http.gateway_secret: must be at least 16 characters")
        self._http_runner: web.AppRunner | None = None
        self._mail: InboundMailServer | None = None
        self._stop = asyncio.Event()
        self._running: asyncio.Future[Any] | None = None
        self.http_port: int | None = None
        self.sms: KannelClient | None = None
        email_settings: EmailChannelSettings | None = None
        self._base_dir = base_dir
        self._fault = fault
        # Without delivery reports only a refusal or a failure can trigger the fallback.
        self._sms_timeout = (
            bridges.sms.delivery_timeout_s
            if bridges.sms is not None and bridges.sms.delivery_reports
            else None
        )
        if bridges.email is not None:
            mail = bridges.email
            relays = [
                Relay(
                    host=r.host,
                    port=r.port,
                    username=r.username,
                    password=r.password.resolve(base_dir).get_secret_value()
                    if r.password is not None
                    else None,
                    starttls=r.starttls,
                    timeout=r.timeout_s,
                )
                for r in mail.relays
            ]
            email_settings = EmailChannelSettings(
                sender=mail.address,
                message_id_domain=mail.message_id_domain or mail.address.rpartition("@")[2],
                smtp=SmtpSender(relays),
                sender_name=mail.sender_name,
            )
        self._email_settings = email_settings
        self.outbox: ChannelOutbox | None = None
        self.fallback: FallbackWatch | None = None
        self.metrics = Metrics(db, clock)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """HTTP endpoints first (their port goes into the SMS delivery-report URL), then the
        mail listener, then the outbox and the fallback watch."""
        settings = self.settings
        http = settings.http
        app = build_app(
            health=self._health,
            registry=self.metrics.registry,
            gateway_secret=self.gateway_secret,
            on_sms=self._on_sms if settings.sms is not None else None,
            on_dlr=self._on_dlr if settings.sms is not None else None,
            links=self.links if settings.email is not None else None,
            on_ack=self._on_ack if settings.email is not None else None,
            clock=self.clock,
            language_for=self._language_for,
            catalog=self.engine.catalog,  # one set of texts for the bot and its pages
            default_language=self.config.healthcare_region.language,
            public_origin=http.public_base_url,
            on_link_refused=self._on_link_refused if settings.email is not None else None,
        )
        try:
            self._http_runner = await serve(app, http.host, http.port)
        except OSError as exc:
            raise StartupRefused(
                f"bridges.http: cannot listen on {http.host}:{http.port} ({exc.strerror}); "
                "is another bot running, or set another port"
            ) from None
        address = self._http_runner.addresses[0]
        self.http_port = int(address[1])
        if settings.sms is not None:
            assert self.gateway_secret is not None
            sms = settings.sms
            dlr = None
            if sms.delivery_reports:
                base = f"http://{_url_host(http.host)}:{self.http_port}/sms/dlr"
                dlr = dlr_url_template(f"{base}?secret={self.gateway_secret.get_secret_value()}")
            self.sms = KannelClient(
                [
                    Endpoint(
                        g.url,
                        g.username,
                        g.password.resolve(self._base_dir).get_secret_value(),
                        g.name,
                    )
                    for g in sms.gateways
                ],
                sms.sender_id,
                dlr,
            )
        if settings.email is not None:
            mail = settings.email
            self._mail = InboundMailServer(
                mail.listen_host,
                mail.listen_port,
                self._on_mail,
                accept=mail.accept or [mail.address],
                allowed_clients=mail.allowed_clients or None,
            )
            try:
                await self._mail.start()
            except OSError as exc:
                raise StartupRefused(
                    f"bridges.email: cannot listen on {mail.listen_host}:{mail.listen_port} "
                    f"({exc.strerror}); set another listen_port"
                ) from None
        rates: dict[str, float] = {}
        if settings.sms is not None:
            rates["sms"] = settings.sms.rate_per_s
        if settings.email is not None:
            rates["email"] = settings.email.rate_per_s
        self.outbox = ChannelOutbox(
            self.db,
            self.clock,
            sms=self.sms,
            email=self._email_settings,
            rate_per_s=rates,
            max_attempts=settings.max_attempts,
            backoff_initial_s=settings.backoff_initial_s,
            backoff_max_s=settings.backoff_max_s,
            sms_budget_segments=settings.sms.budget_segments if settings.sms else 3,
            prepare=self.prepare,
            fault=self._fault,
        )
        self.fallback = FallbackWatch(
            self.db,
            self.clock,
            self.engine,
            sms_timeout_s=self._sms_timeout,
        )
        self.engine.channel_replies = self.replies
        self.engine.channel_wakeup = self._wakeup

    def _wakeup(self) -> None:
        if self.outbox is not None:
            self.outbox.wakeup()

    async def run(self) -> None:
        """The outbox loop and the fallback watch, until :meth:`finish`."""
        assert self.outbox is not None
        assert self.fallback is not None
        self._running = asyncio.ensure_future(
            asyncio.gather(
                self.outbox.run(self._stop),
                self.fallback.run(self._stop),
                self.metrics.run(self._stop),
            )
        )
        await self._running

    async def finish(self, timeout: float) -> None:
        """Stop after the pass under way (sends recorded), waiting at most ``timeout``."""
        self._stop.set()
        if self.fallback is not None:
            self.fallback.wakeup()
        if self._running is not None and not self._running.done():
            await asyncio.wait({self._running}, timeout=timeout)

    async def stop(self) -> None:
        self._stop.set()
        if self._mail is not None:
            await self._mail.close()
        if self._http_runner is not None:
            await self._http_runner.cleanup()
        if self.sms is not None:
            await self.sms.close()

    # -- outbound ----------------------------------------------------------------------------

    async def prepare(
        self, session: AsyncSession, row: OutboxRow, now: datetime
    ) -> dict[str, Any] | str:
        """The payload to send for ``row``: its reply code and link filled in; or why it is
        not sent any more (the party acknowledged, the incident was stood down)."""
        payload = dict(row.payload or {})
        party_id = payload.get("party_id")
        if row.purpose not in ASKING or not party_id or not row.incident_id:
            return payload
        incidents, _alarms = make_repositories(session, self.config)
        incident = await incidents.get(row.incident_id)
        if incident is None:
            return "unknown incident"
        if incident.state is IncidentState.STOOD_DOWN:
            return "stood down"
        if incident.first_ack(party_id) is not None:
            return "acknowledged"
        body = str(payload.get("body", ""))
        if CODE in body:
            code = await self.codes.issue(
                session,
                channel=row.channel,
                destination=row.destination,
                incident_id=row.incident_id,
                party_id=party_id,
                outbox_key=row.idempotency_key,
                now=now,
            )
            body = body.replace(CODE, code)
            payload["reply_code"] = code
        if LINK in body:
            base = self.settings.http.public_base_url
            if base is not None:
                url = self.links.url(
                    base,
                    incident_id=row.incident_id,
                    party_id=party_id,
                    outbox_key=row.idempotency_key,
                    expires_at=now + timedelta(minutes=self.settings.reply_code_ttl_min),
                )
                body = body.replace(LINK, url)
            else:
                body = "\n".join(line for line in body.split("\n") if LINK not in line)
        payload["body"] = body
        return payload

    # -- inbound -----------------------------------------------------------------------------

    async def _on_sms(self, sms: InboundSms) -> None:
        when = sms.ts or self.clock.now()
        await self.engine.store_external(
            inbox.InboundEvent(
                event_id=f"sms:{sms.gateway_id}",
                source="sms",
                kind="sms",
                room_id=None,
                sender=sms.sender,
                origin_ts=int(when.timestamp() * 1000),
                payload={"text": sms.text, "receiver": sms.receiver},
            )
        )

    async def _on_dlr(self, report: DeliveryReport) -> None:
        assert self.outbox is not None
        await self.outbox.record_dlr(report)
        if self.fallback is not None:
            self.fallback.wakeup()

    async def _on_mail(self, mail: InboundMail) -> None:
        sender = parseaddr(mail.header_from)[1] or mail.envelope_from
        await self.engine.store_external(
            inbox.InboundEvent(
                event_id=f"email:{mail.raw_sha256}",
                source="email",
                kind="email",
                room_id=None,
                sender=sender[:255] or "unknown",
                origin_ts=int(self.clock.now().timestamp() * 1000),
                payload={
                    "text": mail.text,
                    "subject": mail.subject[:300],
                    "envelope_from": mail.envelope_from[:255],
                    "message_id": mail.message_id[:255],
                    "in_reply_to": mail.in_reply_to[:255],
                    "references": [r[:255] for r in mail.references[-10:]],
                    "automatic": mail.automatic,
                },
            )
        )

    async def _on_link_refused(self, reason: str) -> None:
        async with self.db.write() as session:
            await audit.append(
                session,
                at=self.clock.now(),
                actor="link",
                action="inbound_reply.refused",
                subject=None,
                detail={"channel": "link", "reason": reason},
            )

    async def _on_ack(self, claim: LinkClaim, form: AckForm) -> AckOutcome:
        return await self.engine.ack_by_link(claim, form)

    def _language_for(self, claim: LinkClaim) -> str:
        party = self.config.party(claim.party_id)
        return party.language if party is not None else self.config.healthcare_region.language

    async def _health(self) -> dict[str, Any]:
        async with self.db.read() as session:
            pending = {
                channel: len(await outbox.pending(session, channel))
                for channel in ("matrix", *self.config.bridge_channels())
            }
        return {"ok": True, "pending": pending}


def _url_host(host: str) -> str:
    """A listen address as a URL host: ``[::1]`` for IPv6, 127.0.0.1 for 'any'."""
    if host in ("0.0.0.0", "", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
