"""Monitoring alerts: the events alert rules raised and where each rule stands.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_events",
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("metric", sa.String(250), nullable=False),
        sa.Column("value", sa.Double, nullable=True),
        sa.Column("threshold", sa.Double, nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("window_start", sa.BigInteger, nullable=True),
        sa.Column("window_end", sa.BigInteger, nullable=True),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
        sa.Column("delivery", sa.String(16), nullable=False, server_default="none"),
        sa.Column("delivery_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("recorded", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_alert_events"),
    )
    op.create_index("ix_alert_events_at", "alert_events", ["at"])
    op.create_index("ix_alert_events_recorded", "alert_events", ["recorded"])
    op.create_index("ix_alert_events_model_rule_at", "alert_events", ["model", "rule", "at"])
    op.create_table(
        "alert_state",
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("consecutive", sa.Integer, nullable=False),
        sa.Column("firing", sa.Boolean, nullable=False),
        sa.Column("last_window_end", sa.BigInteger, nullable=True),
        sa.Column("updated", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("model", "rule", name="pk_alert_state"),
    )


def downgrade() -> None:
    op.drop_table("alert_state")
    op.drop_index("ix_alert_events_model_rule_at", table_name="alert_events")
    op.drop_index("ix_alert_events_recorded", table_name="alert_events")
    op.drop_index("ix_alert_events_at", table_name="alert_events")
    op.drop_table("alert_events")
