#!/usr/bin/env python
"""Closed-loop claim/submit benchmark against a real gunicorn + PostgreSQL site.

By default it builds everything itself, on loopback only:

1. drops and recreates a dedicated PostgreSQL database (``--database-url``, default
   ``postgres://postgres@127.0.0.1:5432/crowdmarket_bench``), migrates it and seeds it in-process
   with Django: one requester, one project, one open batch of ``--tasks`` regular tasks (overlap 3)
   plus ``--gold-share`` gold tasks, and ``--workers`` worker users with one API token each;
2. starts the site under gunicorn with production settings (DEBUG off, persistent connections)
   on a free 127.0.0.1 port and waits for ``/healthz``;
3. drives a bounded closed loop from this process (asyncio + aiohttp, one keep-alive connection
   per simulated worker): claim ``--count`` leases, submit each, repeat, for ``--seconds`` or
   until the batch is exhausted;
4. prints throughput, latency percentiles, errors by status, a CPU split (load generator,
   gunicorn, PostgreSQL backends), then SQL checks of the invariants (over-assignment, duplicate
   (task, worker) pairs, counter mismatches) and a one-line JSON summary. Exit status 1 if any
   check fails, 2 if not a single cycle completed.

Against an existing site: ``--url http://127.0.0.1:8000 --batch-id ID --tokens-file F``
(one API key per line, one per simulated worker) and optionally ``--database-url`` for the
checks. ``--seed-only --tokens-file F`` builds such a database and writes the keys for it.

Examples::

    .venv/bin/python bench/claim_submit.py --workers 64 --tasks 100000 --seconds 30
    .venv/bin/python bench/claim_submit.py --workers 64 --tasks 20000 --seconds 30 --count 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchdb import django_setup, pg_url, recreate_database
from cpu import CpuMeter, wait_quiet

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/crowdmarket_bench"

INPUT_SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string", "minLength": 1}},
    "required": ["text"],
    "additionalProperties": False,
}
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"label": {"enum": ["cat", "dog", "other"]}},
    "required": ["label"],
    "additionalProperties": False,
}
# Pre-encoded submit bodies: the load generator does no JSON encoding per request.
ANSWER_BODIES = [json.dumps({"answer": {"label": x}}).encode() for x in ("cat", "dog", "other")]


# --- database and seeding ----------------------------------------------------------------------


def seed(args: argparse.Namespace) -> tuple[int, list[str]]:
    """Migrate and seed the (empty) database. Returns the batch id and one API key per worker."""
    from django.core.management import call_command
    from django.db import connection

    from crowd.models import Worker
    from marketplace.enums import Role
    from marketplace.models import Task, User
    from marketplace.services import budget
    from marketplace.services.accounts import token_create, user_create
    from marketplace.services.batches import batch_create, batch_publish
    from marketplace.services.projects import project_create
    from payments.enums import AccountKind, EntryKind
    from payments.services.ledger import ledger_transfer, platform_account, requester_account

    t0 = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    t1 = time.perf_counter()
    owner = user_create(email="requester@bench.invalid", roles=[Role.REQUESTER])
    project = project_create(
        requester=owner.requester,
        name="bench",
        instructions="Label the animal in the text.",
        input_schema=INPUT_SCHEMA,
        answer_schema=ANSWER_SCHEMA,
    )
    batch = batch_create(
        project=project,
        name="bench batch",
        price_cents=5,
        overlap=args.overlap,
        lease_seconds=args.lease_seconds,
        gold_rate=args.gold_rate if args.gold_share > 0 else 0.0,
        max_claims_per_request=max(args.count, 10),
    )
    n_gold = math.ceil(args.tasks * args.gold_share)
    # Gold tasks interleaved with regular ones, as a real upload would have them.
    every = (args.tasks + n_gold) // n_gold if n_gold else 0
    tasks: list[Task] = []
    regular = gold = 0
    while regular < args.tasks or gold < n_gold:
        i = regular + gold
        if gold < n_gold and (regular >= args.tasks or (every and i % every == every - 1)):
            tasks.append(
                Task(
                    batch=batch,
                    input={"text": f"gold {gold}"},
                    gold_answer={"label": "cat"},
                    is_gold=True,
                    overlap=batch.overlap,
                )
            )
            gold += 1
        else:
            tasks.append(Task(batch=batch, input={"text": f"item {regular}"}, overlap=batch.overlap))
            regular += 1
    Task.objects.bulk_create(tasks, batch_size=5000)
    # Publishing reserves the batch's money: credit it first, as a card payment would.
    ledger_transfer(
        debit=platform_account(AccountKind.STRIPE_CLEARING),
        credit=requester_account(owner.requester.pk, AccountKind.AVAILABLE),
        amount_cents=budget.batch_required_cents(batch),
        idempotency_key=f"bench-credit:batch:{batch.pk}",
        kind=EntryKind.ADJUSTMENT,
    )
    batch = batch_publish(batch=batch)
    users = User.objects.bulk_create(
        [User(email=f"worker{i}@bench.invalid", password="!bench") for i in range(args.workers)]
    )
    Worker.objects.bulk_create([Worker(user=u) for u in users])
    keys = [token_create(user=u, name="bench")[1] for u in users]
    t2 = time.perf_counter()
    # Fresh planner statistics and a visibility map, so every run starts from the same state.
    connection.close()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    connection.close()
    print(
        f"seeded: migrate {t1 - t0:.1f}s, data {t2 - t1:.1f}s, vacuum {time.perf_counter() - t2:.1f}s; "
        f"batch {batch.pk}: {args.tasks} regular + {n_gold} gold tasks, {args.workers} workers",
        flush=True,
    )
    return batch.pk, keys


# --- gunicorn ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(
    args: argparse.Namespace, database_url: str, log_path: Path
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "marketplace.settings.production",
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-secret-key-not-for-production"),
        "CONN_MAX_AGE": str(args.conn_max_age),
        "LOG_LEVEL": "WARNING",
        "DEBUG": "0",
    }
    env.pop("REDIS_URL", None)
    if args.redis_url:
        # Background work (consensus) goes to the Celery worker; rate limits count in Redis.
        env["REDIS_URL"] = args.redis_url
    env["RATE_LIMIT_ENABLED"] = "true" if args.rate_limits == "on" else "false"
    if args.rate_limits == "on":
        # Every request is counted, as in production; the limits themselves are set out of reach,
        # since all simulated workers share one address and some run faster than a person.
        env["RATE_LIMIT_IP"] = env["RATE_LIMIT_CREDENTIAL"] = "100000000/min"
    cmd = [
        str(Path(sys.executable).with_name("gunicorn")),
        "marketplace.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(args.gunicorn_workers),
        "--worker-class",
        args.worker_class,
        "--backlog",
        "2048",
        "--keep-alive",
        "75",
        "--log-level",
        "warning",
        "--preload",
    ]
    if args.worker_class == "gthread":
        cmd += ["--threads", str(args.gunicorn_threads)]
    cmd += args.gunicorn_arg
    log = open(log_path, "wb")  # noqa: SIM115 - kept open for the child's lifetime
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited with {proc.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as resp:
                if resp.status == 200:
                    print(f"gunicorn up: {' '.join(cmd[1:])}  (log {log_path})", flush=True)
                    return proc, url
        except OSError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit(f"gunicorn did not answer /healthz within 60 s; see {log_path}")


def start_celery(args: argparse.Namespace, database_url: str, log_path: Path) -> subprocess.Popen:
    """One Celery worker on the Redis broker, as production runs one beside the web processes
    (here on the same two cores, so its CPU counts against the site's)."""
    import redis

    redis.Redis.from_url(args.redis_url).flushdb()  # no queued work left over from an earlier run
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": args.redis_url,
        "DJANGO_SETTINGS_MODULE": "marketplace.settings.production",
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-secret-key-not-for-production"),
        "LOG_LEVEL": "WARNING",
    }
    cmd = [
        str(Path(sys.executable).with_name("celery")),
        "-A",
        "marketplace",
        "worker",
        "--concurrency",
        str(args.celery_workers),
        "--pool",
        args.celery_pool,
        "--loglevel",
        "WARNING",
        "--without-gossip",
        "--without-mingle",
    ]
    log = open(log_path, "wb")  # noqa: SIM115 - kept open for the child's lifetime
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    print(f"celery up: {' '.join(cmd[1:])}  (log {log_path})", flush=True)
    return proc


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- the closed loop -----------------------------------------------------------------------------


