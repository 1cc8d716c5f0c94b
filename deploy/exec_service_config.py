"""Configuration of the executor service in the hub stack of docker-compose.yml (docs/hub.md).

Who is an admin of the service is granted here, by name, and nowhere else: being a hub admin, or
a hub service, grants nothing on the service by itself.
"""

c = get_config()  # noqa: F821 (provided by the config loader)

# Members of the hub group "instructors" (deploy/jupyterhub_config.py) may list everyone's
# submissions and read the metrics.
c.ExecServiceApp.admin_groups = ["instructors"]
# Hub services that may read GET metrics and nothing else (docs/hub.md, section 6).
c.ExecServiceApp.metrics_readers = ["prometheus"]
# The stack puts no proxy of its own in front of the service: X-Forwarded-For is not believed.
c.ExecServiceApp.trusted_proxies = []
