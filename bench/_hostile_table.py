"""The table of bench/hostile.py: its report (the JSON it prints) as rows, remora beside nginx."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table


def _mark(ok: bool | None) -> str:
    return "" if ok is None else (" [green]✓[/]" if ok else " [red]✗[/]")


def _ms(figures: dict[str, Any]) -> str:
    return (f"{figures['p50_ms']:.3f} / {figures['p99_ms']:.3f} / {figures['max_ms'] or 0:.2f}"
            f", {figures['errors']} errors")  # fmt: skip


def table_rows(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(figure, remora, nginx, target) rows for the table."""
    sides = [report["fronts"].get(name) or {} for name in ("remora", "nginx")]
    settings = report["settings"]
    rows: list[tuple[str, str, str, str]] = []

    def row(label: str, cell: Callable[[dict[str, Any]], str], target: str = "") -> None:
        mine, theirs = (cell(side) if side else "—" for side in sides)
        rows.append((label, mine, theirs, target))

    def held(key: str) -> Callable[[dict[str, Any]], str]:
        return lambda s: "{} / {} / {}".format(*(
            s["aborted_uploads"][moment][key] for moment in ("baseline", "end", "final")))

    if any(s.get("aborted_uploads") for s in sides):
        row(f"aborted uploads ({settings['concurrency']} at a time)",
            lambda s: f"{s['aborted_uploads']['aborts']:,} in "
            f"{s['aborted_uploads']['seconds']:.1f} s")  # fmt: skip
        row("fds: baseline / at the end / after", held("fds"))
        row("fds: peak", lambda s: str(s["aborted_uploads"]["peak_fds"]))
        row("seconds until fds are back", lambda s: (
            "never" if (t := s["aborted_uploads"]["recover_s"]) is None else f"{t:.2f}")
            + _mark(s["aborted_uploads"]["recover_ok"]), f"≤ {settings['recover_target_s']:g} s")
        row("to the upstream: baseline / end / after", held("upstream_cx"))
        row("upstream's view: baseline / end / after", held("upstream_accepted"))
        row("CLOSE_WAIT on the listener: baseline / end / after", held("close_wait"))
        row("own view quiet after (s)", lambda s: "—" if (t := s["aborted_uploads"]["quiet_s"])
            is None else f"{t:.2f}")  # fmt: skip
        row("uploads that reached the upstream; aborted after its answer",
            lambda s: f"{s['aborted_uploads']['uploads_reached_upstream']:,}; "
            f"{s['aborted_uploads']['answered']:,}")
    if any(s.get("slowloris") for s in sides):
        row("quiet: p50 / p99 / max ms", lambda s: _ms(s["slowloris"]["quiet"]))
        row(f"{settings['slowloris']:,} slowloris: p50 / p99 / max ms",
            lambda s: _ms(s["slowloris"]["attacked"]) + _mark(s["slowloris"]["errors_ok"]),
            "0 errors")
        row("p99 attacked / quiet, median of the rounds", lambda s: f"{s['slowloris']['p99_ratio']}"
            + _mark(s["slowloris"]["p99_ok"]), f"≤ {settings['p99_ratio_target']:g}")  # fmt: skip
        row("  pooled over the rounds", lambda s: str(s["slowloris"]["p99_ratio_pooled"]))
        row("  without the requests answered in a wave",
            lambda s: str(s["slowloris"]["p99_ratio_outside_wave"]))
        row("p99 ms quiet → attacked (without the wave), by round", lambda s: " | ".join(
            f"{w['quiet_p99_ms']:.2f} → {w['attacked_p99_ms']:.2f} "
            f"({w['outside_wave_p99_ms']:.2f})" for w in s["slowloris"]["windows"]))
        row("wave: seconds, requests answered in it, their max ms", lambda s: " | ".join(
            f"{w['wave_s']:g} s, {w['wave_requests']}, "
            + ("—" if w["wave_max_ms"] is None else f"{w['wave_max_ms']:.1f}")
            for w in s["slowloris"]["windows"]))  # fmt: skip
        row("slowloris open in the window: min / median / max", lambda s: " | ".join(
            f"{w['open_min']} / {w['open_median']:g} / {w['open_max']}"
            for w in s["slowloris"]["windows"]))  # fmt: skip
        row("closed by the front in the window (answered first)", lambda s: " | ".join(
            f"{w['closed']} ({w['answered']})" for w in s["slowloris"]["windows"]))
        row("late sends (> 1 ms after their slot): quiet / attacked", lambda s: (
            f"{s['slowloris']['quiet']['late_sends']:,} / "
            f"{s['slowloris']['attacked']['late_sends']:,}"))
        row("other processes' CPU-s (the machine's other work): quiet / attacked",
            lambda s: " | ".join("{:.1f} / {:.1f}".format(*w["others_cpu_s"])
                                 for w in s["slowloris"]["windows"]))
        row("slowloris process CPU-s in the window", lambda s: " | ".join(
            f"{w['attacker_cpu_s']:.2f}" for w in s["slowloris"]["windows"]))
        row("held them for (median s)", lambda s: "none closed" if (
            held_s := s["slowloris"]["held_median_s"]) is None else f"{held_s:g}")
        row("CPU-s per 1,000 requests: quiet / attacked", lambda s: (
            f"{s['slowloris']['cpu_s_per_1000_quiet']} / "
            f"{s['slowloris']['cpu_s_per_1000_attacked']}"))  # fmt: skip
    if any(s.get("battery") for s in sides):
        row("battery: /smuggled reached the upstream", lambda s: (
            f"{len(s['battery']['reached'])} of {s['battery']['attempts']}"), "0")
        row("battery: of those, a desync", lambda s: str(len(s["battery"]["smuggled"])), "0")
    row("open files limit; connection limit", lambda s: "; ".join(
        f"{v:,} {k}" for k, v in s["limits"].items()))
    return rows


def print_table(report: dict[str, Any]) -> None:
    settings = report["settings"]
    table = Table(title=f"remora proxy vs nginx under hostile clients (127.0.0.1"
                        f"{'; --quick: ' if settings['quick'] else '; '}"
                        f"{settings['aborts']:,} aborts, {settings['window_s']:g} s windows × "
                        f"{settings['rounds']})")  # fmt: skip
    for column in ("figure", "remora", "nginx", "target"):
        table.add_column(column)
    for row in table_rows(report):
        table.add_row(*row)
    console = Console(width=max(Console().width, 130))
    console.print(table)
    m, s = report["machine"], report["source"]
    console.print(f"{m['cpus']} CPUs, Linux {m['kernel']}, Python {m['python']}, nginx "
                  f"{m['nginx']}, load {m['loadavg_1m_at_start']}; remora from {s['remora_path']}"
                  + (f" at {s['commit']} ({s['src_files_changed']} files of src/ changed)"
                     if "commit" in s else ""))  # fmt: skip
    for name, error in report["errors"].items():
        console.print(f"[red]{name} not measured:[/] {error}")
