"""Rate limits for every request, counted in Redis so all web processes share them.

One middleware in front of everything (the API, allauth's pages and headless endpoints, the
admin) counts each request in fixed windows:

- ``ip``: every request from one client address;
- ``credential``: every request carrying one API token, allauth session token or session cookie
  (keyed by a hash of it, so no database lookup is needed first);
- ``anonymous``: requests from one address that carry no credential at all;
- ``auth``: POSTs to the log-in, sign-up, password-reset and token-creation endpoints, per
  address, much stricter;
- ``auth_failures``: responses that refused a credential the request carried (401), or a failed
  headless log-in, per address. Past this limit the auth endpoints answer 429 at once and every
  further refusal is turned into a 429, so guessing learns nothing more while valid clients behind
  the same address keep working.

Counting costs one round trip to Redis per request (one script: ``INCR`` each window, ``EXPIRE``
on its first count). DRF's ``SimpleRateThrottle`` keeps a list of every request's timestamp per key and costs
two round trips per throttle, which at thousands of requests a minute is far more work. Without
Redis (the demo) the counters live in the process. If Redis does not answer, requests are let
through and a warning is logged: a broken limiter must not take the site down.

A refused request gets 429, a ``Retry-After`` header (seconds until its window ends) and the API's
error body ``{"code": "throttled", "message", "detail": {"limit", "retry_after"}}``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

_PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
_PERIODS |= {"d": 86400, "day": 86400}

# Requests that are never counted: the load balancer's health check and static files.
_EXEMPT = re.compile(r"^/(healthz$|static/)")
# Where credentials are made or guessed; only POSTs count here.
_AUTH = re.compile(
    r"^/(accounts/(login|signup|password/reset)/"
    r"|_allauth/[^/]+/v1/auth/(login|signup|password/request|code/request|reauthenticate)"
    r"|admin/login/"
    r"|api/v1/tokens$)"
)
# A refused headless log-in answers 400/401; the web log-in form re-renders with 200 and is counted
# by the ``auth`` limit alone (allauth's own ``login_failed`` limit covers it per e-mail address).
_HEADLESS_LOGIN = re.compile(r"^/_allauth/[^/]+/v1/auth/login$")


@dataclass(frozen=True)
class Rate:
    """``count`` requests per ``seconds``; written ``"<count>/<unit>"`` (``120/min``, ``5/s``)."""

    count: int
    seconds: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        try:
            count, unit = text.strip().split("/")
            seconds = _PERIODS[unit.strip().lower()]
            rate = cls(int(count), seconds)
        except (ValueError, KeyError) as exc:
            raise ImproperlyConfigured(
                f"A rate limit is written '<count>/<s|min|hour|day>', not {text!r}."
            ) from exc
        if rate.count < 1:
            raise ImproperlyConfigured(f"A rate limit needs a count of at least 1, not {text!r}.")
        return rate


@dataclass(frozen=True)
class Bucket:
    """One counter this request touches: which limit, whose, and the window it falls in."""

    limit: str
    rate: Rate
    key: str
    retry_after: int


class LocalCounters:
    """Fixed-window counters in this process (no Redis: the demo, or tests that ask for it)."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def hit(self, keys: list[tuple[str, int]], read: list[str], now: float) -> tuple[list[int], list[int]]:
        with self._lock:
            if len(self._counts) > 100_000:  # forget windows that are over
                self._counts = {k: v for k, v in self._counts.items() if v[0] > now}
            counts = []
            for key, ttl in keys:
                ends, n = self._counts.get(key, (0.0, 0))
                if ends <= now:
                    ends, n = now + ttl, 0
                self._counts[key] = (ends, n + 1)
                counts.append(n + 1)
            current = [self._counts.get(key, (0.0, 0)) for key in read]
            return counts, [n if ends > now else 0 for ends, n in current]


# Counts every key of KEYS[1..n] (n = ARGV[1]; each expires ARGV[1 + i] seconds after its first
# count) and reads the rest: one command, one reply.
_COUNT_SCRIPT = """
local n = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  if i <= n then
    local count = redis.call('INCR', key)
    if count == 1 then redis.call('EXPIRE', key, ARGV[1 + i]) end
    out[i] = count
  else
    out[i] = tonumber(redis.call('GET', key) or '0')
  end
end
return out
"""


class RedisCounters:
    """Fixed-window counters in Redis, shared by every process: one round trip, one command (a
    script: a pipeline of ``SET NX EX`` + ``INCR`` per key cost a third more client CPU)."""

    def __init__(self, url: str) -> None:
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25)
        self._no_script = redis.exceptions.NoScriptError
        self._sha = hashlib.sha1(_COUNT_SCRIPT.encode()).hexdigest()

    def hit(self, keys: list[tuple[str, int]], read: list[str], now: float) -> tuple[list[int], list[int]]:
        args = [len(keys), *(ttl for _, ttl in keys)]
        names = [key for key, _ in keys] + read
        try:
            reply = self._client.execute_command("EVALSHA", self._sha, len(names), *names, *args)
        except self._no_script:  # a restarted Redis has forgotten the script
            reply = self._client.execute_command("EVAL", _COUNT_SCRIPT, len(names), *names, *args)
        counts = [int(n) for n in reply]
        return counts[: len(keys)], counts[len(keys) :]


