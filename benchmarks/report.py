"""The harness's reports: the Markdown tables (medians, ratios, marks), the README's headline
and the charts, from the runs ``run.py`` measured."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from run import Run, Stack, Workload

#: Flag a run where the load generator was busy this much of the time: it measured itself ...
CLIENT_BOUND = 0.90
#: ... or where the server was less busy than this while the load generator was busier than
#: LOADED: something other than the server's CPU (most likely the load generator) set the pace.
SERVER_IDLE = 0.90
LOADED = 0.75


def limited_elsewhere(result: dict[str, Any]) -> bool:
    """The run may not have measured the server (see CLIENT_BOUND, SERVER_IDLE)."""
    if "client_busy" not in result:
        return False
    client, server = result["client_busy"], result.get("server_busy", 1.0)
    return bool(client > CLIENT_BOUND or (server < SERVER_IDLE and client > LOADED))


#: A fixed-rate run (``rate_kept``: delivered over offered) below this fell behind: its CPU %
#: is the server's saturation, not what the rate costs it.
RATE_KEPT = 0.95


def behind(result: dict[str, Any]) -> bool:
    """A fixed-rate run in which the server did not keep the rate (see RATE_KEPT)."""
    return bool(result.get("rate_kept", 1.0) < RATE_KEPT)


def median_of(runs: list[Run], stack: str, workload: Workload) -> float | None:
    values = [
        r.result[workload.metric] for r in runs
        if r.stack == stack and r.workload == workload.name and r.result.get("ok")
    ]
    return statistics.median(values) if values else None


def marked(runs: list[Run], stack: str, workload: Workload) -> str:
    """The median, marked ``FAIL`` if a run failed, ``*`` if one may not have measured the
    server and ``~`` if one fell behind a fixed rate (the same marks in every table, the
    headline's included)."""
    mine = [r.result for r in runs if r.stack == stack and r.workload == workload.name]
    failed = any(not r.get("ok") for r in mine)
    elsewhere = any(limited_elsewhere(r) for r in mine if r.get("ok"))
    late = any(behind(r) for r in mine if r.get("ok"))
    value = fmt(median_of(runs, stack, workload))
    return ("FAIL " if failed else "") + value + ("*" if elsewhere else "") + (
        "~" if late else "")


def fmt(value: float | None) -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return text


def ratio(ours: float | None, theirs: float | None, higher_is_better: bool) -> str:
    """How many times better rawstream is (above 1: ahead)."""
    if not ours or not theirs:
        return "-"
    return f"{(ours / theirs if higher_is_better else theirs / ours):.2f}x"


def report(runs: list[Run], stacks: list[Stack], workloads: list[Workload], args: Any,
           machine: dict[str, Any]) -> tuple[str, str]:
    """The full Markdown report and the README's headline table."""
    lines = [
        "# Benchmark results",
        "",
        f"Measured {machine['date']} on {machine['cpus']} CPUs ({machine['cpu_model']}), "
        f"Python {machine['python']}, {machine['pinning']}; medians of {args.repeats} "
        f"interleaved repeat(s){' (smoke mode: not a measurement)' if args.smoke else ''}.",
        f"Command: `{machine['command']}`.",
        "",
        "Ratios are rawstream's advantage (above 1.00x: rawstream is ahead); for memory, the "
        "peer's KiB over rawstream's, and for the fixed-rate LLM workload the peer's CPU % over "
        "rawstream's. `FAIL` marks a run that lost, repeated or reordered "
        "events or errored (never reported as a speed); `*` marks a median that includes a "
        "run that may not have measured the server: the load generator was busy over 90% of "
        "the time, or over 75% while the server was busy under 90% (for rawstream and the "
        "floor such a number is a lower bound); `~` marks a fixed-rate median that includes "
        "a run where the server delivered under 95% of the offered rate: it fell behind, and "
        "its CPU % is its saturation, not the cost of that rate.",
        "",
    ]
    headline = [
        "| workload | rawstream | best framework peer | rawstream / best peer "
        "| floor (plain Trio) | rawstream / floor |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for workload in workloads:
        lines += [f"## {workload.title}", "", f"Metric: {workload.unit}"
                  f" ({'higher' if workload.higher_is_better else 'lower'} is better).", ""]
        header = ["stack", workload.unit] + [label for _, label in workload.extra] + [
            "server CPU busy", "loadgen CPU busy", "rawstream vs this"]
        lines += ["| " + " | ".join(header) + " |",
                  "|---|" + "---:|" * (len(header) - 1)]
        ours = median_of(runs, "rawstream", workload)
        for stack in stacks:
            if workload.name not in stack.workloads:
                continue
            mine = [r for r in runs if r.stack == stack.name and r.workload == workload.name]
            if not mine:
                continue
            failed = [r for r in mine if not r.result.get("ok")]
            value = median_of(runs, stack.name, workload)
            good = [r.result for r in mine if r.result.get("ok")]
            cells = [stack.label, marked(runs, stack.name, workload)]
            for key, _ in workload.extra:
                values = [r[key] for r in good if key in r]
                cells.append(fmt(statistics.median(values)) if values else "-")
            for key in ("server_busy", "client_busy"):
                values = [r[key] for r in good if key in r]
                cells.append(f"{statistics.median(values):.0%}" if values else "-")
            cells.append("" if stack.name == "rawstream" else
                         ratio(ours, value, workload.higher_is_better))
            lines.append("| " + " | ".join(cells) + " |")
            for r in failed:
                lines.append(f"|  ↳ FAIL (repeat {r.repeat}) | {r.result.get('error', '')[:150]} |"
                             + " |" * (len(header) - 2))
        lines.append("")
        peers = [(median_of(runs, s.name, workload), s) for s in stacks
                 if s.framework and workload.name in s.workloads]
        peers = [(v, s) for v, s in peers if v is not None]
        best = (max if workload.higher_is_better else min)(peers, key=lambda p: p[0],
                                                           default=(None, None))
        floor = median_of(runs, "floor", workload)
        best_cell = (f"{best[1].label} {marked(runs, best[1].name, workload)}"
                     if best[1] else "-")
        headline.append(
            f"| {workload.title} ({workload.unit}) | {marked(runs, 'rawstream', workload)} | "
            f"{best_cell} | {ratio(ours, best[0], workload.higher_is_better)} | "
            f"{marked(runs, 'floor', workload)} | "
            f"{ratio(ours, floor, workload.higher_is_better)} |"
        )
    core = [r for r in runs if r.stack == "core"]
    if core:
        lines += ["## The sans-IO core alone (rawstream, operations/s)", "",
                  "| operation | ops/s |", "|---|---:|"]
        names = core[0].result.get("ops", {}).keys()
        for name in names:
            values = [r.result["ops"][name] for r in core if name in r.result.get("ops", {})]
            lines.append(f"| {name} | {fmt(statistics.median(values))} |")
        lines.append("")
    lines += ["## Headline", "", *headline, ""]
    return "\n".join(lines), "\n".join(headline)


def chart(runs: list[Run], stacks: list[Stack], workloads: list[Workload], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [w for w in workloads if any(r.workload == w.name for r in runs)]
    if not shown:
        return
    columns = 2
    rows = (len(shown) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(13, 3.4 * rows), squeeze=False)
    for ax, workload in zip(axes.flat, shown, strict=False):
        entries = [(s.label, median_of(runs, s.name, workload), s.name) for s in stacks
                   if workload.name in s.workloads]
        entries = [(label, value, name) for label, value, name in entries if value is not None]
        labels = [label for label, _, _ in entries]
        values = [value for _, value, _ in entries]
        colors = ["#d62728" if name == "rawstream" else "#7f7f7f" if name == "floor"
                  else "#1f77b4" for _, _, name in entries]
        ax.barh(labels, values, color=colors)
        ax.invert_yaxis()
        ax.set_title(workload.title, fontsize=10)
        ax.set_xlabel(workload.unit + ("" if workload.higher_is_better else " (lower is better)"),
                      fontsize=9)
        ax.tick_params(labelsize=8)
        for y, value in enumerate(values):
            ax.text(value, y, " " + fmt(value), va="center", fontsize=8)
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
