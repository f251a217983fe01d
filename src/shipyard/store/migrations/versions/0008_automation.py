"""Continuous training: automations, their trigger events and each event's transitions.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "automations",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("armed_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_automations"),
    )
    op.create_table(
        "automation_events",
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("automation", sa.String(200), nullable=False),
        sa.Column("trigger", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("detected_at", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("model", sa.String(200), nullable=False, server_default=""),
        sa.Column("pipeline_run_id", sa.String(32), nullable=True),
        sa.Column("candidate", sa.String(300), nullable=True),
        sa.Column("deployment", sa.String(200), nullable=True),
        sa.Column("gate", sa.Text, nullable=False, server_default="{}"),
        sa.Column("approval", sa.Text, nullable=False, server_default="{}"),
        sa.Column("rollout", sa.Text, nullable=False, server_default="{}"),
        sa.Column("details", sa.Text, nullable=False, server_default="{}"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("event_id", name="pk_automation_events"),
    )
    op.create_index(
        "ix_automation_events_automation_detected_at",
        "automation_events",
        ["automation", "detected_at"],
    )
    op.create_index("ix_automation_events_candidate", "automation_events", ["candidate"])
    op.create_index(
        "ix_automation_events_pipeline_run_id", "automation_events", ["pipeline_run_id"]
    )
    op.create_index("ix_automation_events_source", "automation_events", ["source"])
    op.create_table(
        "automation_log",
        sa.Column("id", _BigId, nullable=False, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("details", sa.Text, nullable=False, server_default="{}"),
        sa.PrimaryKeyConstraint("id", name="pk_automation_log"),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["automation_events.event_id"],
            name="fk_automation_log_event_id_automation_events",
        ),
    )
    op.create_index("ix_automation_log_event_id", "automation_log", ["event_id"])


def downgrade() -> None:
    op.drop_index("ix_automation_log_event_id", table_name="automation_log")
    op.drop_table("automation_log")
    for index in ("source", "pipeline_run_id", "candidate", "automation_detected_at"):
        op.drop_index(f"ix_automation_events_{index}", table_name="automation_events")
    op.drop_table("automation_events")
    op.drop_table("automations")
