"""Reply codes for acknowledging by SMS/e-mail reply or link, and the wrong-guess counter.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "reply_codes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("outbox_key", sa.String(255), nullable=False, unique=True),
        sa.Column("code_hash", sa.String(64), nullable=False, index=True),
        sa.Column("salt", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("destination", sa.String(255), nullable=False),
        # No foreign key to incidents: like the outbox, a code outlives nothing it names, and
        # the bridges must not depend on the incident tables' life cycle.
        sa.Column("incident_id", sa.String(32), nullable=False, index=True),
        sa.Column("party_id", sa.String(64), nullable=False),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False, index=True),
        sa.Column("used_at", TS),
        sa.Column("used_via", sa.String(16)),
    )
    op.create_index(
        "ix_reply_codes_channel_destination", "reply_codes", ["channel", "destination"]
    )
    op.create_table(
        "reply_code_failures",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("sender", sa.String(255), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
    )
    op.create_index(
        "ix_reply_code_failures_sender", "reply_code_failures", ["channel", "sender", "at"]
    )


def downgrade() -> None:
    op.drop_index("ix_reply_code_failures_sender", table_name="reply_code_failures")
    op.drop_table("reply_code_failures")
    op.drop_index("ix_reply_codes_channel_destination", table_name="reply_codes")
    op.drop_table("reply_codes")
