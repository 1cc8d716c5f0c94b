"""Configuration of the executor service in the hub stack of docker-compose.yml (docs/hub.md).

Who is an admin of the service is granted here, by name, and nowhere else: being a hub admin, or
a hub service, grants nothing on the service by itself.
"""

c = get_config()  # noqa: F821 (provided by the config loader)

# Members of the hub group "instructors" (deploy/jupyterhub_config.py) are the instructors: the
# gradebook, everyone's submissions with hidden tests' details, the metrics. The service asks the
# hub for a user's groups (its role in jupyterhub_config.py has read:users:groups).
c.ExecServiceApp.admin_groups = ["instructors"]
# The gradebook stays in SQLite at db_path; for PostgreSQL set DOCKER_EXECUTOR_DB_URL in the
# service's environment, or:
# c.ExecServiceApp.db_url = "postgresql+psycopg://exec:<password>@db:5432/gradebook"
# Hub services that may read GET metrics and nothing else (docs/hub.md, section 6).
c.ExecServiceApp.metrics_readers = ["prometheus"]
# The stack puts no proxy of its own in front of the service: X-Forwarded-For is not believed.
c.ExecServiceApp.trusted_proxies = []
