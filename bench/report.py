"""Figures from scenario results, checked against the issue's targets, as one plain-text table."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Callable

NAN = float("nan")


@dataclass(frozen=True)
class Figure:
    """One row: how to read it from a run's results, its unit and target (None: stated, no target)."""

    name: str
    unit: str
    read: Callable[[dict[str, Any]], float]
    target: tuple[str, float] | None = None  # ("<=", 1.5) or (">=", 0.6)
    direct: Callable[[dict[str, Any]], float] | None = None
    full_only: bool = False  # the quick plan is too small to judge this target


def _get(data: dict[str, Any], *path: Any) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return NAN
        data = data.get(key, data.get(str(key), NAN))
    return data


def _between(section: str, upper: str, lower: str, *path: Any) -> Callable[[dict[str, Any]], float]:
    return lambda r: _get(r, section, upper, *path) - _get(r, section, lower, *path)


def _added(section: str, *path: Any) -> Callable[[dict[str, Any]], float]:
    return _between(section, "ki2api", "direct", *path)


def _slope(section: str, who: str, scale: float) -> Callable[[dict[str, Any]], float]:
    def read(r: dict[str, Any]) -> float:
        rows = _get(r, "growth", section)
        if not isinstance(rows, dict) or len(rows) < 2:
            return NAN
        sizes = sorted(rows, key=float)
        lo, hi = sizes[0], sizes[-1]
        return (rows[hi][who] - rows[lo][who]) / ((float(hi) - float(lo)) / scale)
    return read


def _waited(wait: float) -> Callable[[dict[str, Any]], float]:
    return lambda r: (_get(r, "request_waiting", str(wait), "ki2api", "rps")
                      / _get(r, "request_waiting", str(wait), "direct", "rps"))


def _hold_ok(r: dict[str, Any]) -> float:
    hold = _get(r, "hold", "ki2api")
    if not isinstance(hold, dict):
        return NAN
    return hold["completed"] if not hold["failures"] else -hold["completed"]


def _rss_per_stream(r: dict[str, Any]) -> float:
    hold = _get(r, "hold", "ki2api")
    if not isinstance(hold, dict):
        return NAN
    return (hold["rss_peak_kib"] - hold["rss_before_kib"]) / hold["streams"]


