"""From the config to the domain: copy parties and build the chain template.

The copy is what freezes the chain: the domain keeps these values, not references to the
config, so editing the config file during an incident cannot change an alarm in flight.
"""

from __future__ import annotations

from bot.config import Config, OtherPartyConfig, PartyConfig
from bot.domain import AlarmChain, Party, PartyKind, chain_template


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
    )


def chain_for(config: Config, region_id: str) -> AlarmChain:
    """The chain a new alarm of ``region_id`` gets under the current config."""
    return chain_template(
        region_id,
        [domain_party(p) for p in config.all_parties()],
        config.chain.required_transports,
    )