class Stats:
    def __init__(self) -> None:
        self.claim_ms: list[float] = []
        self.submit_ms: list[float] = []
        self.cycles = 0
        self.submits = 0
        self.leases = 0
        self.errors: Counter[str] = Counter()
        self.exhausted_workers = 0
        self.recording = False
        # Paced runs (--rate): how late each measured cycle started against its schedule.
        self.start_lag_ms: list[float] = []


async def run_load(args: argparse.Namespace, url: str, batch_id: int, keys: list[str]) -> tuple[Stats, float]:
    import aiohttp

    stats = Stats()
    claim_url = f"{url}/api/v1/work/batches/{batch_id}/claim"
    submit_base = f"{url}/api/v1/work/assignments/"
    claim_body = json.dumps({"count": args.count}).encode()
    start = time.monotonic()
    measure_from = start + args.warmup
    deadline = measure_from + args.seconds
    timeout = aiohttp.ClientTimeout(total=args.request_timeout)
    loads = json.loads
    perf = time.perf_counter
    errors = stats.errors

    async def worker(n: int, key: str) -> None:
        rng = random.Random(n)
        headers = {"Authorization": f"Token {key}", "Content-Type": "application/json"}
        connector = aiohttp.TCPConnector(limit=1, use_dns_cache=True)
        async with aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        ) as session:
            # Spread the start so 64 workers do not all open their connection in the same tick.
            await asyncio.sleep(rng.random() * min(0.5, args.warmup / 2 or 0.05))
            empty = 0
            # --rate: each worker starts one cycle every `period` seconds, from a random phase;
            # a cycle that ends late starts the next one at once (no catching up in bursts), so
            # a server that cannot keep the pace shows as cycles/s below the rate.
            period = args.workers / args.rate if args.rate else 0.0
            next_at = time.monotonic() + rng.random() * period
            while time.monotonic() < deadline:
                if period:
                    now = time.monotonic()
                    if next_at >= deadline:
                        break
                    if next_at > now:
                        await asyncio.sleep(next_at - now)
                    if stats.recording:
                        stats.start_lag_ms.append(max(0.0, now - next_at) * 1000)
                    next_at = max(next_at, now) + period
                    if time.monotonic() >= deadline:
                        break
                t0 = perf()
                try:
                    async with session.post(claim_url, data=claim_body, headers=headers) as resp:
                        body = await resp.read()
                        status = resp.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    errors[f"claim {type(exc).__name__}"] += 1
                    await asyncio.sleep(0.05)
                    continue
                dt = (perf() - t0) * 1000
                recording = stats.recording
                if recording:
                    stats.claim_ms.append(dt)
                if status != 200:
                    errors[f"claim {status}"] += 1
                    await asyncio.sleep(0.05)
                    continue
                ids = [a["id"] for a in loads(body)["assignments"]]
                if not ids:
                    # Nothing claimable for this worker (or every candidate was locked by a
                    # concurrent claim): retry a couple of times, then call the batch exhausted.
                    empty += 1
                    if empty >= 3:
                        stats.exhausted_workers += 1
                        return
                    await asyncio.sleep(0.05)
                    continue
                empty = 0
                ok = True
                for aid in ids:
                    t0 = perf()
                    sub_headers = {**headers, "Idempotency-Key": f"b{n}-{aid}"}
                    try:
                        async with session.post(
                            f"{submit_base}{aid}/submit", data=rng.choice(ANSWER_BODIES), headers=sub_headers
                        ) as resp:
                            await resp.read()
                            status = resp.status
                    except (aiohttp.ClientError, TimeoutError) as exc:
                        errors[f"submit {type(exc).__name__}"] += 1
                        ok = False
                        continue
                    if recording:
                        stats.submit_ms.append((perf() - t0) * 1000)
                    if status != 200:
                        errors[f"submit {status}"] += 1
                        ok = False
                    elif recording:
                        stats.submits += 1
                if recording:
                    stats.leases += len(ids)
                    if ok:
                        stats.cycles += 1

    async def recorder() -> None:
        await asyncio.sleep(max(0.0, measure_from - time.monotonic()))
        stats.recording = True

    rec = asyncio.create_task(recorder())
    await asyncio.gather(*(worker(n, k) for n, k in enumerate(keys[: args.workers])))
    rec.cancel()
    end = time.monotonic()
    return stats, max(1e-9, end - max(measure_from, start))


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))
    return round(ordered[k], 1)


