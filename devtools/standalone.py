"""``make airflow``: ``airflow standalone`` with the example DAGs, an embedded Postgres and the demo API.

Open http://localhost:8080 and log in as ``admin`` with the password printed below. Ctrl-C stops it all.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

from devtools.environment import local_environment

ADMIN_PASSWORD = "admin"


def main() -> None:
    """Start everything and wait until interrupted."""
    with local_environment(api_port=int(os.environ.get("NANGO_DEMO_API_PORT", "8700"))) as environment:
        env = {
            **environment.env,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        }
        passwords = environment.airflow_home / "simple_auth_manager_passwords.json.generated"
        passwords.write_text(f'{{"admin": "{ADMIN_PASSWORD}"}}')
        print(f"Postgres: {environment.postgres.uri}\nDemo API: {environment.api.url}")
        print(f"Airflow:  http://localhost:8080  (user admin, password {ADMIN_PASSWORD}); Ctrl-C stops everything")
        with contextlib.suppress(KeyboardInterrupt):
            subprocess.run([sys.executable, "-m", "airflow", "standalone"], env=env, check=False)


if __name__ == "__main__":
    main()
