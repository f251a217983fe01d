"""Runs that survive a crash: who owns a run, its heartbeat, and the metric journals applied.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("host", sa.String(256), nullable=True))
        batch.add_column(sa.Column("pid", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("process_start", sa.String(64), nullable=True))
        batch.add_column(sa.Column("heartbeat", sa.BigInteger, nullable=True))
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_table(
        "run_journals",
        sa.Column("journal_id", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("applied_segment", sa.BigInteger, nullable=False),
        sa.Column("updated", sa.BigInteger, nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name="fk_run_journals_run_id_runs"),
        sa.PrimaryKeyConstraint("journal_id", name="pk_run_journals"),
    )
    op.create_index("ix_run_journals_run_id", "run_journals", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_run_journals_run_id", table_name="run_journals")
    op.drop_table("run_journals")
    op.drop_index("ix_runs_status", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("heartbeat")
        batch.drop_column("process_start")
        batch.drop_column("pid")
        batch.drop_column("host")
