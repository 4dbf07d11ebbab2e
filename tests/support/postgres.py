"""A throwaway PostgreSQL server for the tests, from the installed server binaries (initdb + pg_ctl).

initdb refuses to run as root, so as root the server runs as the ``postgres`` system user (Debian's
``postgresql`` package creates it) in a temp dir handed to that user.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def server_bin_dir() -> Path | None:
    """Directory of the newest installed initdb (Debian: /usr/lib/postgresql/<major>/bin), else None."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else -1,
    )
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def temporary_postgres(bin_dir: Path, database: str = "nextwatch") -> Iterator[str]:
    """Start a server on a free 127.0.0.1 port, yield a ``postgresql+psycopg://`` URL of a fresh UTF-8
    database, then stop the server and delete its files (also when the block fails)."""
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    root = Path(tempfile.mkdtemp(prefix="nextwatch-pg-"))
    data, log = root / "data", root / "server.log"
    started = False
    try:
        if as_root:
            shutil.chown(root, "postgres", "postgres")

        def run(*args: str) -> None:
            subprocess.run([*prefix, *args], check=True, capture_output=True, text=True, timeout=120)

        run(
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )
        port = _free_port()
        options = f"-p {port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off -c synchronous_commit=off"
        try:
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        except subprocess.CalledProcessError as exc:
            server_log = log.read_text(errors="replace") if log.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {exc.stderr}\n{server_log}") from exc
        started = True
        run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", database)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/{database}"
    finally:
        if started:
            subprocess.run(
                [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)
