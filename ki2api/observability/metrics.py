"""Prometheus metrics: requests, latencies, upstream errors, token refreshes, streams in flight, credentials,
credits spent.

Under gunicorn, the master (web/gunicorn_hooks.py) sets PROMETHEUS_MULTIPROC_DIR before any worker starts: every worker
then writes its figures to files there and a scrape (answered by any worker) adds them all up. Without it
(the tests' Flask client, `flask run`) the figures live in the app's own registry. Labels carry route
templates, known model names, statuses, error kinds, account names and client-key labels (web/auth.key_label)
only: never a key, token, prompt or raw path.
"""
from __future__ import annotations

import glob
import os
import struct
from typing import Any, Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from ..models import model_names

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
TTFB_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 600.0)
_KNOWN_MODELS = frozenset(model_names())
_LABEL_MAX = 64

# Each account's pool row by name (pool_status.account_rows; see credential_families).
AccountStates = Callable[[], Mapping[str, Mapping[str, Any]]]


def model_label(model: object) -> str:
    """A model name safe as a label value: a known model's name, '' for none, 'other' for anything else."""
    if not isinstance(model, str) or not model:
        return ""
    name = model.strip().lower()
    return name if name in _KNOWN_MODELS else "other"


def _label(value: object) -> str:
    return str(value)[:_LABEL_MAX] if value is not None else ""