@dataclass(frozen=True)
class Limits:
    """The configured limits, read from settings once (and again if a test changes them)."""

    enabled: bool
    rates: dict[str, Rate]
    prefix: str
    num_proxies: int
    counters: LocalCounters | RedisCounters

    @classmethod
    def from_settings(cls) -> Limits:
        url = settings.RATE_LIMIT_REDIS_URL
        return cls(
            enabled=settings.RATE_LIMIT_ENABLED,
            rates={name: Rate.parse(text) for name, text in settings.RATE_LIMITS.items()},
            prefix=settings.RATE_LIMIT_KEY_PREFIX,
            num_proxies=settings.NUM_PROXIES,
            counters=RedisCounters(url) if url else LocalCounters(),
        )


_limits: Limits | None = None


def limits() -> Limits:
    global _limits
    if _limits is None:
        _limits = Limits.from_settings()
    return _limits


def _reset(*, setting: str, **kwargs: Any) -> None:
    global _limits
    if setting.startswith("RATE_LIMIT") or setting == "NUM_PROXIES":
        _limits = None


setting_changed.connect(_reset)


def client_ip(request: HttpRequest, num_proxies: int) -> str:
    """The client's address: ``REMOTE_ADDR``, or behind ``num_proxies`` trusted proxies the
    address the outermost of them saw (``X-Forwarded-For`` read from the right, as DRF does)."""
    remote = request.META.get("REMOTE_ADDR", "") or "unknown"
    if num_proxies <= 0:
        return remote
    forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
    if not forwarded:
        return remote
    return forwarded[-min(num_proxies, len(forwarded))]


def credential(request: HttpRequest) -> str | None:
    """A short hash of whatever credential the request carries, or ``None``."""
    meta = request.META
    raw = meta.get("HTTP_AUTHORIZATION") or meta.get("HTTP_X_SESSION_TOKEN")
    if not raw:
        raw = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
        if not raw:
            return None
        raw = "session:" + raw
    return hashlib.blake2b(raw.encode("utf-8", "replace"), digest_size=12).hexdigest()


def _bucket(cfg: Limits, limit: str, who: str, now: float) -> Bucket:
    rate = cfg.rates[limit]
    window = int(now // rate.seconds)
    ends = (window + 1) * rate.seconds
    return Bucket(limit, rate, f"{cfg.prefix}:{limit}:{who}:{window}", max(1, int(ends - now + 0.999)))


def too_many(bucket: Bucket) -> HttpResponse:
    body = {
        "code": "throttled",
        "message": f"Too many requests ({bucket.limit} limit: {bucket.rate.count} per "
        f"{bucket.rate.seconds} s). Retry in {bucket.retry_after} s.",
        "detail": {"limit": bucket.limit, "retry_after": bucket.retry_after},
    }
    response = HttpResponse(json.dumps(body), status=429, content_type="application/json")
    response["Retry-After"] = str(bucket.retry_after)
    return response


class RateLimitMiddleware:
    """Counts every request against its limits before any view runs (the lean claim and submit
    path included) and refuses the ones over a limit with 429."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        cfg = limits()
        if not cfg.enabled or _EXEMPT.match(request.path_info):
            return self.get_response(request)
        now = time.time()
        ip = client_ip(request, cfg.num_proxies)
        who = credential(request)
        buckets = [_bucket(cfg, "ip", ip, now)]
        buckets.append(_bucket(cfg, "credential", who, now) if who else _bucket(cfg, "anonymous", ip, now))
        is_auth = request.method == "POST" and bool(_AUTH.match(request.path_info))
        if is_auth:
            buckets.append(_bucket(cfg, "auth", ip, now))
        failures = _bucket(cfg, "auth_failures", ip, now)
        # The failures so far are read only where they decide before the view: the auth endpoints.
        read = [failures.key] if is_auth else []
        try:
            counts, failed = cfg.counters.hit([(b.key, b.rate.seconds) for b in buckets], read, now)
        except Exception:
            logger.warning("rate limits not counted: the counter store did not answer", exc_info=True)
            return self.get_response(request)
        for bucket, n in zip(buckets, counts, strict=True):
            if n > bucket.rate.count:
                return too_many(bucket)
        if failed and failed[0] >= failures.rate.count:
            return too_many(failures)
        response = self.get_response(request)
        if (who and response.status_code == 401) or (
            is_auth and response.status_code == 400 and _HEADLESS_LOGIN.match(request.path_info)
        ):
            try:
                (n,), _ = cfg.counters.hit([(failures.key, failures.rate.seconds)], [], now)
            except Exception:
                logger.warning("failed authentication not counted", exc_info=True)
                return response
            if n > failures.rate.count:
                return too_many(failures)
        return response
