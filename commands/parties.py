"""From the config to the domain: copy parties and policies and build the chain template.

The copy is what freezes the chain: the domain keeps these values, not references to the
config, so editing the config file during an incident can change neither an alarm in flight
nor how its parties are reminded and escalated.
"""

from __future__ import annotations

from datetime import timedelta

from bot.config import Config, EscalationConfig, OtherPartyConfig, PartyConfig
from bot.domain import (
    Action,
    AlarmChain,
    EscalationPolicy,
    EscalationStep,
    Party,
    PartyKind,
    chain_template,
)


def domain_party(config_party: PartyConfig) -> Party:
    if isinstance(config_party, OtherPartyConfig):
        kind = PartyKind(config_party.kind)
        region = config_party.region
    else:
        kind = PartyKind.REGION
        region = None
    return Party(
        id=config_party.id,
        name=config_party.name,
        kind=kind,
        language=config_party.language,
        room=config_party.room,
        duty_officers=tuple(config_party.duty_officers),
        members=tuple(config_party.members),
        email=tuple(config_party.email),
        sms=tuple(config_party.sms),
        region=region,
        backup_contacts=tuple(config_party.backup_contacts),
    )


def _minutes(value: float) -> timedelta:
    return timedelta(minutes=value)


def domain_policy(config: EscalationConfig) -> EscalationPolicy:
    return EscalationPolicy(
        steps=tuple(
            EscalationStep(_minutes(s.after_min), Action(s.action), tuple(s.channels))
            for s in config.steps
        ),
        repeat_every=_minutes(config.repeat_every_min),
        max_repeats=config.max_repeats,
        pledge_reminder=None
        if config.pledge_reminder_min is None
        else _minutes(config.pledge_reminder_min),
    )


def chain_for(config: Config, region_id: str) -> AlarmChain:
    """The chain a new alarm of ``region_id`` gets under the current config, each party with
    its escalation policy (its own, or the default)."""
    return chain_template(
        region_id,
        [domain_party(p) for p in config.all_parties()],
        config.chain.required_transports,
        {p.id: domain_policy(config.policy_for(p)) for p in config.all_parties()},
    )