def lat(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": pct(values, 50),
        "p95": pct(values, 95),
        "p99": pct(values, 99),
        "max": round(max(values), 1) if values else None,
    }


# --- invariant checks ----------------------------------------------------------------------------

CHECKS = {
    "over_assigned": """
        SELECT count(*) FROM (
          SELECT t.id FROM marketplace_task t JOIN crowd_assignment a ON a.task_id = t.id
          WHERE NOT t.is_gold AND a.status IN ('active', 'submitted') {batch}
          GROUP BY t.id, t.overlap HAVING count(*) > t.overlap) x""",
    "duplicate_task_worker": """
        SELECT count(*) FROM (
          SELECT 1 FROM crowd_assignment a WHERE true {abatch}
          GROUP BY a.task_id, a.worker_id HAVING count(*) > 1) x""",
    "counter_mismatch": """
        SELECT count(*) FROM marketplace_task t
        LEFT JOIN (SELECT task_id,
                          count(*) FILTER (WHERE status IN ('active', 'submitted')) AS taken,
                          count(*) FILTER (WHERE status = 'submitted') AS answers
                   FROM crowd_assignment GROUP BY task_id) c ON c.task_id = t.id
        WHERE true {batch} AND (
          CASE WHEN t.is_gold THEN t.slots_taken <> 0 OR t.answers_count <> 0
               ELSE t.slots_taken <> coalesce(c.taken, 0) OR t.answers_count <> coalesce(c.answers, 0)
          END)""",
    "status_mismatch": """
        SELECT count(*) FROM marketplace_task t WHERE NOT t.is_gold {batch}
          AND (t.status = 'complete') <> (t.answers_count >= t.overlap)""",
}
TOTALS = """
    SELECT (SELECT count(*) FROM crowd_assignment WHERE batch_id = %(b)s AND status = 'submitted'),
           (SELECT count(*) FROM crowd_assignment WHERE batch_id = %(b)s AND status = 'active'),
           (SELECT count(*) FROM crowd_assignment WHERE batch_id = %(b)s AND is_gold),
           (SELECT count(*) FROM marketplace_task WHERE batch_id = %(b)s AND status = 'complete')
"""


