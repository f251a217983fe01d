"""Pipelines (runs, step runs, the step cache, lineage) and the tuning journal.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "pipeline_runs",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("pipeline", sa.String(200), nullable=False),
        sa.Column("source", sa.String(1000), nullable=False),
        sa.Column("params", sa.Text, nullable=False, server_default="{}"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("executor", sa.String(32), nullable=False),
        sa.Column("user", sa.String(256), nullable=False),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("heartbeat", sa.BigInteger, nullable=True),
        sa.Column("start_time", sa.BigInteger, nullable=False),
        sa.Column("end_time", sa.BigInteger, nullable=True),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("run_id", name="pk_pipeline_runs"),
    )
    op.create_index("ix_pipeline_runs_pipeline_start", "pipeline_runs", ["pipeline", "start_time"])
    op.create_table(
        "step_runs",
        sa.Column("step_run_id", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("function", sa.String(500), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("cache_hit", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("cache_key", sa.String(64), nullable=False, server_default=""),
        sa.Column("key_parts", sa.Text, nullable=False, server_default="{}"),
        sa.Column("upstream", sa.Text, nullable=False, server_default="[]"),
        sa.Column("outputs", sa.Text, nullable=False, server_default="[]"),
        sa.Column("reused_from", sa.String(32), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("start_time", sa.BigInteger, nullable=True),
        sa.Column("end_time", sa.BigInteger, nullable=True),
        sa.Column("logs_digest", sa.String(64), nullable=True),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("step_run_id", name="pk_step_runs"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["pipeline_runs.run_id"], name="fk_step_runs_run_id_pipeline_runs"
        ),
        sa.UniqueConstraint("run_id", "name", name="uq_step_runs_run_id_name"),
    )
    op.create_table(
        "step_cache",
        sa.Column("cache_key", sa.String(64), nullable=False),
        sa.Column("outputs", sa.Text, nullable=False),
        sa.Column("step_run_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("cache_key", name="pk_step_cache"),
    )
    op.create_table(
        "pipeline_lineage",
        sa.Column("step_run_id", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("ref", sa.String(300), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.PrimaryKeyConstraint(
            "step_run_id", "kind", "ref", "direction", name="pk_pipeline_lineage"
        ),
    )
    op.create_index("ix_pipeline_lineage_kind_ref", "pipeline_lineage", ["kind", "ref"])
    op.create_index("ix_pipeline_lineage_run_id", "pipeline_lineage", ["run_id"])
    op.create_table(
        "tuning_journal",
        sa.Column("seq", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("log", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_tuning_journal"),
    )


def downgrade() -> None:
    op.drop_table("tuning_journal")
    op.drop_index("ix_pipeline_lineage_run_id", table_name="pipeline_lineage")
    op.drop_index("ix_pipeline_lineage_kind_ref", table_name="pipeline_lineage")
    op.drop_table("pipeline_lineage")
    op.drop_table("step_cache")
    op.drop_table("step_runs")
    op.drop_index("ix_pipeline_runs_pipeline_start", table_name="pipeline_runs")
    op.drop_table("pipeline_runs")
