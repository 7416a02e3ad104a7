"""`python -m bench.markdown RESULT.json`: a saved run of `python -m bench --json` as the tables of docs/performance.md.

Prints the machine and run details, every figure with its target, spread and ratio to direct, the scaling
with workers, and the growth tables with their least-squares lines (intercept + slope, worst residual).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Any, Callable

from . import report
from .inproc import linear

Reader = Callable[[dict[str, Any]], float]


def _pair(section: str, *path: Any) -> Reader:
    return lambda r: report._get(r, section, "ki2api", *path) / report._get(r, section, "direct", *path)


# ki2api / direct for the rows where both sides measure the same thing.
RATIOS: dict[str, Reader] = {
    "added latency p50, non-streamed, c=1 (fake Kiro)": _pair("request_fake_kiro", "c1", "p50"),
    "added latency p99, non-streamed, c=1 (fake Kiro)": _pair("request_fake_kiro", "c1", "p99"),
    "added latency p50, non-streamed, c=1 (streamer)": _pair("request_streamer", "c1", "p50"),
    "added latency p99, non-streamed, c=1 (streamer)": _pair("request_streamer", "c1", "p99"),
    "req/s non-streamed c=50, ki2api (fake Kiro)": _pair("request_fake_kiro", "c50", "rps"),
    "req/s non-streamed c=50, ki2api (streamer)": _pair("request_streamer", "c50", "rps"),
    "added per-frame delay p99 at N streams": _pair("flow", "delay_ms", "p99"),
    "added TTFB p99 at N streams": _pair("flow", "ttfb_ms", "p99"),
}
# The direct side of the "added" rows (ki2api's own value is direct + added).
DIRECT: dict[str, Reader] = {
    "added latency p50, non-streamed, c=1 (fake Kiro)": lambda r: report._get(r, "request_fake_kiro", "direct",
                                                                                "c1", "p50"),
    "added latency p99, non-streamed, c=1 (fake Kiro)": lambda r: report._get(r, "request_fake_kiro", "direct",
                                                                                "c1", "p99"),
    "added latency p50, non-streamed, c=1 (streamer)": lambda r: report._get(r, "request_streamer", "direct",
                                                                               "c1", "p50"),
    "added latency p99, non-streamed, c=1 (streamer)": lambda r: report._get(r, "request_streamer", "direct",
                                                                               "c1", "p99"),
    "added per-frame delay p99 at N streams": lambda r: report._get(r, "flow", "direct", "delay_ms", "p99"),
    "added TTFB p99 at N streams": lambda r: report._get(r, "flow", "direct", "ttfb_ms", "p99"),
}


def _values(read: Reader | None, runs: list[dict[str, Any]]) -> list[float]:
    return [report._safe(read, run) for run in runs] if read else []


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def figures(runs: list[dict[str, Any]], quick: bool) -> list[str]:
    """The figures table: median [min..max] over the runs."""
    lines = [_row(["figure", "target", "ki2api", "direct", "ratio ki2api/direct", "verdict"]),
             _row(["---"] * 6)]
    for figure in report.FIGURES:
        values = _values(figure.read, runs)
        direct = _values(figure.direct or DIRECT.get(figure.name), runs)
        ratio = _values(RATIOS.get(figure.name), runs)
        target = f"{figure.target[0]} {report._fmt(figure.target[1])}" if figure.target else "stated"
        unit = f" {figure.unit}" if figure.unit else ""
        lines.append(_row([figure.name.strip(), target + (unit if figure.target else ""),
                           report._spread(values) + unit, report._spread(direct) + unit if direct else "",
                           report._spread(ratio) if ratio else "", report._verdict(figure, values, quick)]))
    return lines


def scaling(runs: list[dict[str, Any]]) -> list[str]:
    """Requests per second at concurrency 50 for 1, 2, 4 workers (fake Kiro upstream)."""
    lines = [_row(["workers", "req/s c=50, ki2api", "p99 latency, ms", "direct (fake Kiro), req/s"]),
             _row(["---"] * 4)]
    counts = sorted({int(w) for run in runs for w in run.get("scaling", {})} | {1})
    for workers in counts:
        section = ("request_fake_kiro", "ki2api", "c50") if workers == 1 else ("scaling", workers)
        rps = [report._safe(lambda r: report._get(r, *section, "rps"), run) for run in runs]
        p99 = [report._safe(lambda r: report._get(r, *section, "p99"), run) for run in runs]
        direct = [report._safe(lambda r: report._get(r, "request_fake_kiro", "direct", "c50", "rps"), run)
                  for run in runs]
        lines.append(_row([str(workers), report._spread(rps), report._spread(p99), report._spread(direct)]))
    return lines


def _fit(sizes: list[float], values: list[float], per: float, unit: str) -> str:
    if len(sizes) < 2 or any(math.isnan(v) for v in values):
        return "n/a"
    intercept, slope, _ = linear(sizes, values)
    off = max(abs(v - intercept - slope * s) for s, v in zip(sizes, values)) / max(values)
    return (f"{intercept:.3g} {unit} + {slope * per:.3g} {unit} per {report._fmt(per)} (farthest point off the "
            f"line by {off:.0%} of the largest value)")


def growth(runs: list[dict[str, Any]]) -> list[str]:
    """Answers of growing length and prompts of growing size: gunicorn (c=1) and in-process, median of runs."""
    lines: list[str] = []
    for kind, unit_size, label in (("answers", 1000, "frames"), ("prompts", 1 << 20, "bytes")):
        sizes = sorted({float(s) for run in runs for s in run.get("growth", {}).get(kind, {})})
        variants = ["stream:", "whole:"] if kind == "answers" else [""]
        inproc = [(f"in-process {v[:-1] or 'whole'}", v, field) for v in variants for field in ("ms", "peak_kib")]
        names = ["ki2api via gunicorn", "direct"] + [f"{name}, {'ms' if f == 'ms' else 'peak heap KiB'}"
                                                     for name, _, f in inproc]
        lines += [f"**{kind}** ({'streamed' if kind == 'answers' else 'not streamed'} via gunicorn, c=1, ms)", "",
                  _row([label] + names), _row(["---"] * (len(names) + 1))]
        columns: list[list[float]] = [[] for _ in names]
        for size in sizes:
            values = [_median([report._get(run, "growth", kind, str(int(size)), who) for run in runs])
                      for who in ("ki2api", "direct")]
            values += [_median([report._get(run, "inproc", kind, f"{prefix}{int(size)}", field) for run in runs])
                       for _, prefix, field in inproc]
            for column, value in zip(columns, values):
                column.append(value)
            lines.append(_row([f"{size:,.0f}"] + [report._fmt(v) for v in values]))
        per = 1000 if kind == "answers" else 1 << 20
        lines.append("")
        lines += [f"- {name}: {_fit(sizes, column, per, 'KiB' if 'KiB' in name else 'ms')}"
                  for name, column in zip(names, columns)]
        lines.append("")
    return lines


def _median(values: list[Any]) -> float:
    numbers = [float(v) for v in values if isinstance(v, (int, float)) and not math.isnan(v)]
    return statistics.median(numbers) if numbers else report.NAN


def render(data: dict[str, Any]) -> str:
    """The whole markdown block for one saved result."""
    runs, info = data["runs"], data["machine"]
    loads = ", ".join(f"{r['loadavg_before'][0]:.2f} -> {r['loadavg_after'][0]:.2f}" for r in runs)
    quick = data.get("plan_name", "full") != "full"
    head = [f"- machine: {info['cores']} cores, {info['memory_gib']} GiB, {info['cpu']}, Linux {info['kernel']}, "
            f"Python {info['python']}",
            f"- date: {info['date']}; tree: {data.get('git', 'unknown')}; "
            f"GC_THRESHOLDS: {info.get('gc_thresholds', 'unset (the tuned default)')}",
            f"- {len(runs)} run(s) of the {data.get('plan_name', 'full')} plan"
            + (f" in {data['elapsed_s']:.0f} s" if "elapsed_s" in data else "")
            + f"; 1-minute load average before -> after each run: {loads}",
            "- values: median [min..max] over the runs", ""]
    return "\n".join(head + figures(runs, quick) + ["", "Scaling with workers:", ""] + scaling(runs)
                     + ["", "Growth:", ""] + growth(runs))


def main() -> None:
    """Print the markdown for a saved result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("result", help="the JSON written by `python -m bench --json`")
    args = parser.parse_args()
    print(render(json.loads(Path(args.result).read_text())))


if __name__ == "__main__":
    main()
