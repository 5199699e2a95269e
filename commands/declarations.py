"""The implemented commands. Only what is listed here exists for the dispatcher and the help.

Future commands (!lägesbild, !övning, !larmprov, !rapport) are added here when their executors
exist, never before: the help must not promise what the bot cannot do.
"""

from __future__ import annotations

from commands.arguments import (
    ACK_REMARK,
    COMMAND_NAME,
    COUNT,
    HEADLINE,
    INCIDENT,
    INCIDENT_BEFORE_COUNT,
    INCIDENT_BEFORE_TEXT,
    LEVEL,
    TEXT,
    Argument,
)
from commands.declaration import Audience, Declaration, Names, Place
from commands.executors.ack import execute_ack
from commands.executors.alarm import execute_alarm
from commands.executors.help import execute_help
from commands.executors.incident import execute_incident
from commands.executors.standdown import execute_stand_down
from commands.executors.status import execute_status


def declarations() -> tuple[Declaration, ...]:
    return (
        Declaration(
            key="help",
            names=Names(sv="hjälp", nb="hjelp", en="help"),
            who=Audience.ANYONE,
            where=Place.ANY_ROOM,
            summary_key="cmd.help.summary",
            details_key="cmd.help.details",
            execute=execute_help,
            arguments=(Argument("command", COMMAND_NAME, optional=True),),
        ),
        Declaration(
            key="incident",
            names=Names(sv="händelse", nb="hendelse", en="incident"),
            who=Audience.REGION_DUTY_OFFICER,
            where=Place.REGION_ROOM,
            summary_key="cmd.incident.summary",
            details_key="cmd.incident.details",
            execute=execute_incident,
            arguments=(Argument("level", LEVEL), Argument("headline", HEADLINE)),
        ),
        Declaration(
            key="alarm",
            names=Names(sv="larma", nb="varsle", en="alarm"),
            who=Audience.REGION_DUTY_OFFICER,
            where=Place.REGION_ROOM,
            summary_key="cmd.alarm.summary",
            details_key="cmd.alarm.details",
            execute=execute_alarm,
            arguments=(Argument("incident", INCIDENT, optional=True),),
        ),
        Declaration(
            key="ack",
            names=Names(sv="kvittera", nb="kvitter", en="ack"),
            who=Audience.PARTY_MEMBER,
            where=Place.PARTY_ROOM,
            summary_key="cmd.ack.summary",
            details_key="cmd.ack.details",
            execute=execute_ack,
            arguments=(
                Argument("incident", INCIDENT_BEFORE_COUNT, optional=True),
                Argument("count", COUNT, optional=True),
                Argument("remark", ACK_REMARK, optional=True),
            ),
        ),
        Declaration(
            key="status",
            names=Names(sv="status", nb="status", en="status"),
            who=Audience.DUTY_OFFICER_OR_COORDINATOR,
            where=Place.ANY_ROOM,
            summary_key="cmd.status.summary",
            details_key="cmd.status.details",
            execute=execute_status,
            arguments=(Argument("incident", INCIDENT, optional=True),),
        ),
        Declaration(
            key="standdown",
            names=Names(sv="avlarma", nb="avvarsle", en="standdown"),
            who=Audience.REGION_DUTY_OFFICER,
            where=Place.REGION_ROOM,
            summary_key="cmd.standdown.summary",
            details_key="cmd.standdown.details",
            execute=execute_stand_down,
            arguments=(
                Argument("incident", INCIDENT_BEFORE_TEXT, optional=True),
                Argument("remark", TEXT, optional=True),
            ),
        ),
    )