class Metrics:
    """The metric objects of one worker process, and the scrape of all of them."""

    def __init__(self, multiproc_dir: str | None = None) -> None:
        self.multiproc_dir = multiproc_dir
        self.registry = None if multiproc_dir else CollectorRegistry()
        reg = self.registry
        self.requests = Counter("ki2api_requests", "Requests answered, by route template, model, status and stream",
                                ["route", "model", "status", "stream"], registry=reg)
        self.ttfb = Histogram("ki2api_request_ttfb_seconds", "Time from request start to the first body byte",
                              ["route", "stream"], buckets=TTFB_BUCKETS, registry=reg)
        self.duration = Histogram("ki2api_request_duration_seconds", "Time from request start to response close",
                                  ["route", "stream"], buckets=DURATION_BUCKETS, registry=reg)
        self.upstream_errors = Counter("ki2api_upstream_errors", "Failed upstream (Kiro) calls, by kind",
                                       ["kind"], registry=reg)
        self.refreshes = Counter("ki2api_token_refreshes", "Calls to Kiro's token refresh endpoint, by outcome",
                                 ["account", "result"], registry=reg)
        self.streams = Gauge("ki2api_streams_in_flight", "Streamed responses open right now (all workers)",
                             multiprocess_mode="livesum", registry=reg)
        self.tokens = Counter("ki2api_tokens", "Tokens reported to clients (estimates where Kiro gives none)",
                              ["direction"], registry=reg)
        self.cache_refusals = Counter("ki2api_cache_point_refusals", "Calls Kiro refused for their cache points and "
                                      "answered without them (the model then gets none for a while), by model",
                                      ["model"], registry=reg)
        self.credits = Counter("ki2api_kiro_credits", "Credits Kiro charged for answers (its meteringEvent), by "
                               "account and client key label", ["account", "key"], registry=reg)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> "Metrics":
        """Multiprocess mode when PROMETHEUS_MULTIPROC_DIR names a directory, else a private registry."""
        path = environ.get(MULTIPROC_ENV, "").strip()
        return cls(path if path and os.path.isdir(path) else None)

    def observe(self, summary: Mapping[str, Any]) -> None:
        """Count one finished request from its log summary (route, model, status, stream, ttfb_ms, ...)."""
        route, stream = _label(summary.get("route")), "true" if summary.get("stream") else "false"
        self.requests.labels(route, model_label(summary.get("model")), _label(summary.get("status")), stream).inc()
        if isinstance(summary.get("ttfb_ms"), (int, float)):
            self.ttfb.labels(route, stream).observe(summary["ttfb_ms"] / 1000)
        if isinstance(summary.get("duration_ms"), (int, float)):
            self.duration.labels(route, stream).observe(summary["duration_ms"] / 1000)
        kind = summary.get("upstream_error") or summary.get("stream_error")
        if kind:
            self.upstream_errors.labels(_label(kind)).inc()
        for direction in ("in", "out"):
            count = summary.get(f"tokens_{direction}")
            if isinstance(count, int) and not isinstance(count, bool) and count > 0:
                self.tokens.labels(direction).inc(count)
        credits = summary.get("credits")
        if isinstance(credits, (int, float)) and not isinstance(credits, bool) and credits > 0:
            self.credits.labels(_label(summary.get("account")), _label(summary.get("key"))).inc(credits)

    def token_refreshed(self, ok: bool, account: str | None = None) -> None:
        """Count one call to the refresh endpoint (hook for the token manager)."""
        self.refreshes.labels(_label(account or "default"), "ok" if ok else "failed").inc()

    def cache_points_refused(self, model: str) -> None:
        """Count one call whose cache points Kiro refused and that it then answered without (hook for the client)."""
        self.cache_refusals.labels(model_label(model)).inc()

    def _scrape_registry(self) -> CollectorRegistry:
        registry = CollectorRegistry()
        if self.multiproc_dir:
            registry.register(WorkerFiles(self.multiproc_dir))
        else:
            registry.register(_Forward(self.registry))
        return registry

    def render(self, accounts: AccountStates | None = None) -> bytes:
        """The Prometheus text exposition: every worker's figures, plus the answering worker's credential view."""
        registry = self._scrape_registry()
        if accounts is not None:
            registry.register(_Accounts(accounts))
        return generate_latest(registry)

    def totals(self) -> dict[str, Any]:
        """Figures summed over every worker, for the status page: per route, upstream errors, refreshes, ..."""
        out: dict[str, Any] = {"routes": {}, "upstream_errors": {}, "token_refreshes": {}, "tokens": {},
                               "streams_in_flight": 0, "credits": {"accounts": {}, "keys": {}}}
        for family in self._scrape_registry().collect():
            for sample in family.samples:
                value, labels = int(sample.value), sample.labels
                if sample.name == "ki2api_requests_total":
                    route = out["routes"].setdefault(labels["route"], {"requests": 0, "errors": 0})
                    route["requests"] += value
                    route["errors"] += value if labels["status"][:1] in ("4", "5") else 0
                elif sample.name == "ki2api_upstream_errors_total":
                    out["upstream_errors"][labels["kind"]] = out["upstream_errors"].get(labels["kind"], 0) + value
                elif sample.name == "ki2api_token_refreshes_total":
                    result = out["token_refreshes"]
                    result[labels["result"]] = result.get(labels["result"], 0) + value
                elif sample.name == "ki2api_tokens_total":
                    out["tokens"][labels["direction"]] = out["tokens"].get(labels["direction"], 0) + value
                elif sample.name == "ki2api_streams_in_flight":
                    out["streams_in_flight"] += value
                elif sample.name == "ki2api_kiro_credits_total":
                    _add_credits(out["credits"], labels, sample.value)
        return out


def _add_credits(credits: dict[str, dict[str, float]], labels: Mapping[str, str], value: float) -> None:
    """Sum one credits sample into the per-account and per-key totals (six decimals)."""
    for table, label in ((credits["accounts"], labels["account"]), (credits["keys"], labels["key"])):
        table[label] = round(table.get(label, 0.0) + value, 6)


class WorkerFiles(MultiProcessCollector):
    """The multiprocess collector, tolerant of a worker's file being created or removed during a scrape."""

    def __init__(self, path: str) -> None:
        super().__init__(None, path=path)

    def collect(self) -> Iterable[Any]:
        for _ in range(3):
            try:
                return self.merge(worker_files(self._path), accumulate=True)
            except (FileNotFoundError, struct.error):  # a worker started or died between glob and read
                continue
        return self.merge(worker_files(self._path), accumulate=True)


