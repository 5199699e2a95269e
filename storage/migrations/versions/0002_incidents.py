"""Incidents of the alarm chain and the parties each chain alarms.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("number", sa.Integer, nullable=False, unique=True),
        sa.Column("region_id", sa.String(64), nullable=False, index=True),
        sa.Column("state", sa.String(32), nullable=False, index=True),
        sa.Column("level", sa.String(32), nullable=False),
        sa.Column("confirmed_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("document", sa.JSON, nullable=False),
    )
    op.create_table(
        "incident_parties",
        sa.Column(
            "incident_id",
            sa.String(32),
            sa.ForeignKey("incidents.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("party_id", sa.String(64), primary_key=True, index=True),
    )


def downgrade() -> None:
    op.drop_table("incident_parties")
    op.drop_table("incidents")
