"""The domain of the alarm chain: incidents, parties, acknowledgements, pledges, escalation.

Plain Python on purpose: nothing here knows about Matrix, SQL or HTTP. "Now" comes from an
injected :class:`bot.clock.Clock` and every operation returns a decision (what happened, who
must be told) that the command layer turns into messages. That keeps the rules testable in
milliseconds and keeps transport failures from ever corrupting an incident's state.
"""

from bot.domain.ack import Ack, Pledge
from bot.domain.chain import AlarmChain, ChainParty, Requirement, chain_template
from bot.domain.delivery import NOTHING_LEFT, DeliveryProblem, next_channel
from bot.domain.errors import (
    AlreadyAlarmed,
    AlreadyStoodDown,
    DomainError,
    IllegalTransition,
    InvalidPledge,
    NotAlarmed,
    NotInChain,
)
from bot.domain.escalation import (
    LATE_TOLERANCE,
    NO_ESCALATION,
    PLEDGE,
    STEP,
    Action,
    Due,
    EscalationPolicy,
    EscalationStep,
    FiredStep,
)
from bot.domain.history import AuditHead, IncidentHistory, Recorded, SentMessage
from bot.domain.incident import (
    EXERCISE_KINDS,
    ID_PREFIXES,
    AckRecorded,
    ChainStarted,
    Incident,
    IncidentKind,
    IncidentState,
    ReadinessLevel,
    StoodDown,
    format_incident_id,
    incident_kind,
    is_exercise_id,
    parse_incident_id,
    parse_incident_number,
)
from bot.domain.incident_log import MAX_ENTRY, LogEntry
from bot.domain.party import Party, PartyKind
from bot.domain.repository import AlarmLookup, AlarmRef, IncidentRepository
from bot.domain.situation_report import (
    CLEAR,
    METHANE,
    ChangeKind,
    FieldChange,
    InvalidSituationReport,
    NoChange,
    ParsedUpdate,
    Problem,
    ProblemKind,
    ReportField,
    ReportTemplate,
    SituationReport,
    SituationReportVersion,
    parse_update,
)

__all__ = [
    "AuditHead",
    "IncidentHistory",
    "Recorded",
    "SentMessage",
    "CLEAR",
    "MAX_ENTRY",
    "METHANE",
    "ChangeKind",
    "FieldChange",
    "InvalidSituationReport",
    "LogEntry",
    "NoChange",
    "ParsedUpdate",
    "Problem",
    "ProblemKind",
    "ReportField",
    "ReportTemplate",
    "SituationReport",
    "SituationReportVersion",
    "parse_update",
    "NOTHING_LEFT",
    "DeliveryProblem",
    "next_channel",
    "LATE_TOLERANCE",
    "NO_ESCALATION",
    "PLEDGE",
    "STEP",
    "Ack",
    "Action",
    "Due",
    "EscalationPolicy",
    "EscalationStep",
    "FiredStep",
    "AckRecorded",
    "AlarmChain",
    "AlarmLookup",
    "AlarmRef",
    "AlreadyAlarmed",
    "AlreadyStoodDown",
    "ChainParty",
    "ChainStarted",
    "DomainError",
    "IllegalTransition",
    "Incident",
    "IncidentRepository",
    "IncidentState",
    "InvalidPledge",
    "NotAlarmed",
    "NotInChain",
    "Party",
    "PartyKind",
    "Pledge",
    "ReadinessLevel",
    "Requirement",
    "StoodDown",
    "chain_template",
    "EXERCISE_KINDS",
    "ID_PREFIXES",
    "IncidentKind",
    "format_incident_id",
    "incident_kind",
    "is_exercise_id",
    "parse_incident_id",
    "parse_incident_number",
]
