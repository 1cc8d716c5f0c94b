"""SQL the store shares with its migrations (portable: SQLite and PostgreSQL)."""

#: The gradebook's rows (table ``grades``) computed from every submission.
BACKFILL = """
INSERT INTO grades (user_name, exercise_id, best, last, max_score, attempts, late, last_at, last_id)
SELECT g.user_name, g.exercise_id, g.best, s.score, s.max_score, g.attempts, g.late_count > 0,
       s.submitted_at, g.last_id
FROM (SELECT user_name, exercise_id, max(score) AS best, count(*) AS attempts,
             sum(CASE WHEN late THEN 1 ELSE 0 END) AS late_count, max(id) AS last_id
      FROM submissions GROUP BY user_name, exercise_id) AS g
JOIN submissions AS s ON s.id = g.last_id
"""
