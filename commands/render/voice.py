"""How the bot speaks in one room: its language, its clock face, how it names people.

Times are shown as HH:MM Swedish/Norwegian local time (both countries share the offset), since
that is what duty officers write in their logs; user ids on the bot's own homeserver are
shortened to their localpart, which is what fits on a phone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from bot.domain import ReadinessLevel
from bot.i18n import Catalog
from commands.text import ECHO, excerpt

LOCAL_TIME_ZONE = "Europe/Stockholm"

_LEVEL_KEYS = {
    ReadinessLevel.STAFF: "level.staff",
    ReadinessLevel.REINFORCEMENT: "level.reinforcement",
    ReadinessLevel.DISASTER: "level.disaster",
}
_CHANNEL_NAMES = {
    "room": "escalation.channel.room",
    "sms": "escalation.channel.sms",
    "email": "escalation.channel.email",
}
#: Why a party's room could not be reached (:data:`bot.domain.ROOM_REASONS`).
_ROOM_REASON_KEYS = {
    "not_encrypted": "delivery.room.not_encrypted",
    "not_joined": "delivery.room.not_joined",
    "refused": "delivery.room.refused",
    "too_large": "delivery.room.too_large",
    "not_in_time": "delivery.room.not_in_time",
}
_CHANNEL_KEYS = {
    "room": "channel.room",
    "reaction": "channel.reaction",
    "sms": "channel.sms",
    "email": "channel.email",
    "link": "channel.link",
}


@dataclass(frozen=True)
class Voice:
    catalog: Catalog
    lang: str
    home_server: str | None = None  # user ids on this server are shown without it
    zone: tzinfo | None = None

    def text(self, key: str, **params: Any) -> str:
        """The message ``key`` in this voice's language. Parameters that quote what a person
        typed (:data:`commands.text.ECHO`: an unknown command, a value, a remark, a headline)
        go in as their short, cleaned excerpt, whoever passes them."""
        for name, limit in ECHO.items():
            value = params.get(name)
            if isinstance(value, str):
                params[name] = excerpt(value, limit)
        return self.catalog.text(self.lang, key, **params)

    def time(self, when: datetime) -> str:
        return when.astimezone(self.zone or ZoneInfo(LOCAL_TIME_ZONE)).strftime("%H:%M")

    def duration(self, delta: timedelta) -> str:
        minutes = max(0, int(delta.total_seconds() // 60))
        if minutes < 60:
            return self.text("duration.minutes", minutes=minutes)
        hours, minutes = divmod(minutes, 60)
        if hours < 24:
            return self.text("duration.hours", hours=hours, minutes=minutes)
        days, hours = divmod(hours, 24)
        return self.text("duration.days", days=days, hours=hours)

    def delay(self, delta: timedelta) -> str:
        """How late something is: seconds under a minute (a short outage), else as duration."""
        seconds = max(0, int(delta.total_seconds()))
        if seconds < 60:
            return self.text("duration.seconds", seconds=seconds)
        return self.duration(delta)

    def person(self, user_id: str | None) -> str:
        if not user_id:
            return "?"
        local, _, server = user_id.partition(":")
        return local if server and server == self.home_server else user_id

    def people(self, user_ids: Iterable[str]) -> str:
        return self.join(self.person(u) for u in user_ids)

    def level(self, level: ReadinessLevel) -> str:
        return self.text(_LEVEL_KEYS[level])

    def channel_name(self, channel: str) -> str:
        """The bare name of a channel (``sms``, ``e-post``), for "sms not delivered"."""
        key = _CHANNEL_NAMES.get(channel)
        return self.text(key) if key else channel

    def room_reason(self, kind: str) -> str:
        """Why a room could not be reached, in words (``ej krypterat``); the kind as it is
        if it is none of :data:`bot.domain.ROOM_REASONS`."""
        key = _ROOM_REASON_KEYS.get(kind)
        return self.text(key) if key else kind

    def channel(self, channel: str) -> str:
        key = _CHANNEL_KEYS.get(channel)
        return self.text(key) if key else channel

    @staticmethod
    def join(items: Iterable[str]) -> str:
        return ", ".join(items)

    @staticmethod
    def lines(*parts: str | None) -> str:
        """Lines of a message; None and empty parts are left out."""
        return "\n".join(p for p in parts if p)
