"""The SMS and e-mail channels, built from ``[bridges]``: what the composition root wires in.

Everything that lives outside Matrix, with no business rule of its own:

- **out**: the SMS sender (Kannel's ``sendsms``, with failover between gateways) and the
  e-mail sender (SMTP, with failover between relays), each a :class:`bot.contracts.Sender`
  for the one outbox; the reply codes and link signer the outbox's preparer fills in;
- **in**: the HTTP endpoints (Kannel's MO and delivery-report callbacks, acknowledge links,
  health, metrics) and the SMTP listener for e-mail replies. Each inbound message is *stored
  before it is answered* (an SMS callback gets its 200, an e-mail its 250, only after its inbox
  row is committed) through the :class:`Inbound` port the engine provides.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from bot.clock import Clock
from bot.config import BridgesConfig, Config
from bot.contracts import AckForm, AckOutcome, Sender
from bot.http.app import build_app, serve
from bot.i18n import Catalog
from bot.matrix.session import StartupRefused
from bridges.email.inbound import InboundMail, InboundMailServer
from bridges.email.sender import EmailChannelSettings, EmailSender
from bridges.email.smtp import Relay, SmtpSender
from bridges.reply_codes import ReplyCodePolicy, ReplyCodes
from bridges.signed_links import LinkClaim, SignedLinks
from bridges.sms.kannel import (
    DeliveryReport,
    Endpoint,
    InboundSms,
    KannelClient,
    dlr_url_template,
)
from bridges.sms.sender import SmsSender
from storage.inbox import InboundEvent

log = logging.getLogger(__name__)


class Inbound(Protocol):
    """What the channels hand the engine: store an inbound event, acknowledge by link, record
    a delivery report, audit a refused link."""

    async def store_external(self, event: InboundEvent) -> bool: ...

    async def ack_by_link(self, claim: LinkClaim, form: AckForm) -> AckOutcome: ...


@dataclass(frozen=True)
class Secrets:
    """The bridges' own secrets, resolved and checked once at start."""

    signing: SecretStr
    gateway: SecretStr | None


def resolve_secrets(bridges: BridgesConfig, base_dir: Path) -> Secrets:
    """The bridges' secrets (their rules, such as a length of at least 16, are the config's
    own and were checked with every other secret at start)."""
    http = bridges.http
    gateway = http.gateway_secret.resolve(base_dir) if http.gateway_secret is not None else None
    return Secrets(bridges.secret.resolve(base_dir), gateway)


def reply_codes(bridges: BridgesConfig, secrets: Secrets) -> ReplyCodes:
    return ReplyCodes(
        secrets.signing, ReplyCodePolicy(ttl=timedelta(minutes=bridges.reply_code_ttl_min))
    )


def _email_settings(bridges: BridgesConfig, base_dir: Path) -> EmailChannelSettings | None:
    mail = bridges.email
    if mail is None:
        return None
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
    return EmailChannelSettings(
        sender=mail.address,
        message_id_domain=mail.message_id_domain or mail.address.rpartition("@")[2],
        smtp=SmtpSender(relays),
        sender_name=mail.sender_name,
    )


