"""The implemented commands. Only what is listed here exists for the dispatcher and the help.

Future commands (!begär, !självtest) are added here when their executors
exist, never before: the help must not promise what the bot cannot do.
"""

from __future__ import annotations

from commands.arguments import (
    ACK_REMARK,
    COMMAND_NAME,
    COUNT,
    EXERCISE_WORDS,
    FIELDS,
    HEADLINE,
    INCIDENT,
    INCIDENT_BEFORE_COUNT,
    INCIDENT_BEFORE_TEXT,
    INCIDENT_PREFIXED,
    LEVEL,
    TEXT,
    Argument,
)
from commands.declaration import Audience, Declaration, Names, Place
from commands.executors.ack import execute_ack
from commands.executors.alarm import execute_alarm
from commands.executors.help import execute_help
from commands.executors.incident import execute_incident
from commands.executors.log import execute_log
from commands.executors.report import execute_report
from commands.executors.sitrep import execute_sitrep
from commands.executors.standdown import execute_stand_down
from commands.executors.status import execute_status
from commands.exercise.commands import execute_exercise, execute_testalarm


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
            acts_on_edit=True,
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
            key="sitrep",
            names=Names(sv="lägesbild", nb="situasjon", en="sitrep"),
            who=Audience.REGION_DUTY_OFFICER,
            where=Place.REGION_ROOM,
            summary_key="cmd.sitrep.summary",
            details_key="cmd.sitrep.details",
            execute=execute_sitrep,
            arguments=(
                Argument("incident", INCIDENT_PREFIXED, optional=True),
                Argument("fields", FIELDS, optional=True),
            ),
        ),
        Declaration(
            key="log",
            names=Names(sv="logg", nb="logg", en="log"),
            who=Audience.STAFF,
            where=Place.ANY_ROOM,
            summary_key="cmd.log.summary",
            details_key="cmd.log.details",
            execute=execute_log,
            arguments=(
                Argument("incident", INCIDENT_PREFIXED, optional=True),
                Argument("text", TEXT),
            ),
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
        Declaration(
            key="report",
            names=Names(sv="rapport", nb="rapport", en="report"),
            who=Audience.DUTY_OFFICER_OR_COORDINATOR,
            where=Place.ANY_ROOM,
            summary_key="cmd.report.summary",
            details_key="cmd.report.details",
            execute=execute_report,
            arguments=(Argument("incident", INCIDENT, optional=True),),
        ),
        Declaration(
            key="exercise",
            names=Names(sv="övning", nb="øvelse", en="exercise"),
            who=Audience.COORDINATOR,
            where=Place.COORDINATION_ROOM,
            summary_key="cmd.exercise.summary",
            details_key="cmd.exercise.details",
            execute=execute_exercise,
            arguments=(Argument("words", EXERCISE_WORDS, optional=True),),
        ),
        Declaration(
            key="testalarm",
            names=Names(sv="larmprov", nb="varslingsprøve", en="testalarm"),
            who=Audience.COORDINATOR,
            where=Place.COORDINATION_ROOM,
            summary_key="cmd.testalarm.summary",
            details_key="cmd.testalarm.details",
            execute=execute_testalarm,
            arguments=(Argument("words", EXERCISE_WORDS, optional=True),),
        ),
    )
