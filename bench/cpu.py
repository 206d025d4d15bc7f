"""CPU accounting for the benchmarks, from Linux ``/proc``: who used the cores during a run (the load
generator, gunicorn, Celery, PostgreSQL backends, PostgreSQL's own writers, anything else), and a
wait for a quiet machine before measuring."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from benchdb import pg_url

# --- CPU accounting (Linux /proc) --------------------------------------------------------------

CLK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK


def _children(ppid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == ppid:
                out.append(int(entry))
    return out


def _machine_busy() -> tuple[float, float]:
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in parts]
    idle = values[3] + values[4]
    return (sum(values) - idle) / CLK, sum(values) / CLK


PG_AUX = (
    "walwriter",
    "checkpointer",
    "background writer",
    "autovacuum",
    "logical replication",
    "archiver",
    "startup",
    "walsender",
)


def _pg_processes(dbname: str | None) -> tuple[list[int], list[int]]:
    """(backends of ``dbname``, PostgreSQL's own background processes), from /proc."""
    ours, aux = [], []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if not cmd.startswith("postgres: "):
            continue
        if dbname and f" {dbname} " in cmd:
            ours.append(int(entry))
        elif any(word in cmd for word in PG_AUX):
            aux.append(int(entry))
    return ours, aux


class CpuMeter:
    """CPU seconds of this process, the gunicorn workers, the benchmark database's PostgreSQL
    backends, PostgreSQL's background writers, and whatever else ran on the machine meanwhile
    ("other": e.g. someone's test suite, which would make the figures unrepresentative)."""

    def __init__(
        self, gunicorn_pid: int | None, database_url: str | None, celery_pid: int | None = None
    ) -> None:
        self.gunicorn_pid = gunicorn_pid
        self.celery_pid = celery_pid
        self.dbname = pg_url(database_url).rpartition("/")[2].split("?")[0] if database_url else None

    def snapshot(self) -> dict[str, Any]:
        gpids = _children(self.gunicorn_pid) if self.gunicorn_pid else []
        cpids = [self.celery_pid, *_children(self.celery_pid)] if self.celery_pid else []
        ours, aux = _pg_processes(self.dbname)
        busy, total = _machine_busy()
        return {
            "t": time.monotonic(),
            "client": time.process_time(),
            "gunicorn": {p: _proc_cpu(p) for p in gpids},
            "celery": {p: _proc_cpu(p) for p in cpids},
            "postgres": {p: _proc_cpu(p) for p in ours},
            "pg_aux": {p: _proc_cpu(p) for p in aux},
            "busy": busy,
            "total": total,
        }

    @staticmethod
    def delta(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
        wall = b["t"] - a["t"]

        def d(key: str) -> float:
            return sum(v - a[key].get(p, 0.0) for p, v in b[key].items())

        ncpu = os.cpu_count() or 1
        parts = {
            # In cores (1.0 = one core fully busy) over the measured window.
            "client_cores": (b["client"] - a["client"]) / wall,
            "gunicorn_cores": d("gunicorn") / wall,
            "celery_cores": d("celery") / wall,
            "postgres_cores": d("postgres") / wall,
            "pg_aux_cores": d("pg_aux") / wall,
        }
        busy = (b["busy"] - a["busy"]) / (b["total"] - a["total"]) * ncpu
        return {
            "wall_s": round(wall, 2),
            **{k: round(v, 2) for k, v in parts.items()},
            "other_cores": round(max(0.0, busy - sum(parts.values())), 2),
            "machine_busy_cores": round(busy, 2),
        }


def wait_quiet(limit_s: float, threshold: float = 0.25) -> float:
    """Wait (up to ``limit_s``) until the machine is idle for two consecutive seconds, so another
    process's burst does not land in the measurement. Returns the last busy reading, in cores."""
    ncpu = os.cpu_count() or 1
    deadline = time.monotonic() + limit_s
    quiet = 0
    while True:
        b0, t0 = _machine_busy()
        time.sleep(1.0)
        b1, t1 = _machine_busy()
        busy = (b1 - b0) / max(1e-9, t1 - t0) * ncpu
        quiet = quiet + 1 if busy < threshold else 0
        if quiet >= 2 or time.monotonic() >= deadline:
            if quiet < 2:
                print(f"warning: machine still busy ({busy:.2f} cores) before the run", flush=True)
            return busy
