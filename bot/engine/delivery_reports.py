"""What Kannel's delivery reports say about our SMS, stored on the row they are about.

A report names its SMS by the reference the row's SMS carried (``o<row id>``). The newest state
goes into ``payload["delivery"]``; a final state (delivered, failed) is not overwritten by a
late intermediate report. "Not delivered" fails the row (``outbox.undelivered``) and hands it
to the fallback in the same transaction; "delivered" for a row still queued (an earlier
attempt's answer was lost) marks it sent, so it is not sent again.
"""

from __future__ import annotations

import logging

from bot.clock import Clock
from bot.engine.recording import ProblemHandler
from bridges.destinations import mask_destination, scrub
from bridges.sms.kannel import DeliveryReport, DeliveryStatus
from bridges.sms.sender import row_id_of_ref
from storage import audit, outbox
from storage.database import Database
from storage.models import OutboxRow

log = logging.getLogger(__name__)

ACTOR = "larmkedja:outbox"
_FINAL = (DeliveryStatus.DELIVERED.value, DeliveryStatus.FAILED.value)


def reported_delivered(row: OutboxRow) -> bool:
    """Whether a delivery report said this SMS reached the handset."""
    delivery = (row.payload or {}).get("delivery") or {}
    return bool(delivery.get("status") == DeliveryStatus.DELIVERED.value)


class DeliveryReports:
    def __init__(
        self, db: Database, clock: Clock, *, on_problem: ProblemHandler | None = None
    ) -> None:
        self.db = db
        self.clock = clock
        self.on_problem = on_problem

    async def record(self, report: DeliveryReport) -> None:
        row_id = row_id_of_ref(report.ref)
        if row_id is None:
            log.info("delivery report for unknown ref %r ignored", report.ref[:64])
            return
        now = self.clock.now()
        async with self.db.write() as session:
            row = await session.get(OutboxRow, row_id)
            if row is None or row.channel != "sms":
                log.info("delivery report for %s matches no SMS row; ignored", report.ref)
                return
            payload = dict(row.payload or {})
            previous = payload.get("delivery") or {}
            if previous.get("status") in _FINAL and not report.final:
                return
            payload["delivery"] = {
                "status": report.status.value,
                "code": report.code,
                "at": now.isoformat(),
                **({"ts": report.ts.isoformat()} if report.ts is not None else {}),
            }
            row.payload = payload  # a new dict: JSON columns do not track changes in place
            masked = mask_destination(row.destination)
            if report.status is DeliveryStatus.FAILED and row.status != outbox.FAILED:
                reason = scrub(
                    f"not delivered: {report.code} {report.answer}".strip(), row.destination, []
                )
                if row.status in (outbox.SENT, outbox.SENDING):
                    row.status = outbox.FAILED
                row.last_error = reason
                log.warning("outbox %s: SMS to %s %s", row.idempotency_key, masked, reason)
                await audit.append(
                    session,
                    at=now,
                    actor=ACTOR,
                    action="outbox.undelivered",
                    subject=masked,
                    detail={"key": row.idempotency_key, "channel": "sms", "reason": reason},
                )
                if self.on_problem is not None:
                    await self.on_problem(session, row, reason, now)
                return
            if report.status is DeliveryStatus.DELIVERED and row.status == outbox.QUEUED:
                # An earlier attempt got through after all (its answer was lost): no resend.
                row.status, row.next_attempt_at = outbox.SENT, None
                row.sent_at, row.remote_id = now, report.ref
            log.info("outbox %s: SMS to %s %s", row.idempotency_key, masked, report.status.value)
