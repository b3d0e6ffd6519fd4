"""Prometheus metrics, one registry per app (so tests can build many apps). Ticket counts by status are read
from the database at scrape time: the database is the source of truth."""
from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from starlette.types import ASGIApp, Receive, Scope, Send


class _StoreCollector:
    def __init__(self, store):
        self.store = store

    def collect(self):
        g = GaugeMetricFamily("hotline_tickets", "Tickets in the store by status", labels=["status"])
        try:
            for status, n in sorted(self.store.count_by_status().items()):
                g.add_metric([status], n)
        except Exception:  # noqa: BLE001 - a scrape must not fail because the DB is briefly busy
            pass
        yield g


class _RouterCollector:
    """Which model version and lists this process serves now (changes when a promotion is picked up)."""

    def __init__(self, current):
        self.current = current

    def collect(self):
        g = GaugeMetricFamily("hotline_model_info", "The model version and lists this process serves (value 1)",
                              labels=["model_version", "lists_version"])
        r = self.current()
        if r is not None:
            g.add_metric([r.model_version, r.lists.version], 1)
        yield g


class Metrics:
    def __init__(self, store=None):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("hotline_http_requests", "HTTP requests", ["method", "route", "status"], registry=r)
        self.latency = Histogram("hotline_http_request_seconds", "HTTP request latency", ["route"], registry=r,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.suggestions = Counter("hotline_suggestions", "Suggestions made", ["needs_arbitration"], registry=r)
        self.dispatches = Counter("hotline_dispatches", "Dispatches by whether the suggestion was accepted",
                                  ["accepted"], registry=r)
        self.returns = Counter("hotline_returns", "Tickets returned (退单)", registry=r)
        self.decisions = Counter("hotline_arbitration_decisions", "Arbitration decisions", registry=r)
        self.reloads = Counter("hotline_model_reloads", "A promoted version or edited lists picked up without a restart "
                               "(outcome ok), or found unloadable and not served (failed)", ["outcome"], registry=r)
        if store is not None:
            r.register(_StoreCollector(store))

    def watch_router(self, current) -> None:
        """``current()``: the router being served (or None while starting)."""
        self.registry.register(_RouterCollector(current))


class MetricsMiddleware:
    """Counts requests by route template (not raw path: ids would explode the label set)."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = [500]

        async def _send(msg):
            if msg["type"] == "http.response.start":
                status[0] = msg["status"]
            await send(msg)

        try:
            await self.app(scope, receive, _send)
        finally:
            route = getattr(scope.get("route"), "path", None) or ("static" if scope["path"].startswith("/static") else "other")
            self.metrics.requests.labels(scope["method"], route, str(status[0])).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)
