"""Exercises and test alarms: their own id series, planned exercises, due rows without incident.

- ``incidents.kind`` (``live``, ``exercise``, ``test``): each kind numbers on its own (``H-7``,
  ``Ö-3``, ``T-2``), so ``number`` is unique per kind instead of overall;
- ``exercise_schedules``: planned exercises and test alarms (``S-4``), by command or as the
  occurrences of the config's recurring schedules (``occurrence_key``, unique);
- ``due_times`` rows of a planned exercise (its start, the coordinators' reminders) belong to
  the schedule, not to an incident: ``incident_id`` becomes nullable and ``schedule_id`` names
  the schedule. Every due time stays a row of the one table the due-time pass reads.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.drop_constraint("incidents_number_key", "incidents", type_="unique")
        op.add_column(
            "incidents",
            sa.Column("kind", sa.String(16), nullable=False, server_default="live"),
        )
        op.create_unique_constraint("uq_incidents_kind_number", "incidents", ["kind", "number"])
    else:
        # SQLite names no constraint: give the reflected one a name to drop it by.
        naming = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
        with op.batch_alter_table(
            "incidents", naming_convention=naming, recreate="always"
        ) as batch:
            batch.drop_constraint("uq_incidents_number", type_="unique")
            batch.add_column(
                sa.Column("kind", sa.String(16), nullable=False, server_default="live")
            )
            batch.create_unique_constraint("uq_incidents_kind_number", ["kind", "number"])
    op.create_table(
        "exercise_schedules",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", TS, nullable=False, index=True),
        sa.Column("region_id", sa.String(64), nullable=False),
        sa.Column("scenario", sa.String(500), nullable=False),
        sa.Column("parties", sa.JSON, nullable=False),
        sa.Column("announced", sa.Boolean, nullable=False),
        sa.Column("reminders", sa.JSON, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("occurrence_key", sa.String(255), unique=True),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("settled_at", TS),
        sa.Column("incident_id", sa.String(32)),
    )
    with op.batch_alter_table("due_times") as batch:
        batch.alter_column("incident_id", existing_type=sa.String(32), nullable=True)
        batch.add_column(sa.Column("schedule_id", sa.Integer, nullable=True))
        batch.create_foreign_key(
            "fk_due_times_schedule_id",
            "exercise_schedules",
            ["schedule_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index("ix_due_times_schedule_id", ["schedule_id"])


def downgrade() -> None:
    with op.batch_alter_table("due_times") as batch:
        batch.drop_index("ix_due_times_schedule_id")
        batch.drop_constraint("fk_due_times_schedule_id", type_="foreignkey")
        batch.drop_column("schedule_id")
    op.drop_table("exercise_schedules")
    with op.batch_alter_table("incidents") as batch:
        batch.drop_constraint("uq_incidents_kind_number", type_="unique")
        batch.drop_column("kind")
        batch.create_unique_constraint("uq_incidents_number", ["number"])
