"""The submission record as the executor service kept it before the gradebook: one SQLite table
written by hand (user, exercise, time, status, score, max, each test's status as JSON).

A database made then has no ``alembic_version`` table; the store stamps it with this revision
before upgrading, so its rows are carried over by the next one.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "submissions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user", sa.Text, nullable=False),
        sa.Column("exercise_id", sa.Text, nullable=False),
        # Epoch seconds; double precision (a 4-byte REAL would round them to minutes).
        sa.Column("submitted_at", sa.Float(precision=53), nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("score", sa.Float(precision=53), nullable=False),
        sa.Column("max_score", sa.Float(precision=53), nullable=False),
        sa.Column("tests", sa.Text, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("submissions_user", "submissions", ["user", "id"])


def downgrade() -> None:
    op.drop_index("submissions_user", table_name="submissions")
    op.drop_table("submissions")
