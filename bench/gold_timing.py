#!/usr/bin/env python
"""Can a worker tell a control (gold) task from a regular one by how long its submit takes?

Seeds a batch with overlap 1 (every regular answer completes its task, no gold answer does) and as
many gold as regular tasks at gold rate 0.5, starts the site as ``claim_submit.py`` does (gunicorn
with production settings, a Celery worker on Redis, rate limits on), and drives ``--workers``
clients at a steady pace: claim one lease, submit it, record the submit's latency. Afterwards the
database says which leases were gold, and the script prints the submit latency of each kind and the
AUC of telling them apart by it: the probability that a random regular submit took longer than a
random gold one (0.5 = no better than a coin; Mann-Whitney U / (n_regular * n_gold)), with a
bootstrap 95 % interval.

``--site-root DIR`` serves the site from another checkout (e.g. a ``git worktree`` of an earlier
commit) with this script's load and analysis, so two commits can be compared run for run::

    .venv/bin/python bench/gold_timing.py --cycles 3000
    .venv/bin/python bench/gold_timing.py --cycles 3000 --site-root /tmp/crowdmarket-prev
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import claim_submit
from benchdb import django_setup, pg_url, recreate_database
from cpu import wait_quiet

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/crowdmarket_goldtiming"


async def drive(
    args: argparse.Namespace, url: str, batch_id: int, keys: list[str]
) -> list[tuple[int, float]]:
    """Each client: claim 1, submit it, at ``rate / workers`` cycles/s. Returns (assignment, ms)."""
    import aiohttp

    samples: list[tuple[int, float]] = []
    errors: dict[str, int] = {}
    claim_url = f"{url}/api/v1/work/batches/{batch_id}/claim"
    per_client = args.cycles // args.workers
    period = args.workers / args.rate

    async def client(n: int, key: str) -> None:
        rng = random.Random(n)
        headers = {"Authorization": f"Token {key}", "Content-Type": "application/json"}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
            await asyncio.sleep(rng.random() * period)
            for i in range(per_client + args.warmup_cycles):
                started = time.monotonic()
                async with session.post(claim_url, data=b'{"count": 1}', headers=headers) as resp:
                    body = await resp.json()
                if resp.status != 200 or not body["assignments"]:
                    errors[f"claim {resp.status}"] = errors.get(f"claim {resp.status}", 0) + 1
                    await asyncio.sleep(period)
                    continue
                aid = body["assignments"][0]["id"]
                answer = json.dumps({"answer": {"label": rng.choice(["cat", "dog", "other"])}}).encode()
                t0 = time.perf_counter()
                async with session.post(
                    f"{url}/api/v1/work/assignments/{aid}/submit", data=answer, headers=headers
                ) as resp:
                    await resp.read()
                    status = resp.status
                ms = (time.perf_counter() - t0) * 1000
                if status != 200:
                    errors[f"submit {status}"] = errors.get(f"submit {status}", 0) + 1
                elif i >= args.warmup_cycles:
                    samples.append((aid, ms))
                await asyncio.sleep(max(0.0, started + period - time.monotonic()))

    await asyncio.gather(*(client(n, k) for n, k in enumerate(keys[: args.workers])))
    if errors:
        print(f"errors: {errors}", flush=True)
    return samples


def auc(positive: list[float], negative: list[float]) -> float:
    """P(a random positive > a random negative), ties counting one half (Mann-Whitney U / n1 n2)."""
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(positive, negative, alternative="two-sided").statistic) / (
        len(positive) * len(negative)
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cycles", type=int, default=3000, help="measured claim + submit cycles in all")
    p.add_argument("--warmup-cycles", type=int, default=20, help="unmeasured cycles per client first")
    p.add_argument("--workers", type=int, default=8, help="concurrent clients")
    p.add_argument("--rate", type=float, default=60.0, help="cycles/s over all clients")
    p.add_argument("--database-url", default=DEFAULT_DB)
    p.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3"))
    p.add_argument("--site-root", default=str(claim_submit.ROOT), help="checkout that serves the site")
    p.add_argument("--wait-quiet", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = p.parse_args()

    site = Path(args.site_root).resolve()
    claim_submit.ROOT = site  # gunicorn and Celery start in that checkout
    site_args = claim_submit.parse_args(
        [
            "--workers",
            str(args.workers),
            "--tasks",
            str(args.cycles),
            "--overlap",
            "1",
            "--gold-share",
            "1.0",
            "--gold-rate",
            "0.5",
            "--redis-url",
            args.redis_url,
        ]
    )
    recreate_database(args.database_url)
    django_setup(args.database_url)
    batch_id, keys = claim_submit.seed(site_args)
    log = Path(tempfile.gettempdir()) / f"bench-goldtiming-{os.getpid()}.log"
    server, url = claim_submit.start_gunicorn(site_args, args.database_url, log)
    celery = claim_submit.start_celery(site_args, args.database_url, log.with_name(log.stem + "-celery.log"))
    try:
        if args.wait_quiet:
            wait_quiet(args.wait_quiet)
        samples = asyncio.run(drive(args, url, batch_id, keys))
    finally:
        claim_submit.stop(server)
        claim_submit.stop(celery)

    import psycopg

    with psycopg.connect(pg_url(args.database_url)) as conn:
        gold = dict(
            conn.execute(
                "SELECT id, is_gold FROM crowd_assignment WHERE id = ANY(%s)", ([a for a, _ in samples],)
            ).fetchall()
        )
    regular_ms = [ms for a, ms in samples if not gold[a]]
    gold_ms = [ms for a, ms in samples if gold[a]]
    rng = random.Random(args.seed)
    boot = sorted(
        auc([rng.choice(regular_ms) for _ in regular_ms], [rng.choice(gold_ms) for _ in gold_ms])
        for _ in range(200)
    )

    def median(values: list[float]) -> float:
        return round(sorted(values)[len(values) // 2], 2)

    result: dict[str, Any] = {
        "site": str(site),
        "commit": os.popen(f"git -C {site} rev-parse --short HEAD").read().strip(),
        "regular": {"n": len(regular_ms), "median_ms": median(regular_ms)},
        "gold": {"n": len(gold_ms), "median_ms": median(gold_ms)},
        "auc": round(auc(regular_ms, gold_ms), 3),
        "auc_95": [round(boot[4], 3), round(boot[195], 3)],
    }
    print(
        f"submit latency: regular median {result['regular']['median_ms']} ms (n={len(regular_ms)}), "
        f"gold median {result['gold']['median_ms']} ms (n={len(gold_ms)})\n"
        f"AUC of telling them apart by latency: {result['auc']} "
        f"(95% {result['auc_95'][0]}-{result['auc_95'][1]})"
    )
    print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
