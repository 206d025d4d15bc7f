"""A real Celery worker on the Redis broker, for tests that must see work leave the request.

The test app is switched from eager mode to Redis (a separate database number, so nothing in the
default one is touched) and back again afterwards. Start a worker in the test with
``celery.contrib.testing.worker.start_worker(app, pool="solo", perform_ping_check=False)``: it runs
in a thread of the test process, so monkeypatches reach it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from kombu import pools

from marketplace.celery import app

TEST_REDIS_DB = 15
OVERRIDES = (
    "broker_url",
    "result_backend",
    "task_always_eager",
    "result_expires",
    "worker_hijack_root_logger",
)


def _on_test_db(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{TEST_REDIS_DB}"))


def _drop_connections() -> None:
    """Forget pooled broker connections and the cached result backend, so the next use reads conf.

    Kombu keeps its pools in a process-wide registry keyed by connection URL: closing one pool in
    place would leave a dead pool behind for the next test, so the registry is reset instead.
    """
    pools.reset()
    app._pool = None
    amqp = app.__dict__.get("amqp")  # a cached property: only reset it if it was built
    if amqp is not None:
        amqp._producer_pool = None
    app._backend_cache = None
    app._local.__dict__.pop("backend", None)


@pytest.fixture
def redis_celery() -> Iterator[str]:
    """The project's Celery app on Redis db 15, not eager, for one test; restored afterwards."""
    url = _on_test_db(os.environ["REDIS_URL"])
    saved = {key: app.conf[key] for key in OVERRIDES}
    app.conf.update(
        broker_url=url,
        result_backend=url,
        task_always_eager=False,
        result_expires=60,
        # The embedded worker must not take over the root logger of the test process.
        worker_hijack_root_logger=False,
    )
    _drop_connections()
    app.control.purge()
    try:
        yield url
    finally:
        app.control.purge()
        app.conf.update(saved)
        _drop_connections()


def queued() -> int:
    with app.connection_for_write() as conn:
        return conn.default_channel.queue_declare(app.conf.task_default_queue).message_count


def wait_for(check: Callable[[], bool], *, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()
