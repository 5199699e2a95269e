"""The bridges' far side for the demo and the tests: a real Kannel and a real mailbox.

:class:`BridgeRig` starts Kannel (bearerbox, smsbox, fakesmsc) with its inbound SMS pointed at
the bot's HTTP endpoint, and a :class:`~bot.demo.mailsink.MailSink` that plays every party's
function mailbox and replies into the bot's SMTP listener. It picks the bot's ports and secrets
first, because Kannel must know where to deliver replies before the bot runs, and hands out
the ``[bridges]`` table and each party's number and address for the config.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from bot.demo.kannel import ThrowawayKannel
from bot.demo.mailsink import MailSink
from bot.demo.ports import free_port
from bridges.sms.kannel import mo_url

#: Our short number: where the phones send their replies.
SHORT_NUMBER = "4600"


class BridgeRig:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.http_port = free_port()
        self.mail_port = free_port()
        self.gateway_secret = secrets.token_urlsafe(24)
        self.bridge_secret = secrets.token_urlsafe(32)
        inbound = mo_url(
            f"http://127.0.0.1:{self.http_port}/sms/inbound?secret={self.gateway_secret}"
        )
        self.kannel = ThrowawayKannel(
            workdir / "kannel", mo_url=inbound, global_sender=SHORT_NUMBER
        )
        self.mail = MailSink(listener=("127.0.0.1", self.mail_port))
        self._numbers: dict[str, str] = {}

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        await self.mail.start()
        try:
            await self.kannel.start()
        except BaseException:
            await self.mail.close()
            raise

    async def close(self) -> None:
        try:
            await self.kannel.aclose()
        finally:
            await self.mail.close()

    async def __aenter__(self) -> BridgeRig:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    # -- who is reached where ------------------------------------------------------------------

    def number(self, party_id: str) -> str:
        """The party's phone (a Rakel terminal's number, in the real world)."""
        if party_id not in self._numbers:
            self._numbers[party_id] = f"+4670111{len(self._numbers) + 1:04d}"
        return self._numbers[party_id]

    @staticmethod
    def address(party_id: str) -> str:
        """The party's function mailbox."""
        return f"tib@{party_id}.example"

    @property
    def bot_address(self) -> str:
        return "larm@larmkedja.example"

    def party_for_number(self, number: str) -> str | None:
        digits = number.lstrip("+")
        return next((p for p, n in self._numbers.items() if n.lstrip("+") == digits), None)

    def secret_file(self, name: str, value: str) -> dict[str, str]:
        """``{ file = … }`` for the config: the secret in a private file of the rig (a config
        file may not carry a secret itself)."""
        folder = self.workdir / "secrets"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / name
        path.write_text(value + "\n", encoding="utf-8")
        path.chmod(0o600)
        return {"file": str(path)}

    def bridges_table(self, **overrides: Any) -> dict[str, Any]:
        """The ``[bridges]`` table for the bot's config, its secrets in files of the rig."""
        table: dict[str, Any] = {
            "secret": self.secret_file("bridge-secret", self.bridge_secret),
            "backoff_initial_s": 0.5,
            "backoff_max_s": 2.0,
            "http": {
                "host": "127.0.0.1",
                "port": self.http_port,
                "public_base_url": f"http://127.0.0.1:{self.http_port}",
                "gateway_secret": self.secret_file("gateway-secret", self.gateway_secret),
            },
            "sms": {
                "gateways": [
                    {
                        "url": self.kannel.sendsms_url,
                        "username": self.kannel.username,
                        "password": self.secret_file("kannel-password", self.kannel.password),
                        "name": "kannel",
                    }
                ],
                "sender_id": SHORT_NUMBER,
                "delivery_timeout_s": 30.0,
            },
            "email": {
                "address": self.bot_address,
                "relays": [{"host": "127.0.0.1", "port": self.mail.port, "starttls": False}],
                "listen_host": "127.0.0.1",
                "listen_port": self.mail_port,
            },
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(table.get(key), dict):
                table[key] = {**table[key], **value}
            else:
                table[key] = value
        return table
