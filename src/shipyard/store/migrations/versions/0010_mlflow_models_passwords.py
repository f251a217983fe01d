"""What the MLflow client and team logins need: logged models and their files, deleted
(restorable) runs and experiments, and users' password hashes.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "logged_models",
        sa.Column("model_id", sa.String(64), nullable=False),
        sa.Column("experiment_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("model_type", sa.String(256), nullable=False, server_default=""),
        sa.Column("user", sa.String(256), nullable=False, server_default=""),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.experiment_id"],
            name="fk_logged_models_experiment_id_experiments",
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name="fk_logged_models_run_id_runs"),
        sa.PrimaryKeyConstraint("model_id", name="pk_logged_models"),
    )
    op.create_index("ix_logged_models_experiment_id", "logged_models", ["experiment_id"])
    op.create_table(
        "logged_model_files",
        sa.Column("model_id", sa.String(64), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["logged_models.model_id"],
            name="fk_logged_model_files_model_id_logged_models",
        ),
        sa.PrimaryKeyConstraint("model_id", "path", name="pk_logged_model_files"),
    )
    op.create_index("ix_logged_model_files_digest", "logged_model_files", ["digest"])
    # Plain ALTER TABLE ADD COLUMN (both databases have it): a batch copy of ``experiments``
    # on SQLite would have to drop a table that ``runs`` refers to.
    op.add_column("runs", sa.Column("deleted_at", sa.BigInteger, nullable=True))
    op.add_column("experiments", sa.Column("deleted_at", sa.BigInteger, nullable=True))
    op.add_column("users", sa.Column("password_hash", sa.String(256), nullable=True))


def downgrade() -> None:
    # SQLite (3.35+) drops a plain column in place; a batch copy could not drop ``experiments``.
    for table, column in (
        ("users", "password_hash"),
        ("experiments", "deleted_at"),
        ("runs", "deleted_at"),
    ):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    op.drop_index("ix_logged_model_files_digest", table_name="logged_model_files")
    op.drop_table("logged_model_files")
    op.drop_index("ix_logged_models_experiment_id", table_name="logged_models")
    op.drop_table("logged_models")
