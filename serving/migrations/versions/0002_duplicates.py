"""Duplicate detection results on tickets (issue 6 §3): duplicate_of, cluster_id, dup_kind, dup_score.

All nullable: NULL means the duplicate index has not seen the ticket yet (it is rebuilt from the stored
tickets at start-up and fills them in).

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as b:
        b.add_column(sa.Column("duplicate_of", sa.Integer, nullable=True))
        b.add_column(sa.Column("cluster_id", sa.Integer, nullable=True))
        b.add_column(sa.Column("dup_kind", sa.String(16), nullable=True))
        b.add_column(sa.Column("dup_score", sa.Float, nullable=True))
    op.create_index("ix_tickets_cluster_id", "tickets", ["cluster_id"])


def downgrade() -> None:
    op.drop_index("ix_tickets_cluster_id", table_name="tickets")
    with op.batch_alter_table("tickets") as b:
        for c in ("dup_score", "dup_kind", "cluster_id", "duplicate_of"):
            b.drop_column(c)
