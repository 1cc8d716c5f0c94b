"""The gradebook: each submission also keeps the exercise's version (a hash of its tests), the
code, the program's output and message, the duration and whether it was late; tests keep their
messages (hidden ones in full, shown to instructors only). ``user`` becomes ``user_name`` (a
reserved word in PostgreSQL), and the gradebook's queries get their indexes.

Rows of revision 0001 are kept: their new fields get empty values (no code, version "", on time).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("submissions_user", table_name="submissions")
    with op.batch_alter_table("submissions") as batch:
        batch.alter_column(
            "user",
            new_column_name="user_name",
            existing_type=sa.Text,
            type_=sa.String(255),
            existing_nullable=False,
        )
        batch.alter_column(
            "exercise_id", existing_type=sa.Text, type_=sa.String(255), existing_nullable=False
        )
        batch.alter_column(
            "status", existing_type=sa.Text, type_=sa.String(32), existing_nullable=False
        )
        batch.add_column(
            sa.Column("exercise_version", sa.String(64), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("code", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("stdout", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("stderr", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("message", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("duration_ms", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("late", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_index("ix_submissions_user", "submissions", ["user_name", "id"])
    op.create_index(
        "ix_submissions_exercise_user", "submissions", ["exercise_id", "user_name", "id"]
    )
    # One row per student and exercise, kept up to date with each submission (in its
    # transaction): the gradebook reads it instead of grouping every submission.
    op.create_table(
        "grades",
        sa.Column("user_name", sa.String(255), primary_key=True),
        sa.Column("exercise_id", sa.String(255), primary_key=True),
        sa.Column("best", sa.Float(precision=53), nullable=False),
        sa.Column("last", sa.Float(precision=53), nullable=False),
        sa.Column("max_score", sa.Float(precision=53), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("late", sa.Boolean, nullable=False),
        sa.Column("last_at", sa.Float(precision=53), nullable=False),
        sa.Column("last_id", sa.Integer, nullable=False),
    )
    op.execute(BACKFILL)


#: The grades of the submissions already there (portable SQL: SQLite and PostgreSQL).
BACKFILL = """
INSERT INTO grades (user_name, exercise_id, best, last, max_score, attempts, late, last_at, last_id)
SELECT g.user_name, g.exercise_id, g.best, s.score, s.max_score, g.attempts, g.late_count > 0,
       s.submitted_at, g.last_id
FROM (SELECT user_name, exercise_id, max(score) AS best, count(*) AS attempts,
             sum(CASE WHEN late THEN 1 ELSE 0 END) AS late_count, max(id) AS last_id
      FROM submissions GROUP BY user_name, exercise_id) AS g
JOIN submissions AS s ON s.id = g.last_id
"""


def downgrade() -> None:
    op.drop_table("grades")
    op.drop_index("ix_submissions_exercise_user", table_name="submissions")
    op.drop_index("ix_submissions_user", table_name="submissions")
    with op.batch_alter_table("submissions") as batch:
        for name in (
            "late",
            "duration_ms",
            "message",
            "stderr",
            "stdout",
            "code",
            "exercise_version",
        ):
            batch.drop_column(name)
        batch.alter_column(
            "user_name",
            new_column_name="user",
            existing_type=sa.String(255),
            type_=sa.Text,
            existing_nullable=False,
        )
    op.create_index("submissions_user", "submissions", ["user", "id"])
