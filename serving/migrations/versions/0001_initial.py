"""Tickets, their append-only events, dispatch feedback, arbitration decisions, clarifications, API keys.

Revision ID: 0001
Revises:
"""
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("external_id", sa.String(128), unique=True),
        sa.Column("title", sa.String(500)),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("address", sa.String(500)),
        sa.Column("channel", sa.String(64)),
        sa.Column("reported_at", sa.String(64)),
        sa.Column("phone_hash", sa.String(64), index=True),
        sa.Column("phone_masked", sa.String(32)),
        sa.Column("status", sa.String(20), nullable=False, index=True),
        sa.Column("suggestion", sa.JSON),
        sa.Column("model_version", sa.String(128)),
        sa.Column("lead", sa.String(64)),
        sa.Column("co", sa.String(400)),
        sa.Column("needs_arbitration", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("arbitration_reasons", sa.JSON),
        sa.Column("arbitration_since", TS, index=True),
        sa.Column("return_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("claimed_by", sa.String(128)),
        sa.Column("claimed_at", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "ticket_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id"), nullable=False, index=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("data", sa.JSON),
    )
    op.create_table(
        "dispatch_feedback",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id"), nullable=False, index=True),
        sa.Column("dispatcher", sa.String(128), nullable=False),
        sa.Column("suggested_lead", sa.String(64)),
        sa.Column("suggested_co", sa.String(400)),
        sa.Column("lead", sa.String(64), nullable=False),
        sa.Column("co", sa.String(400), nullable=False, server_default=""),
        sa.Column("accepted", sa.Boolean, nullable=False),
        sa.Column("model_version", sa.String(128)),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id"), nullable=False, index=True),
        sa.Column("arbitrator", sa.String(128), nullable=False),
        sa.Column("lead", sa.String(64), nullable=False),
        sa.Column("co", sa.String(400), nullable=False, server_default=""),
        sa.Column("rationale", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "clarifications",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id"), nullable=False, index=True),
        sa.Column("decision_id", sa.Integer, sa.ForeignKey("decisions.id"), nullable=False),
        sa.Column("proposed_by", sa.String(128), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS),
    )
    # The history is append-only: the database itself refuses to change or delete an event.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION ticket_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'ticket_events is append-only'; END $$""")
        op.execute("""CREATE TRIGGER ticket_events_no_change BEFORE UPDATE OR DELETE ON ticket_events
                      FOR EACH ROW EXECUTE FUNCTION ticket_events_append_only()""")
    else:
        for what in ("UPDATE", "DELETE"):
            op.execute(f"""CREATE TRIGGER ticket_events_no_{what.lower()} BEFORE {what} ON ticket_events
                           BEGIN SELECT RAISE(ABORT, 'ticket_events is append-only'); END""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ticket_events_no_change ON ticket_events")
        op.execute("DROP FUNCTION IF EXISTS ticket_events_append_only()")
    for t in ("api_keys", "clarifications", "decisions", "dispatch_feedback", "ticket_events", "tickets"):
        op.drop_table(t)