def worker_files(path: str) -> list[str]:
    """The *.db files under `path` that hold at least their header (a new file is empty for a moment)."""
    files = []
    for name in glob.glob(os.path.join(path, "*.db")):
        try:
            if os.path.getsize(name) >= 8:
                files.append(name)
        except OSError:
            continue
    return files


class _Forward:
    """Exposes another registry's metrics inside a scrape-time registry."""

    def __init__(self, source: CollectorRegistry | None) -> None:
        self.source = source

    def collect(self) -> Iterable[Any]:
        return self.source.collect() if self.source is not None else []


class _Accounts:
    """Scrape-time gauges of the accounts: state, needs login, seconds to expiry, last refresh ok, rest, credits."""

    def __init__(self, accounts: AccountStates) -> None:
        self.accounts = accounts

    def collect(self) -> Iterable[Any]:
        return credential_families(self.accounts()) + pool_families(self.accounts())


def credential_families(states: Mapping[str, Mapping[str, Any]]) -> list[GaugeMetricFamily]:
    """Gauges per account from its pool row (pool_status.account_rows: state, credential: {...})."""
    up = GaugeMetricFamily("ki2api_account_up", "1 if the account can take requests now", labels=["account"])
    state_family = GaugeMetricFamily("ki2api_account_state", "1 for the account's current state",
                                     labels=["account", "state"])
    login = GaugeMetricFamily("ki2api_account_needs_login", "1 if a person must log in to Kiro again",
                              labels=["account"])
    expiry = GaugeMetricFamily("ki2api_account_token_expires_in_seconds", "Seconds until the access token expires",
                               labels=["account"])
    refresh = GaugeMetricFamily("ki2api_account_last_refresh_ok", "1 if the last refresh worked, 0 if it failed",
                                labels=["account"])
    for name, row in states.items():
        account, credential, state = _label(name), row["credential"], str(row["state"])
        needs_login = bool(credential.get("needs_login")) or state == "needs_login"
        up.add_metric([account], 1.0 if state == "healthy" and not needs_login else 0.0)
        state_family.add_metric([account, _label(state)], 1.0)
        login.add_metric([account], 1.0 if needs_login else 0.0)
        if isinstance(credential.get("expires_in_seconds"), (int, float)):
            expiry.add_metric([account], float(credential["expires_in_seconds"]))
        last = credential.get("last_refresh")
        if isinstance(last, Mapping) and "ok" in last:
            refresh.add_metric([account], 1.0 if last["ok"] else 0.0)
    return [up, state_family, login, expiry, refresh]


def pool_families(states: Mapping[str, Mapping[str, Any]]) -> list[Any]:
    """From pool rows (accounts.status.account_rows): rest left, credits left, and the pool's shared counters.

    The pool counts requests and errors over every worker (and every replica, with Redis), so each replica
    reports the same totals: aggregate these with max(), not sum(), across replicas.
    """
    cooldown = GaugeMetricFamily("ki2api_account_cooldown_seconds", "Seconds until a resting account is used again",
                                 labels=["account"])
    credits = GaugeMetricFamily("ki2api_account_credits_remaining", "Credits left this period (Kiro usage limits)",
                                labels=["account"])
    served = CounterMetricFamily("ki2api_account_requests", "Requests sent with the account (pool-wide)",
                                 labels=["account"])
    failed = CounterMetricFamily("ki2api_account_errors", "Failed requests of the account (pool-wide)",
                                 labels=["account"])
    for name, row in states.items():
        account = _label(name)
        rest = row.get("cooldown") or {}
        cooldown.add_metric([account], float(rest.get("seconds_left") or 0))
        usage = row.get("usage") or {}
        if isinstance(usage.get("remaining"), (int, float)):
            credits.add_metric([account], float(usage["remaining"]))
        for family, key in ((served, "requests"), (failed, "errors")):
            if isinstance(row.get(key), int):
                family.add_metric([account], float(row[key]))
    return [cooldown, credits, served, failed]
