"""Every message of an exercise starts with ÖVNING / ØVELSE / EXERCISE: structurally.

Not left to each renderer: the engine's writer (:class:`bot.engine.writer.OutcomeWriter`)
passes every outcome through :class:`ExerciseMarking` before anything is written, and the
marking prefixes every room post, board, file description, SMS and e-mail tied to an exercise or
test alarm (by its id series, ``Ö-3``/``T-2``) with the marker in its destination's language:
the room's, the party's, or the coordination room's. So a template added tomorrow is marked
too. An SMS keeps its first word when it is fitted to its budget (only the end is cut), and an
e-mail's subject is its first line, so both carry it; the e-mail is also told the marker, which
:func:`bridges.email.message.build_mail` checks is in subject and body. Audit entries about an
exercise carry ``exercise`` (its kind), so exercises are told apart from live incidents in the
audit and the metrics.

Marking is idempotent (a body that already starts with the marker is left alone), and nothing
of a live incident is ever touched.
"""

from __future__ import annotations

from dataclasses import replace

from bot.config import Config
from bot.domain import IncidentKind, incident_kind, is_exercise_id
from bot.i18n import Catalog
from commands.outcome import AuditEntry, Delivery, Outcome


class ExerciseMarking:
    def __init__(self, config: Config, catalog: Catalog) -> None:
        self.config = config
        self.catalog = catalog

    def marker(self, lang: str) -> str:
        return self.catalog.text(lang, "exercise.marker")

    def markers(self) -> tuple[str, ...]:
        return tuple(self.marker(lang) for lang in self.catalog.languages)

    def render_marked(self, body: str, lang: str) -> str:
        """``body`` starting with the marker of ``lang`` (unchanged if it already does)."""
        marker = self.marker(lang)
        if body.startswith(marker):
            return body
        return self.catalog.text(lang, "exercise.marked", marker=marker, text=body)

    def _delivery_language(self, delivery: Delivery) -> str:
        party = self.config.party(delivery.party_id) if delivery.party_id else None
        if party is None:
            party = self.config.party_for_destination(delivery.channel, delivery.destination)
        return party.language if party is not None else self.config.healthcare_region.language

    def _delivery(self, delivery: Delivery) -> Delivery:
        lang = self._delivery_language(delivery)
        return replace(
            delivery, body=self.render_marked(delivery.body, lang), marker=self.marker(lang)
        )

    @staticmethod
    def _audit(entry: AuditEntry) -> AuditEntry:
        kind = incident_kind(entry.subject)
        if not is_exercise_id(entry.subject) or kind is None or "exercise" in entry.detail:
            return entry
        return replace(entry, detail={**entry.detail, "exercise": kind.value})

    @staticmethod
    def _about_exercise(outcome: Outcome) -> bool:
        """An outcome whose audit names only exercises (``Ö-3``, ``T-2``) and no live
        incident: its answers that name no incident (a reply to ``!kvittera Ö-3``) are about
        the exercise."""
        kinds = {incident_kind(e.subject) for e in outcome.audit} - {None}
        return bool(kinds) and IncidentKind.LIVE not in kinds

    def __call__(self, outcome: Outcome) -> Outcome:
        room = self.config.room_language
        unnamed = self._about_exercise(outcome)
        # replace(): whatever else an outcome carries (summaries, …) is kept as it is.
        return replace(
            outcome,
            posts=[
                replace(p, body=self.render_marked(p.body, room(p.room_id)))
                if is_exercise_id(p.incident_id) or (unnamed and p.incident_id is None)
                else p
                for p in outcome.posts
            ],
            boards=[
                replace(b, body=self.render_marked(b.body, room(b.room_id)))
                if is_exercise_id(b.incident_id)
                else b
                for b in outcome.boards
            ],
            audit=[self._audit(e) for e in outcome.audit],
            deliveries=[
                self._delivery(d) if is_exercise_id(d.incident_id) else d
                for d in outcome.deliveries
            ],
            attachments=[
                replace(a, body=self.render_marked(a.body, room(a.room_id)))
                if is_exercise_id(a.incident_id)
                else a
                for a in outcome.attachments
            ],
        )
