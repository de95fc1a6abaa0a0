"""The table the benchmark prints, and each target of issue 7 checked against figures of the same run."""

from __future__ import annotations

from typing import Any


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _row(name: str, fig: dict[str, Any], note: str = "") -> str:
    return (
        f"| {name} | {_f(fig.get('count'), 0)} | {_f(fig.get('wall_s'), 2)} | {_f(fig.get('per_s'), 0)} | "
        f"{_f(fig.get('cpu_s'), 2)} | {_f(fig.get('peak_rss_mb'))} | {note} |"
    )


def table(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; Python {m['python']}; "
        f"Redis {m['redis_server']}; commit {m['commit']}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        f"medians of {report['repeat']} runs" + (" (quick)" if report["quick"] else ""),
        "",
        "| scenario | n | wall s | per s | cpu s | peak RSS MB | note |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    if ingest := report.get("ingest"):
        lines.append(_row("ingest: batchline fetch", ingest["batchline"], f"{ingest['output_mb']:.0f} MB output"))
        lines.append(_row("ingest: floor (file, orjson, pipelined HSET)", ingest["floor"]))
        p = ingest["pydantic_ai"]
        lines.append(
            _row(
                "ingest: pydantic-ai batch_results + batch_decode",
                p,
                f"results {p['results_s']:.1f}s, decode {p['decode_s']:.1f}s",
            )
        )
    if read := report.get("read"):
        lines.append(_row("read: batch_results_sync -> ModelResponse", read, f"identical: {read['identical']}"))
        lines.append(
            f"| read: pydantic-ai batch_decode | {_f(read['count'], 0)} | {_f(read['pydantic_wall_s'], 2)} | "
            f"{_f(read['pydantic_per_s'], 0)} | {_f(read['pydantic_cpu_s'], 2)} | - | same stored results |"
        )
    for count, fig in (report.get("memory") or {}).items():
        lines.append(_row(f"memory: ingest {int(count):,}", fig, f"RSS after imports {fig['rss_before_mb']:.0f} MB"))
    if submit := report.get("submit"):
        b = submit["batchline"]
        lines.append(_row("submit: batchline create + submit", b, f"encode+store {b['create_s']:.1f}s"))
        lines.append(_row("submit: pydantic-ai batch_encode + batch_create", submit["pydantic_ai"]))
    if e2e := report.get("e2e"):
        b = e2e["batchline"] | {"count": e2e["count"]}
        ended = f"; job {b['status']} at {b['ended_s']:.2f}s" if "ended_s" in b else ""
        lines.append(_row("end to end: batch_create -> all stored (worker)", b, f"create {b['create_s']:.2f}s{ended}"))
        lines.append(_row("end to end: raw I/O floor (upload+download+parse)", e2e["io_floor"]))
    if poll := report.get("poll"):
        lines.append(
            f"| poll: {poll['jobs']:,} jobs on one worker | {poll['polls']:,} polls | {poll['window_s']:.0f} | "
            f"{poll['polls_per_s']:.1f} | {poll['worker_cpu_s']:.2f} | {poll['worker_rss_mb']:.0f} | "
            f"{_f(poll['cpu_ms_per_poll'], 2)} ms CPU/poll; {poll['jobs_polled_in_window']:,} jobs polled; "
            f"mean busy slots {poll['mean_active']:.2f} of {poll['concurrency']} |"
        )
    if cache := report.get("cache"):
        lines += cache_rows(cache)
    if agents := report.get("agents"):
        theirs, ours = agents["pydantic_ai"], agents["batchline"]
        count = {"count": agents["runs"]}
        lines.append(
            _row(
                "agents: pydantic-ai BatchModelRequests, in one process",
                theirs | count,
                f"{theirs['batches']:g} provider batches",
            )
        )
        lines.append(
            _row(
                "agents: batchline run_batch, the caller",
                ours | count,
                f"{ours['batches']:g} provider batches; worker (2 slots) peak {ours['worker_peak_rss_mb']:.0f} MB",
            )
        )
    lines += ["", "| target | figure | met |", "|---|---|---|"]
    for target in report.get("targets", []):
        lines.append(f"| {target['target']} | {target['figure']} | {'yes' if target['met'] else 'NO'} |")
    return "\n".join(lines)


def verdicts(report: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def check(target: str, figure: str, met: bool) -> None:
        out.append({"target": target, "figure": figure, "met": bool(met)})

    if ingest := report.get("ingest"):
        ours, floor, theirs = ingest["batchline"], ingest["floor"], ingest["pydantic_ai"]
        check("ingest >= 25,000 results/s", f"{ours['per_s']:,.0f}/s", ours["per_s"] >= 25_000)
        ratio = ours["wall_s"] / floor["wall_s"]
        check("ingest within 1.5x of the floor", f"{ratio:.2f}x the floor's time", ratio <= 1.5)
        speed = theirs["wall_s"] / ours["wall_s"]
        check("ingest >= 3x pydantic-ai results+decode", f"{speed:.1f}x faster", speed >= 3)
        mem = ours["peak_rss_mb"] / theirs["peak_rss_mb"]
        check("ingest peak RSS <= 1/5 of pydantic-ai's", f"{mem:.2f} of it", mem <= 0.2)
        check("worker peak RSS for ingest <= 150 MB", f"{ours['peak_rss_mb']:.0f} MB", ours["peak_rss_mb"] <= 150)
        growth = (ours["peak_rss_mb"] - ours["rss_before_mb"]) / (theirs["peak_rss_mb"] - theirs["rss_before_mb"])
        check(
            "(growth above imports) ingest <= 1/5 of pydantic-ai's",
            f"{ours['peak_rss_mb'] - ours['rss_before_mb']:.0f} MB vs "
            f"{theirs['peak_rss_mb'] - theirs['rss_before_mb']:.0f} MB ({growth:.3f})",
            growth <= 0.2,
        )
    if read := report.get("read"):
        speed = read["per_s"] / read["pydantic_per_s"]
        check(
            "read >= 5x pydantic-ai decode, identical",
            f"{speed:.1f}x, identical={read['identical']}",
            speed >= 5 and read["identical"],
        )
    if memory := report.get("memory"):
        peaks = [fig["peak_rss_mb"] for fig in memory.values()]
        spread = max(peaks) - min(peaks)
        check(
            "ingest peak RSS flat from smallest to largest",
            " / ".join(f"{p:.0f}" for p in peaks) + f" MB (spread {spread:.0f} MB)",
            spread <= 0.1 * min(peaks) and max(peaks) <= 150,
        )
    if submit := report.get("submit"):
        ours, theirs = submit["batchline"], submit["pydantic_ai"]
        speed = theirs["wall_s"] / ours["wall_s"]
        check("submit >= 2x pydantic-ai encode+create", f"{speed:.2f}x", speed >= 2)
    if poll := report.get("poll"):
        cpu = poll["cpu_ms_per_poll"]
        check("poll <= 2 ms CPU per poll", f"{_f(cpu, 2)} ms", cpu is not None and cpu <= 2)
        # Waiting holds no slot when every job in flight is polled in the window (far more jobs than slots) while
        # the slots are busy only a fraction of the time (polls running, not waiting).
        check(
            "no worker slot held while waiting",
            f"{poll['jobs_polled_in_window']:,} of {poll['jobs']:,} jobs polled in {poll['window_s']:.0f}s on "
            f"{poll['concurrency']} slots; mean {poll['mean_active']:.2f} busy",
            poll["jobs_polled_in_window"] == poll["jobs"] and poll["mean_active"] < poll["concurrency"],
        )
    if e2e := report.get("e2e"):
        ratio = e2e["batchline"]["wall_s"] / e2e["io_floor"]["wall_s"]
        check("end to end within 2x of the raw I/O floor", f"{ratio:.2f}x", ratio <= 2)
        worker_side = (e2e["batchline"]["wall_s"] - e2e["batchline"]["create_s"]) / e2e["io_floor"]["wall_s"]
        check(
            "(after batch_create returns: worker side only) within 2x of the floor",
            f"{worker_side:.2f}x",
            worker_side <= 2,
        )
    if cache := report.get("cache"):
        on = cache["on"]["vs_off"]
        check(
            "cache, 50% repeats: half the requests sent and half the cost",
            f"{on['sent']:.2f}x sent, {_f(on['cost'], 2)}x cost, {on['wall']:.2f}x wall time",
            on["sent"] <= 0.5 and on["cost"] is not None and on["cost"] <= 0.51,
        )
    if agents := report.get("agents"):
        ours, theirs = agents["batchline"], agents["pydantic_ai"]
        check(
            "agents: one provider batch per round (3), as pydantic-ai makes",
            f"{ours['batches']:g} batches (pydantic-ai {theirs['batches']:g})",
            ours["batches"] <= 3,
        )
        check(
            "agents: the process holding the runs peaks lower than pydantic-ai's",
            f"{agents['ratios']['holder_rss']:.2f}x pydantic-ai's peak RSS",
            agents["ratios"]["holder_rss"] < 1,
        )
    return out


def cache_rows(cache: dict[str, Any]) -> list[str]:
    """The cache scenario's runs: requests sent, the job's cost, wall time, each against the run without it."""
    lines = [
        "",
        f"response cache: {cache['count']:,} requests, {cache['distinct']:,} distinct, end to end through a worker",
        "",
        "| cache | sent | batches | cached | tokens in | cost USD | wall s | sent vs off | cost vs off | wall vs off |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in ("off", "on", "warm"):
        fig = cache[mode]
        ratios = fig.get("vs_off") or {"sent": 1.0, "cost": 1.0, "wall": 1.0}
        cost = "-" if fig["cost_usd"] is None else f"{fig['cost_usd']:.4f}"
        lines.append(
            f"| {mode} | {fig['sent']:,.0f} | {fig['batches']:,.0f} | {fig['cached']:,.0f} | "
            f"{fig['input_tokens']:,.0f} | {cost} | {fig['wall_s']:.2f} | {ratios['sent']:.2f}x | "
            f"{_f(ratios['cost'], 2)}x | {ratios['wall']:.2f}x |"
        )
    return lines
