"""Deployments: routes, strategy and state; their events, lineage, live route counts, leases.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("target", sa.String(16), nullable=False),
        sa.Column("strategy", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False, server_default=""),
        sa.Column("routes", sa.Text, nullable=False),
        sa.Column("spec", sa.Text, nullable=False, server_default="{}"),
        sa.Column("analysis", sa.Text, nullable=False, server_default="{}"),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_deployments"),
    )
    op.create_table(
        "deployment_events",
        sa.Column("seq", _BigId, autoincrement=True, nullable=False),
        sa.Column("deployment", sa.String(128), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("routes", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=False, server_default="{}"),
        sa.PrimaryKeyConstraint("seq", name="pk_deployment_events"),
    )
    op.create_index(
        "ix_deployment_events_deployment_seq", "deployment_events", ["deployment", "seq"]
    )
    op.create_table(
        "deployment_lineage",
        sa.Column("deployment", sa.String(128), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("first_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("deployment", "model", "version", name="pk_deployment_lineage"),
    )
    op.create_index(
        "ix_deployment_lineage_model_version", "deployment_lineage", ["model", "version"]
    )
    op.create_table(
        "route_stats",
        sa.Column("deployment", sa.String(128), nullable=False),
        sa.Column("route", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("server", sa.String(64), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("counts", sa.Text, nullable=False),
        sa.Column("updated", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("deployment", "route", "version", "server", name="pk_route_stats"),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("expires", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_table("route_stats")
    op.drop_index("ix_deployment_lineage_model_version", table_name="deployment_lineage")
    op.drop_table("deployment_lineage")
    op.drop_index("ix_deployment_events_deployment_seq", table_name="deployment_events")
    op.drop_table("deployment_events")
    op.drop_table("deployments")