class BridgeChannels:
    def __init__(
        self,
        config: Config,
        bridges: BridgesConfig,
        *,
        base_dir: Path,
        clock: Clock,
        catalog: Catalog,
        secrets: Secrets,
        links: SignedLinks,
    ) -> None:
        self.config = config
        self.settings = bridges
        self.base_dir = base_dir
        self.clock = clock
        self.catalog = catalog
        self.secrets = secrets
        self.links = links
        self.senders: dict[str, Sender] = {}
        self.http_port: int | None = None
        self._http_runner: web.AppRunner | None = None
        self._mail: InboundMailServer | None = None
        self._kannel: KannelClient | None = None

    async def start(
        self,
        *,
        inbound: Inbound,
        on_dlr: Callable[[DeliveryReport], Awaitable[None]],
        on_link_refused: Callable[[str], Awaitable[None]],
        health: Callable[[], Awaitable[Mapping[str, Any]]],
        registry: CollectorRegistry,
    ) -> None:
        """HTTP endpoints first (their port goes into the SMS delivery-report URL), then the
        Kannel client and the SMTP relays, then the mail listener."""
        settings = self.settings
        http = settings.http

        async def on_sms(sms: InboundSms) -> None:
            await inbound.store_external(_sms_event(sms, self.clock))

        async def on_mail(mail: InboundMail) -> None:
            await inbound.store_external(_mail_event(mail, self.clock))

        app = build_app(
            health=health,
            registry=registry,
            gateway_secret=self.secrets.gateway,
            on_sms=on_sms if settings.sms is not None else None,
            on_dlr=on_dlr if settings.sms is not None else None,
            links=self.links if settings.email is not None else None,
            on_ack=inbound.ack_by_link if settings.email is not None else None,
            clock=self.clock,
            language_for=self._language_for,
            catalog=self.catalog,  # one set of texts for the bot and its pages
            default_language=self.config.healthcare_region.language,
            public_origin=http.public_base_url,
            on_link_refused=on_link_refused if settings.email is not None else None,
        )
        try:
            self._http_runner = await serve(app, http.host, http.port)
        except OSError as exc:
            raise StartupRefused(
                f"bridges.http: cannot listen on {http.host}:{http.port} ({exc.strerror}); "
                "is another bot running, or set another port"
            ) from None
        self.http_port = int(self._http_runner.addresses[0][1])
        if settings.sms is not None:
            self._kannel = self._kannel_client()
            self.senders["sms"] = SmsSender(
                self._kannel, budget_segments=settings.sms.budget_segments
            )
        email = _email_settings(settings, self.base_dir)
        if email is not None:
            self.senders["email"] = EmailSender(email, self.clock)
        if settings.email is not None:
            mail = settings.email
            self._mail = InboundMailServer(
                mail.listen_host,
                mail.listen_port,
                on_mail,
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

    def _kannel_client(self) -> KannelClient:
        sms = self.settings.sms
        assert sms is not None
        assert self.secrets.gateway is not None
        dlr = None
        if sms.delivery_reports:
            host = _url_host(self.settings.http.host)
            base = f"http://{host}:{self.http_port}/sms/dlr"
            dlr = dlr_url_template(f"{base}?secret={self.secrets.gateway.get_secret_value()}")
        return KannelClient(
            [
                Endpoint(
                    g.url,
                    g.username,
                    g.password.resolve(self.base_dir).get_secret_value(),
                    g.name,
                )
                for g in sms.gateways
            ],
            sms.sender_id,
            dlr,
        )

    def _language_for(self, claim: LinkClaim) -> str:
        party = self.config.party(claim.party_id)
        return party.language if party is not None else self.config.healthcare_region.language

    async def stop(self) -> None:
        if self._mail is not None:
            await self._mail.close()
        if self._http_runner is not None:
            await self._http_runner.cleanup()
        if self._kannel is not None:
            await self._kannel.close()


def _sms_event(sms: InboundSms, clock: Clock) -> InboundEvent:
    when = sms.ts or clock.now()
    return InboundEvent(
        event_id=f"sms:{sms.gateway_id}",
        source="sms",
        kind="sms",
        room_id=None,
        sender=sms.sender,
        origin_ts=int(when.timestamp() * 1000),
        payload={"text": sms.text, "receiver": sms.receiver},
    )


def _mail_event(mail: InboundMail, clock: Clock) -> InboundEvent:
    # The From: addr-spec, never a display name; nobody when it is not one clear mailbox.
    sender = mail.from_address
    return InboundEvent(
        event_id=f"email:{mail.raw_sha256}",
        source="email",
        kind="email",
        room_id=None,
        sender=sender[:255] or "unknown",
        origin_ts=int(clock.now().timestamp() * 1000),
        payload={
            "text": mail.text,
            "subject": mail.subject[:300],
            "envelope_from": mail.envelope_from[:255],
            "message_id": mail.message_id[:255],
            "in_reply_to": mail.in_reply_to[:255],
            "references": [r[:255] for r in mail.references[-10:]],
            "automatic": mail.automatic,
            "automatic_reason": mail.automatic_reason[:100],
        },
    )


def _url_host(host: str) -> str:
    """A listen address as a URL host: ``[::1]`` for IPv6, 127.0.0.1 for 'any'."""
    if host in ("0.0.0.0", "", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
