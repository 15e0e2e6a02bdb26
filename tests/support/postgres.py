"""A throwaway PostgreSQL cluster on loopback, for the shared-search tests and CI.

``initdb`` and ``pg_ctl`` refuse to run as root, so as root the cluster belongs to the ``postgres``
system user (``runuser``); its folder, socket and log live in a temporary folder, it listens on
127.0.0.1 on a free port with ``trust`` authentication (loopback only), and it is stopped with
``pg_ctl stop -m immediate``. Standard library only: ``.ci/run`` calls it before the test
environment exists.

    python tests/support/postgres.py start DIR   # prints the SQLAlchemy URL of database "optuna"
    python tests/support/postgres.py stop DIR
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
from pathlib import Path

USER, DATABASE = "ccss", "optuna"
#: where CI's cluster is announced to the tests
URL_VARIABLE = "CCSS_TEST_POSTGRES_URL"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries, or the cluster would not start; the message says which."""


def bin_dir() -> Path:
    """The folder with ``initdb``/``pg_ctl``: on PATH, else Debian's ``/usr/lib/postgresql/<v>/bin``."""
    found = shutil.which("initdb") or shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if debian:
        return Path(debian[-1]).parent
    raise PostgresUnavailable("PostgreSQL server binaries (initdb, pg_ctl) are not installed")


def _as_owner(command: list[str]) -> list[str]:
    """``command`` run as the cluster's owner: the ``postgres`` user when we are root."""
    if os.geteuid() != 0:
        return command
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise PostgresUnavailable("running as root and there is no 'postgres' user to own the cluster") from exc
    return ["runuser", "-u", "postgres", "--", *command]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(command: list[str]) -> None:
    done = subprocess.run(_as_owner(command), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise PostgresUnavailable(
            f"{' '.join(command[:2])} failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-800:]}"
        )


def start(folder: Path) -> str:
    """Initialise and start a cluster in ``folder`` (created); returns the URL of its ``optuna`` database."""
    pg = bin_dir()
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    data, sockets = folder / "data", folder / "sockets"
    sockets.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        for path in (folder, sockets):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        for parent in folder.parents:  # the owner must be able to reach its folder
            if parent == Path("/"):
                break
            os.chmod(parent, os.stat(parent).st_mode | 0o011)
    port = _free_port()
    _run([str(pg / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-instructions"])
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={sockets} -c fsync=off"
    _run(
        [
            str(pg / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(folder / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        ]
    )
    (folder / "port").write_text(str(port))
    _run([str(pg / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", USER, DATABASE])
    return f"postgresql+psycopg://{USER}@127.0.0.1:{port}/{DATABASE}"


def new_database(url: str, name: str) -> str:
    """Create database ``name`` on the server of ``url`` (a test's own, so studies never mix); its URL."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return str(sqlalchemy.engine.make_url(url).set(database=name).render_as_string(hide_password=False))


def stop(folder: Path) -> None:
    """Stop the cluster of ``folder`` if it runs (no error when it does not)."""
    data = Path(folder).resolve() / "data"
    if not (data / "postmaster.pid").exists():
        return
    subprocess.run(
        _as_owner([str(bin_dir() / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
        capture_output=True,
        text=True,
        timeout=120,
    )


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        if argv[0] == "start":
            print(start(Path(argv[1])))
        else:
            stop(Path(argv[1]))
    except PostgresUnavailable as exc:
        print(f"PostgreSQL unavailable: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