FIGURES = [
    Figure("added latency p50, non-streamed, c=1 (fake Kiro)", "ms", _added("request_fake_kiro", "c1", "p50"),
           ("<=", 1.5)),
    Figure("added latency p99, non-streamed, c=1 (fake Kiro)", "ms", _added("request_fake_kiro", "c1", "p99"),
           ("<=", 5.0)),
    Figure("  the floor: Flask+requests passthrough added p50, c=1 (fake Kiro)", "ms",
           _between("request_fake_kiro", "passthrough", "direct", "c1", "p50")),
    Figure("  the floor: Flask+requests passthrough added p99, c=1 (fake Kiro)", "ms",
           _between("request_fake_kiro", "passthrough", "direct", "c1", "p99")),
    Figure("  ki2api over the passthrough, p50, c=1 (fake Kiro)", "ms",
           _between("request_fake_kiro", "ki2api", "passthrough", "c1", "p50")),
    Figure("added latency p50, non-streamed, c=1 (streamer)", "ms", _added("request_streamer", "c1", "p50"),
           ("<=", 1.5)),
    Figure("added latency p99, non-streamed, c=1 (streamer)", "ms", _added("request_streamer", "c1", "p99"),
           ("<=", 5.0)),
    Figure("req/s non-streamed c=50, ki2api (fake Kiro)", "req/s",
           lambda r: _get(r, "request_fake_kiro", "ki2api", "c50", "rps"),
           direct=lambda r: _get(r, "request_fake_kiro", "direct", "c50", "rps")),
    Figure("  ratio to direct (fake Kiro)", "", lambda r: _get(r, "request_fake_kiro", "ki2api", "c50", "rps")
           / _get(r, "request_fake_kiro", "direct", "c50", "rps"), (">=", 0.6)),
    Figure("  the floor: passthrough req/s c=50, ratio to direct (fake Kiro)", "",
           lambda r: _get(r, "request_fake_kiro", "passthrough", "c50", "rps")
           / _get(r, "request_fake_kiro", "direct", "c50", "rps")),
    Figure("  ki2api req/s c=50, ratio to the passthrough (fake Kiro)", "",
           lambda r: _get(r, "request_fake_kiro", "ki2api", "c50", "rps")
           / _get(r, "request_fake_kiro", "passthrough", "c50", "rps")),
    Figure("  the ceiling: Flask alone (no upstream call) req/s c=50, ratio to direct (fake Kiro)", "",
           lambda r: _get(r, "request_fake_kiro", "flask_only", "c50", "rps")
           / _get(r, "request_fake_kiro", "direct", "c50", "rps")),
    Figure("  the upstream call through requests, per request at c=50 (1/passthrough - 1/Flask alone)", "ms",
           lambda r: 1000 / _get(r, "request_fake_kiro", "passthrough", "c50", "rps")
           - 1000 / _get(r, "request_fake_kiro", "flask_only", "c50", "rps")),
    Figure("  the whole budget per request at c=50 for 60% of direct (1 / (0.6 x direct))", "ms",
           lambda r: 1000 / (0.6 * _get(r, "request_fake_kiro", "direct", "c50", "rps"))),
    Figure("  the floor of any client: Flask + a bare socket, req/s c=50, ratio to direct (fake Kiro)", "",
           lambda r: _get(r, "request_fake_kiro", "socket", "c50", "rps")
           / _get(r, "request_fake_kiro", "direct", "c50", "rps")),
    Figure("  another client: Flask + geventhttpclient, req/s c=50, ratio to direct (fake Kiro)", "",
           lambda r: _get(r, "request_fake_kiro", "geventhttpclient", "c50", "rps")
           / _get(r, "request_fake_kiro", "direct", "c50", "rps")),
    Figure("  the upstream call through geventhttpclient, per request at c=50 (as for requests)", "ms",
           lambda r: 1000 / _get(r, "request_fake_kiro", "geventhttpclient", "c50", "rps")
           - 1000 / _get(r, "request_fake_kiro", "flask_only", "c50", "rps")),
    Figure("req/s non-streamed c=50, ki2api (streamer)", "req/s",
           lambda r: _get(r, "request_streamer", "ki2api", "c50", "rps"),
           direct=lambda r: _get(r, "request_streamer", "direct", "c50", "rps")),
    Figure("  ratio to direct (streamer)", "", lambda r: _get(r, "request_streamer", "ki2api", "c50", "rps")
           / _get(r, "request_streamer", "direct", "c50", "rps"), (">=", 0.6)),
    Figure("  ratio to direct, the upstream's first frame after 50 ms (streamer)", "", _waited(0.05)),
    Figure("  ratio to direct, the upstream's first frame after 500 ms (streamer)", "", _waited(0.5)),
    Figure("streams held by 1 worker, all completed", "streams", _hold_ok, (">=", 2000), full_only=True),
    Figure("worker RSS growth per open stream", "KiB", _rss_per_stream, ("<=", 64)),
    Figure("added per-frame delay p99 at N streams", "ms", _added("flow", "delay_ms", "p99"), ("<=", 10)),
    Figure("  per-frame delay p50 via ki2api", "ms", lambda r: _get(r, "flow", "ki2api", "delay_ms", "p50"),
           direct=lambda r: _get(r, "flow", "direct", "delay_ms", "p50")),
    Figure("added TTFB p99 at N streams", "ms", _added("flow", "ttfb_ms", "p99"), ("<=", 20)),
    Figure("CPU per frame, in-process (decode+translate+SSE)", "us", lambda r: _get(r, "inproc", "us_per_frame"),
           ("<=", 30)),
    Figure("CPU per frame, gunicorn worker, 1 frame per read", "us",
           lambda r: _get(r, "cpu", "paced", "us_per_frame"), ("<=", 30)),
    Figure("CPU per frame, gunicorn worker, bursts", "us", lambda r: _get(r, "cpu", "burst", "us_per_frame"),
           ("<=", 30)),
    Figure("  the same through the Anthropic API, 1 frame per read", "us",
           lambda r: _get(r, "cpu", "paced", "anthropic_us_per_frame")),
    Figure("  the same through the Anthropic API, bursts", "us",
           lambda r: _get(r, "cpu", "burst", "anthropic_us_per_frame")),
    Figure("  the same through a bare gevent relay (floor), 1 frame per read", "us",
           lambda r: _get(r, "cpu", "paced", "relay_us_per_frame")),
    Figure("  the same through a bare gevent relay (floor), bursts", "us",
           lambda r: _get(r, "cpu", "burst", "relay_us_per_frame")),
    Figure("  the same through a Flask+requests passthrough, 1 frame per read", "us",
           lambda r: _get(r, "cpu", "paced", "passthrough_us_per_frame")),
    Figure("  the same through a Flask+requests passthrough, bursts", "us",
           lambda r: _get(r, "cpu", "burst", "passthrough_us_per_frame")),
    Figure("worker CPU per frame at N streams, requests included", "us",
           lambda r: _get(r, "flow", "ki2api", "worker_cpu_s") * 1e6
           / (_get(r, "flow", "ki2api", "completed") * _get(r, "flow", "frames_per_stream"))),
    Figure("req/s c=50 with 2 workers", "req/s", lambda r: _get(r, "scaling", 2, "rps")),
    Figure("req/s c=50 with 4 workers", "req/s", lambda r: _get(r, "scaling", 4, "rps")),
    Figure("streamed answer time per 1,000 frames (c=1)", "ms", _slope("answers", "ki2api", 1000),
           direct=_slope("answers", "direct", 1000)),
    Figure("non-streamed request time per MiB of prompt (c=1)", "ms", _slope("prompts", "ki2api", 1 << 20),
           direct=_slope("prompts", "direct", 1 << 20)),
]


def _spread(values: list[float]) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "n/a"
    middle = statistics.median(values)
    text = _fmt(middle)
    if len(values) > 1:
        text += f" [{_fmt(min(values))}..{_fmt(max(values))}]"
    return text


def _fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def _verdict(figure: Figure, values: list[float], quick: bool) -> str:
    values = [v for v in values if not math.isnan(v)]
    if figure.full_only and quick:
        return "full plan only"
    if figure.target is None or not values:
        return "" if figure.target is None else "n/a"
    op, bound = figure.target
    middle = statistics.median(values)
    met = middle <= bound if op == "<=" else middle >= bound
    return f"{op} {_fmt(bound)}: {'met' if met else 'MISSED'}"


def table(runs: list[dict[str, Any]], header: str, quick: bool = False) -> str:
    """Median [min..max] over the runs for each figure, direct alongside, and whether the target is met."""
    rows = [("figure", "ki2api", "direct", "unit", "target")]
    for figure in FIGURES:
        values = [_safe(figure.read, run) for run in runs]
        direct = [_safe(figure.direct, run) for run in runs] if figure.direct else []
        rows.append((figure.name, _spread(values), _spread(direct) if direct else "", figure.unit,
                     _verdict(figure, values, quick)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [header, ""]
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _safe(read: Callable[[dict[str, Any]], float], run: dict[str, Any]) -> float:
    try:
        value = read(run)
    except (KeyError, TypeError, ZeroDivisionError):
        return NAN
    return float(value) if isinstance(value, (int, float)) else NAN