def run_checks(database_url: str, batch_id: int) -> tuple[dict[str, int], dict[str, int]]:
    import psycopg

    with psycopg.connect(pg_url(database_url), autocommit=True) as conn:
        found = {
            name: conn.execute(
                sql.format(batch="AND t.batch_id = %(b)s", abatch="AND a.batch_id = %(b)s"), {"b": batch_id}
            ).fetchone()[0]
            for name, sql in CHECKS.items()
        }
        submitted, active, gold, complete = conn.execute(TOTALS, {"b": batch_id}).fetchone()
    totals = {"submitted": submitted, "active": active, "gold_assignments": gold, "tasks_complete": complete}
    return found, totals


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=16, help="simulated workers (closed-loop clients)")
    p.add_argument("--tasks", type=int, default=20000, help="regular tasks in the batch")
    p.add_argument("--seconds", type=float, default=30.0, help="measured duration")
    p.add_argument("--count", type=int, default=1, help="leases per claim request")
    p.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="paced closed loop: target cycles/s over all workers (each worker at most rate/workers); "
        "0 = no think time (saturate)",
    )
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring")
    p.add_argument("--url", help="target an existing site instead of starting one")
    p.add_argument("--batch-id", type=int, help="with --url: the open batch to claim from")
    p.add_argument("--tokens-file", help="with --url: worker API keys, one a line; with --seed-only: written")
    p.add_argument("--seed-only", action="store_true", help="recreate + seed the database, write keys, exit")
    p.add_argument("--database-url", default=None, help=f"default {DEFAULT_DB} (with --url: checks only)")
    p.add_argument("--overlap", type=int, default=3)
    p.add_argument("--gold-share", type=float, default=0.05, help="gold tasks per regular task (0 = none)")
    p.add_argument("--gold-rate", type=float, default=0.1, help="batch gold_rate")
    p.add_argument("--lease-seconds", type=int, default=3600)
    p.add_argument("--gunicorn-workers", type=int, default=3)
    p.add_argument("--gunicorn-threads", type=int, default=2, help="threads per worker (gthread)")
    p.add_argument("--worker-class", default="gthread", choices=["gthread", "sync"])
    p.add_argument("--gunicorn-arg", action="append", default=[], help="extra gunicorn argument (repeatable)")
    p.add_argument("--conn-max-age", type=int, default=600)
    p.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3"),
        help="broker for a Celery worker started beside gunicorn ('' = none: background work runs eagerly)",
    )
    p.add_argument("--celery-workers", type=int, default=1, help="Celery worker concurrency")
    p.add_argument("--celery-pool", default="prefork", choices=["prefork", "solo", "threads"])
    p.add_argument(
        "--rate-limits",
        choices=["on", "off"],
        default="on",
        help="count every request against the rate limits (in Redis with --redis-url), limits out of reach",
    )
    p.add_argument("--request-timeout", type=float, default=30.0)
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=60.0,
        help="wait up to this long for an idle machine before the run (0 = don't)",
    )
    p.add_argument("--keep-server", action="store_true", help="leave gunicorn running (prints its URL)")
    args = p.parse_args(argv)
    if args.url and not (args.batch_id and args.tokens_file):
        p.error("--url needs --batch-id and --tokens-file")
    if args.seed_only and not args.tokens_file:
        p.error("--seed-only needs --tokens-file")
    for name in ("workers", "tasks", "count"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1")
    if args.rate < 0:
        p.error("--rate must be >= 0")
    if not 0 < args.seconds <= 600:
        p.error("--seconds must be in (0, 600]")
    if args.url and not args.url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        p.error("--url must be a loopback address")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    server: subprocess.Popen | None = None
    celery: subprocess.Popen | None = None
    database_url = args.database_url or (None if args.url else DEFAULT_DB)
    try:
        if args.url:
            url, batch_id = args.url.rstrip("/"), args.batch_id
            keys = [line.strip() for line in Path(args.tokens_file).read_text().splitlines() if line.strip()]
            if len(keys) < args.workers:
                raise SystemExit(
                    f"{args.tokens_file} holds {len(keys)} keys; --workers {args.workers} needs one each"
                )
        else:
            recreate_database(database_url)
            django_setup(database_url)
            batch_id, keys = seed(args)
            if args.seed_only:
                Path(args.tokens_file).write_text("\n".join(keys) + "\n")
                print(f"batch_id={batch_id} tokens={args.tokens_file}")
                return 0
            log_path = Path(tempfile.gettempdir()) / f"bench-gunicorn-{os.getpid()}.log"
            server, url = start_gunicorn(args, database_url, log_path)
            if args.redis_url:
                celery = start_celery(args, database_url, log_path.with_name(log_path.stem + "-celery.log"))

        if args.wait_quiet > 0:
            wait_quiet(args.wait_quiet)
        meter = CpuMeter(server.pid if server else None, database_url, celery.pid if celery else None)
        cpu: dict[str, Any] = {}

        async def drive() -> tuple[Stats, float]:
            async def sample() -> None:
                await asyncio.sleep(args.warmup)
                before = meter.snapshot()
                try:
                    await asyncio.sleep(3600)
                finally:
                    cpu["before"] = before

            sampler = asyncio.create_task(sample())
            result = await run_load(args, url, batch_id, keys)
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            cpu["after"] = meter.snapshot()
            return result

        stats, elapsed = asyncio.run(drive())
        cpu_split = CpuMeter.delta(cpu["before"], cpu["after"]) if "before" in cpu else {}
    finally:
        if not args.keep_server:
            stop(server)
            stop(celery)
        elif server is not None:
            print(f"server left running at {url} (pid {server.pid})")

    rps = (stats.submits + len(stats.claim_ms)) / elapsed
    server_label = "external" if args.url else f"{args.worker_class} w={args.gunicorn_workers}"
    if not args.url and args.worker_class == "gthread":
        server_label += f" t={args.gunicorn_threads}"
    if not args.url:
        server_label += f" + celery c={args.celery_workers}" if args.redis_url else " (eager tasks)"
        server_label += f", rate limits {args.rate_limits}"
    summary: dict[str, Any] = {
        "workers": args.workers,
        "tasks": args.tasks,
        "count": args.count,
        "seconds": round(elapsed, 1),
        "server": server_label,
        "cycles_per_s": round(stats.cycles / elapsed, 1),
        "submits_per_s": round(stats.submits / elapsed, 1),
        "requests_per_s": round(rps, 1),
        "rate": args.rate or None,
        "claim_ms": lat(stats.claim_ms),
        "submit_ms": lat(stats.submit_ms),
        "late_starts": (
            round(sum(1 for v in stats.start_lag_ms if v > 10) / len(stats.start_lag_ms), 4)
            if stats.start_lag_ms
            else None
        ),
        "errors": dict(sorted(stats.errors.items())),
        "exhausted": stats.exhausted_workers == args.workers,
        "cpu": cpu_split,
    }
    print(
        f"\n== {summary['server']}, {args.workers} workers, {args.tasks} tasks, count {args.count}, "
        f"{elapsed:.1f} s measured after {args.warmup:g} s warm-up"
        + (f", paced at {args.rate:g} cycles/s" if args.rate else ", no think time")
    )
    print(f"cycles/s   {summary['cycles_per_s']:>8}   (cycle = 1 claim of {args.count} + its submits)")
    print(f"submits/s  {summary['submits_per_s']:>8}")
    print(f"requests/s {summary['requests_per_s']:>8}")
    for name in ("claim_ms", "submit_ms"):
        s = summary[name]
        print(
            f"{name[:-3]:<7} n={s['n']:<7} p50={s['p50']} ms  p95={s['p95']} ms  p99={s['p99']} ms  "
            f"max={s['max']} ms"
        )
    if args.rate:
        print(
            f"pace       target {args.rate:g} cycles/s; cycles started > 10 ms behind schedule: "
            f"{100 * (summary['late_starts'] or 0):.1f}%"
        )
    print(f"errors     {summary['errors'] or 'none'}")
    if stats.exhausted_workers:
        print(f"exhausted  {stats.exhausted_workers}/{args.workers} workers found nothing left to claim")
    if cpu_split:
        print("cpu (cores) " + ", ".join(f"{k}={v}" for k, v in cpu_split.items()))

    rc = 0 if stats.cycles else 2
    if database_url:
        violations, totals = run_checks(database_url, batch_id)
        summary["violations"] = violations
        summary["totals"] = totals
        print(f"checks     {violations}")
        print(f"totals     {totals}")
        if any(violations.values()):
            print("FAIL: invariant violations found", file=sys.stderr)
            rc = 1
    else:
        print("checks     skipped (no --database-url)")
    print(json.dumps(summary, separators=(",", ":")))
    return rc


if __name__ == "__main__":
    sys.exit(main())
