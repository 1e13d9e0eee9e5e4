"""Markdown for a Results: Partsboard beside the relay, and the ratio."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .scenarios import GENERATOR_LATE_MS, Results, loss

BEGIN = "<!-- bench:begin (written by python -m bench; edit outside these markers) -->"
END = "<!-- bench:end -->"


def _num(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}f}"


def _ratio(relay: float | int | None, pb: float | int | None) -> str:
    if relay is None or pb is None or relay == 0:
        return "-"
    return f"{pb / relay:.2f}x"


def _row(label: str, relay: float | int | None, pb: float | int | None, digits: int = 1) -> str:
    return f"| {label} | {_num(relay, digits)} | {_num(pb, digits)} | {_ratio(relay, pb)} |"


def _get(d: dict[str, Any] | None, *path: str) -> Any:
    cur: Any = d
    for key in path:
        if cur is None:
            return None
        cur = cur.get(key) if isinstance(cur, dict) else None
    return cur


def _per_msg(d: dict[str, Any] | None) -> float | None:
    """Server CPU microseconds per message received or sent (acks not counted)."""
    if not d:
        return None
    msgs = d["rate_in"] + d["rate_out"]
    return d["cpu"]["server"] / msgs * 1e6 if msgs else None


def _standard_steps(system: dict[str, Any]) -> list[dict[str, Any]]:
    steps = list(system.get("steady", []))
    for sat in system.get("saturation", {}).values():
        steps += sat["steps"]
    return steps


def _others(results: Results) -> float | None:
    """Mean CPU (cores) used by processes outside the benchmark during measured steps."""
    values = [d["cpu"]["others"] for system in results.systems.values()
              for d in _standard_steps(system) if "others" in d.get("cpu", {})]
    return sum(values) / len(values) if values else None


def _all_steps(results: Results) -> list[dict[str, Any]]:
    return [d for system in results.systems.values()
            for d in _standard_steps(system)
            + [d for shape in system.get("shape", {}).values() for d in shape]]


def speed_text(results: Results) -> str:
    """How far the machine's speed moved over the run (`procs.speed_probe_us` before each
    step): a figure measured while the machine was slower is not the server's doing."""
    probes = [d["probe_us"] for d in _all_steps(results) if d.get("probe_us")]
    if not probes:
        return ""
    low, high = min(probes), max(probes)
    return (f" The machine's speed: a fixed piece of Python took {low:,.0f} to {high:,.0f} µs "
            f"of CPU before the steps ({high / low:.2f}x from its fastest to its slowest).")


def render(results: Results) -> str:
    if "cluster" in results.systems:
        return render_cluster(results)
    r = results.systems.get("relay", {})
    p = results.systems.get("partsboard", {})
    m = results.machine
    plan = results.plan
    out: list[str] = [BEGIN, ""]
    out += [
        f"Run {m['date']} at commit `{m['commit'] or '?'}`, in {results.seconds / 60:.1f} min.",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['mem_gib']} GiB RAM, Python "
        f"{m['python']}, Linux {m['kernel']}, {m['redis']}. Server, redis-server and "
        f"{plan['workers']} load generator processes share the machine; all traffic is on "
        "127.0.0.1."
        + (f" Benchmarked processes ran at nice {m['nice']}." if m.get("nice") else "")
        + (f" Other work on the machine used {_others(results):.2f} cores on average during "
           "the measured steps (the machine is shared; see \"other processes' CPU\")."
           if _others(results) is not None else "") + speed_text(results),
        "",
        f"Load per room: {plan['cmd_rate']} committed commands/s (60% part.move, 25% "
        f"part.blend, 15% part.add then part.reveal; part.remove once a partner has added "
        f"a dozen) and {plan['drag_rate']} drag updates/s (bursts of 10 at 10/s), from the "
        f"two partners; steps of {plan['step_seconds']:.0f} s. Latency is from the sender's "
        "send to the arrival at each other member who may see it (commands: every member, "
        "the sender included, gets the event; ack: send to the sender's ack).",
        "",
    ]
    # steady
    out += ["### Steady load", ""]
    steady_p = {d["rooms"]: d for d in p.get("steady", [])}
    for d_r in r.get("steady", []):
        rooms = d_r["rooms"]
        d_p = steady_p.get(rooms)
        out += [f"**{rooms} rooms ({3 * rooms} connections)**", "",
                "| metric | relay | Partsboard | ratio |", "|---|---:|---:|---:|"]
        for kind, label in (("cmd", "command fan-out"), ("ack", "command ack"),
                            ("drag", "drag fan-out")):
            for q in ("p50", "p90", "p99", "max"):
                out.append(_row(f"{label} {q} (ms)", _get(d_r, "lat", kind, q),
                                _get(d_p, "lat", kind, q), 2))
        out.append(_row("deliveries measured", _get(d_r, "lat", "cmd", "n"),
                        _get(d_p, "lat", "cmd", "n")))
        out.append(_row("lost + duplicated + gaps", loss(d_r), loss(d_p) if d_p else None))
        out.append(_row("server CPU (cores)", _get(d_r, "cpu", "server"),
                        _get(d_p, "cpu", "server"), 2))
        out.append(_row("server CPU per message in+out (us)", _per_msg(d_r), _per_msg(d_p)))
        out.append(_row("redis CPU (cores)", _get(d_r, "cpu", "redis"),
                        _get(d_p, "cpu", "redis"), 2))
        out.append(_row("generator CPU (cores)", _get(d_r, "cpu", "generator"),
                        _get(d_p, "cpu", "generator"), 2))
        out.append(_row("other processes' CPU (cores)", _get(d_r, "cpu", "others"),
                        _get(d_p, "cpu", "others"), 2))
        out.append(_row("refused (error frames)", sum(d_r["errors"].values()),
                        sum(d_p["errors"].values()) if d_p else None))
        out.append(_row("server RSS (MiB)", _get(d_r, "rss_mib"), _get(d_p, "rss_mib")))
        out.append(_row("server peak RSS (MiB)", _get(d_r, "peak_rss_mib"),
                        _get(d_p, "peak_rss_mib")))
        out.append(_row("generator schedule lag p99 (ms)", _get(d_r, "lag_p99"),
                        _get(d_p, "lag_p99"), 2))
        out.append("")
    # memory
    mr, mp = r.get("memory"), p.get("memory")
    if mr or mp:
        rooms = (mr or mp or {}).get("rooms")
        out += ["### Memory (idle rooms)", "",
                f"Server RSS after opening {rooms} rooms and setting them up, minus its RSS "
                "at start.", "",
                "| metric | relay | Partsboard | ratio |", "|---|---:|---:|---:|",
                _row("server RSS at start (MiB)", _get(mr, "base_rss_mib"),
                     _get(mp, "base_rss_mib")),
                _row(f"server RSS with {rooms} rooms (MiB)", _get(mr, "rss_mib"),
                     _get(mp, "rss_mib")),
                _row("KiB per connection", _get(mr, "kib_per_connection"),
                     _get(mp, "kib_per_connection")),
                _row("idle rooms per GiB (one process)", _get(mr, "rooms_per_gib"),
                     _get(mp, "rooms_per_gib")),
                _row("Redis KiB per room", _get(mr, "redis_kib_per_room"),
                     _get(mp, "redis_kib_per_room")),
                _row("server CPU while idle (cores)", _get(r, "idle", "cpu", "server"),
                     _get(p, "idle", "cpu", "server"), 3),
                _row("redis CPU while idle (cores)", _get(r, "idle", "cpu", "redis"),
                     _get(p, "idle", "cpu", "redis"), 3),
                ""]
    # saturation
    if r.get("saturation") or p.get("saturation"):
        out += ["### Saturation", "",
                f"Offered load raised step by step ({plan['sat_seconds']:.0f} s each) over "
                f"{plan['sweep'][-1]} rooms until p99 > {plan['sat_p99_ms']:.0f} ms, anything "
                "is lost or refused, or the generator cannot keep up. Throughput = the "
                "highest step that passed (messages in/s; out = deliveries/s).", "",
                "| kind | relay in/s (out/s) | Partsboard in/s (out/s) | ratio (in) | "
                "first failing step |", "|---|---:|---:|---:|---|"]
        for what, label in (("cmd", "committed commands"), ("drag", "drag updates")):
            sr, sp = _get(r, "saturation", what), _get(p, "saturation", what)
            br, bp = _get(sr, "best"), _get(sp, "best")
            fails = []
            for name, s in (("relay", sr), ("Partsboard", sp)):
                if s and s["saturated"]:
                    last = s["steps"][-1]
                    fails.append(f"{name}: {last['offered']:.0f}/s (p99 "
                                 f"{_num(last['lat'][what]['p99'])} ms, loss "
                                 f"{loss(last, (what,))}, errors {last['errors'] or 0})")
                elif s:
                    fails.append(f"{name}: none (not saturated)")
            def cell(b: dict[str, Any] | None) -> str:
                if not b:
                    return "-"
                return f"{b['rate_in']:.0f} ({b['rate_out']:.0f})"
            out.append(f"| {label} | {cell(br)} | {cell(bp)} | "
                       f"{_ratio(_get(br, 'rate_in'), _get(bp, 'rate_in'))} | "
                       f"{'; '.join(fails)} |")
        out.append("")
    # storm
    sr, sp = r.get("storm"), p.get("storm")
    if sr or sp:
        d = sr or sp or {}
        out += ["### Recovery storm", "",
                f"kill -9 of the server under the steady load with {d.get('rooms')} rooms "
                f"({d.get('connections_total')} connections), then started again at once. The "
                "relay's clients just reconnect; Partsboard's resume with {epoch, seq}, check "
                "every seq and resend unacknowledged commands.", "",
                "| metric | relay | Partsboard | ratio |", "|---|---:|---:|---:|",
                _row("clients back", _get(sr, "resumed"), _get(sp, "resumed")),
                _row("restart to /healthz (s)", _get(sr, "restart_to_ready_s"),
                     _get(sp, "restart_to_ready_s"), 2),
                _row("restart to every client back (s)", _get(sr, "recovery_s"),
                     _get(sp, "recovery_s"), 2),
                _row("restart to half the clients back (s)", _get(sr, "p50_resume_s"),
                     _get(sp, "p50_resume_s"), 2),
                _row("seq gaps", None, _get(sp, "seq_gaps")),
                _row("seq duplicates", None, _get(sp, "seq_dups")),
                _row("commands applied twice", None,
                     (_get(sp, "unexpected_seqs") or 0) + (_get(sp, "x_dups") or 0)
                     if sp else None),
                _row("commands lost or never acked", None,
                     (_get(sp, "lost", "cmd") or 0) + (_get(sp, "unacked") or 0)
                     if sp else None),
                _row("full snapshots instead of replay", None,
                     _get(sp, "checks", "snapshots") or 0 if sp else None),
                _row("commands resent", _get(sr, "checks", "resent"),
                     _get(sp, "checks", "resent")),
                ""]
    out += shape_section(results)
    out += targets(results)
    out += shape_targets(results)
    out += [END, ""]
    return "\n".join(out)


def targets(results: Results) -> list[str]:
    r = results.systems.get("relay", {})
    p = results.systems.get("partsboard", {})
    if not r or not p:
        return []
    if not (r.get("steady") or r.get("saturation") or r.get("storm")):
        return []
    rows = ["### Targets (issue 6)", "", "| target | measured | met |", "|---|---|---|"]

    def add(name: str, measured: str, ok: bool | None) -> None:
        rows.append(f"| {name} | {measured} | {'yes' if ok else 'no' if ok is not None else '-'} |")

    sr = r.get("steady", [])
    sp = p.get("steady", [])
    if sr and sp:
        lr, lp = sr[-1], sp[-1]
        rooms = lp["rooms"]
        add(f"steady {rooms} rooms: zero loss", f"{loss(lp)}", loss(lp) == 0)
        for kind, limit in (("drag", 2.0), ("cmd", 3.0)):
            a, b = lr["lat"][kind]["p99"], lp["lat"][kind]["p99"]
            ratio = b / a if a and b else None
            add(f"steady {rooms} rooms: {kind} p99 within {limit:.0f}x relay",
                f"{_num(b, 2)} ms vs {_num(a, 2)} ms = {_num(ratio, 2)}x",
                ratio is not None and ratio <= limit)
    for what, limit in (("cmd", 0.4), ("drag", 0.8)):
        br = _get(r, "saturation", what, "best", "rate_in")
        bp = _get(p, "saturation", what, "best", "rate_in")
        ratio = bp / br if br and bp else None
        relay_saturated = bool(_get(r, "saturation", what, "saturated"))
        add(f"saturation {what}: at least {limit:.0%} of relay",
            f"{_num(bp)} vs {_num(br)} /s = {_num(ratio, 2)}"
            + ("" if relay_saturated else " (relay not saturated: no verdict)"),
            (ratio is not None and ratio >= limit) if relay_saturated else None)
    mr, mp = _get(r, "memory", "kib_per_connection"), _get(p, "memory", "kib_per_connection")
    if mr and mp:
        add("memory per connection within 1.5x relay",
            f"{mp:.1f} vs {mr:.1f} KiB = {mp / mr:.2f}x", mp / mr <= 1.5)
    st = p.get("storm")
    if st:
        clean = (st["seq_gaps"] == 0 and st["seq_dups"] == 0 and st["unexpected_seqs"] == 0
                 and st["x_dups"] == 0 and st["unacked"] == 0 and not st["lost"].get("cmd"))
        rec = st.get("recovery_s")
        add(f"storm: all {st['connections_total']} resumed within 10 s, no gaps or dups",
            f"{st['resumed']} resumed, {_num(rec, 2)} s, clean={clean}",
            st["resumed"] == st["connections_total"] and rec is not None and rec <= 10
            and clean)
    rows.append("")
    return rows


def write(results: Results, path: Path) -> None:
    """Write the results into path between the markers, keeping any text around them."""
    block = render(results)
    if path.exists():
        text = path.read_text()
        if BEGIN in text and END in text:
            head = text.split(BEGIN, 1)[0]
            tail = text.split(END, 1)[1]
            path.write_text(head + block.rstrip("\n") + tail)
            return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Performance\n\n" + block)


# ---- the fixed-rate shape (issue 13) ----------------------------------------------------

def _us_per_in(d: dict[str, Any] | None) -> float | None:
    """Server CPU microseconds per message in (per committed command, per drag update)."""
    if not d or not d.get("rate_in"):
        return None
    return float(d["cpu"]["server"] / d["rate_in"] * 1e6)


def _lag(d: dict[str, Any] | None) -> str:
    lag = (d or {}).get("loop_lag") or {}
    if not lag.get("n"):
        return "-"
    cell = f"{_num(lag['p99'])} / {_bound(lag['max'])}"
    off_cpu = ((d or {}).get("loop_lag_off_cpu") or {}).get("max")
    if off_cpu is not None and off_cpu > 1.0:  # past the first bucket
        cell += f", off CPU {_bound(off_cpu)}"
    return cell


def _bound(ms: float) -> str:
    """A lag histogram's bucket bound in ms; past the last one, more than 5 s."""
    return ">5000" if ms == float("inf") else _num(ms)


def _shape_cell(d: dict[str, Any] | None, what: str) -> str:
    if not d:
        return "- | - | -"
    mark = "" if d["ok"] else " **fail**"
    first = d.get("first_try")
    if first:
        late = first.get("lag_p99") or 0.0
        mark += f" (2nd try; 1st {_num(first['p99'], 1)}" + (
            f", the generator {late:.1f} ms late" if late >= GENERATOR_LATE_MS else "") + ")"
    core = d["cpu"].get("core")
    return (f"{_num(_get(d, 'lat', what, 'p50'), 1)} / {_num(_get(d, 'lat', what, 'p99'), 1)}"
            f"{mark} | {d['cpu']['server']:.2f}{'' if core is None else f' ({core:.0%})'} | "
            f"{_lag(d)}")


def _steps(system: dict[str, Any], label: str) -> list[dict[str, Any]]:
    return list(_get(system, "shape", label) or [])


def _last(system: dict[str, Any], label: str) -> dict[str, Any] | None:
    steps = _steps(system, label)
    return steps[-1] if steps else None


def _saturation(system: dict[str, Any], label: str) -> dict[str, Any] | None:
    passed = [d for d in _steps(system, label) if d["ok"]]
    return max(passed, key=lambda d: d["offered"]) if passed else None


def shape_section(results: Results) -> list[str]:
    r = results.systems.get("relay", {})
    p = results.systems.get("partsboard", {})
    if not (_get(r, "shape") or _get(p, "shape")):
        return []
    plan = results.plan
    pinned = results.machine.get("pinned")
    out = ["### Fixed-rate shape (issue 13)", "",
           f"{plan['shape_rooms']} rooms of three on servers started just before; in each "
           "room one partner at a time (a and b take turns each second) sends at a fixed "
           "rate, and every member must receive: `part.move` commands (all three members get "
           "the event) or drag updates (the two others get it). The offered rate is raised "
           f"step by step ({plan['shape_seconds']:.0f} s each) until p99 > "
           f"{plan['sat_p99_ms']:.0f} ms, a loss, a refusal or the generator falling behind. "
           "Latency p50 / p99 in ms; server CPU in cores"
           + (" (the server pinned to CPU 0, Redis and the generators to CPU 1; in brackets "
              "how busy CPU 0 was, other work on the machine included)" if pinned
              else "") + "; event-loop lag p99 / max in ms from each server's "
           "`partsboard_event_loop_lag_seconds` histogram (bucket bounds), and after 'off "
           "CPU' the largest part of one lag during which the server's loop thread provably "
           "did not run (descheduled, stolen by the hypervisor, or blocked in a system call; "
           "shown when over 1 ms). A step that fails "
           "is run once more and the second try counts (the first one's p99 beside it).", ""]
    head = ("| offered/s | relay p50 / p99 | relay CPU | relay loop lag | Partsboard p50 / p99 "
            "| Partsboard CPU | Partsboard loop lag | CPU µs per message in: relay / "
            "Partsboard |")
    rule = "|---:|---:|---:|---:|---:|---:|---:|---:|"
    for label, what, title in (("first", "cmd", "First step right after the start (commands)"),
                               ("cmd", "cmd", "Commands (`part.move`)"),
                               ("drag", "drag", "Drag updates")):
        rs = {d["offered"]: d for d in _steps(r, label)}
        ps = {d["offered"]: d for d in _steps(p, label)}
        if not rs and not ps:
            continue
        out += [f"**{title}**", "", head, rule]
        for rate in sorted(set(rs) | set(ps)):
            dr, dp = rs.get(rate), ps.get(rate)
            out.append(f"| {rate:.0f} | {_shape_cell(dr, what)} | {_shape_cell(dp, what)} | "
                       f"{_num(_us_per_in(dr))} / {_num(_us_per_in(dp))} |")
        out.append("")
    out += lag_histogram(p)
    out += inside_server(p, "cmd")
    out += inside_server(p, "drag")
    out += gc_pauses(p)
    ro, po = _last(r, "overload"), _last(p, "overload")
    if ro or po:
        def check(d: dict[str, Any] | None, key: str) -> int | None:
            return None if d is None else int(d["checks"].get(key, 0))

        def lost(d: dict[str, Any] | None) -> int | None:
            return None if d is None else loss(d, ("cmd",))

        out += ["**Overload**: commands at "
                f"{plan['overload_factor']:.0f}x the rate each system's command ramp failed at for "
                f"{plan['overload_seconds']:.0f} s; busy answers are resent under the same id "
                "after the pause they ask for.", "",
                "| metric | relay | Partsboard | ratio |", "|---|---:|---:|---:|",
                _row("offered (commands/s)", _get(ro, "offered"), _get(po, "offered")),
                _row("commands sent", _get(ro, "sent", "cmd"), _get(po, "sent", "cmd")),
                _row("busy answers", check(ro, "error_busy"), check(po, "error_busy")),
                _row("internal answers", check(ro, "error_internal"),
                     check(po, "error_internal")),
                _row("members cut (4408)", check(ro, "closed_4408"), check(po, "closed_4408")),
                _row("presence wrong (frames + at the end)", None, _get(po, "presence_wrong")),
                _row("acknowledged commands lost, or never acked", lost(ro), lost(po)),
                _row("every member had every committed event, after the overload (s)",
                     _get(ro, "delivered_s"), _get(po, "delivered_s"), 2),
                _row("every resent command committed and delivered, after the overload (s)",
                     _get(ro, "caught_up_s"), _get(po, "caught_up_s"), 2),
                _row("command p99 (ms)", _get(ro, "lat", "cmd", "p99"),
                     _get(po, "lat", "cmd", "p99")),
                _row("server CPU (cores)", _get(ro, "cpu", "server"), _get(po, "cpu", "server"),
                     2),
                _row("other processes' CPU (cores)", _get(ro, "cpu", "others"),
                     _get(po, "cpu", "others"), 2),
                f"| event-loop lag p99 / max (ms) | {_lag(ro)} | {_lag(po)} | - |",
                ""]
    return out


def _core_busy(d: dict[str, Any]) -> float:
    """How busy the server's core was: pinned, everything that ran on its CPU (other work
    on a shared machine included), and never less than the server's own CPU, which ran
    nowhere else (on some virtual machines a CPU's line in /proc/stat reads low now and
    then: 47% busy beside a server using 79% of it); else the server's own CPU."""
    return float(max(d["cpu"].get("core", 0.0), d["cpu"]["server"]))


def _cpu_text(d: dict[str, Any]) -> str:
    """The server's CPU at a step, and the generator's send lag once it was late enough for
    its own delays to reach the measured latency (a generator behind its schedule also
    reads late, and a late receive is timed as a late delivery)."""
    stolen = d["cpu"].get("stolen")
    late = d.get("lag_p99") or 0.0
    return f"server {d['cpu']['server']:.2f} cores" + (
        "" if "core" not in d["cpu"] else f", its core {_core_busy(d):.0%} busy") + (
        f", {stolen:.0%} stolen by the hypervisor" if stolen else "") + (
        f"; the generator sent {late:.1f} ms late at p99" if late >= GENERATOR_LATE_MS
        else "")


def lag_histogram(system: dict[str, Any]) -> list[str]:
    """Partsboard's event-loop lag over each step of the shape: the share of the lag
    monitor's samples (a 20 ms timer) in each bucket."""
    steps = [(label, d) for label in ("first", "cmd", "drag", "overload")
             for d in _steps(system, label) if (d.get("loop_lag") or {}).get("buckets")]
    if not steps:
        return []
    bounds = list(steps[0][1]["loop_lag"]["buckets"])
    out = ["**Partsboard's event-loop lag** (how late a 20 ms timer ran): share of the samples "
           "of each step per bucket, by upper bound in ms.", "",
           "| step | samples | " + " | ".join(f"≤ {b}" if b != "inf" else "more" for b in bounds)
           + " |", "|---|---:|" + "---:|" * len(bounds)]
    for label, d in steps:
        lag = d["loop_lag"]
        cells = [f"{100 * lag['buckets'].get(b, 0) / lag['n']:.1f}%" if lag["buckets"].get(b)
                 else "" for b in bounds]
        out.append(f"| {label} {d['offered']:.0f}/s | {lag['n']:.0f} | " + " | ".join(cells)
                   + " |")
    return [*out, ""]


# What each shape ramp's steps record inside Partsboard's server, from its /metrics.
_INSIDE = {
    "drag": ("drag_relay", "drags/s", "A drag inside Partsboard's server",
             "`partsboard_drag_relay_seconds`: from the sender's frame decoded in the reader's "
             "step to the frame's send to each member who sees it"),
    "cmd": ("commit", "commands/s", "A command inside Partsboard's server",
            "`partsboard_commit_seconds`: from the command's frame read to its commit in Redis, "
            "waiting for its turn included"),
}


def _inside_steps(system: dict[str, Any], label: str) -> list[dict[str, Any]]:
    key = _INSIDE[label][0]
    return [d for d in _steps(system, label) if (d.get(key) or {}).get("n")]


def inside_server(system: dict[str, Any], label: str) -> list[str]:
    """Partsboard's own share of a ramp's latency in each step, from its histogram, beside
    the end-to-end figures."""
    steps = _inside_steps(system, label)
    if not steps:
        return []
    key, unit, title, what = _INSIDE[label]
    out = [f"**{title}** ({what}; bucket bounds) beside the end-to-end latency the generator "
           "measured, in ms.", "",
           f"| {unit} | in the server p50 / p99 | end to end p50 / p99 | its core busy | of "
           "which stolen by the hypervisor | generators' CPU (cores) | their send lag p99 |",
           "|---:|---:|---:|---:|---:|---:|---:|"]
    for d in steps:
        inside = d[key]
        out.append(f"| {d['offered']:.0f} | {_num(inside['p50'])} / {_num(inside['p99'])} | "
                   f"{_num(_get(d, 'lat', label, 'p50'), 1)} / "
                   f"{_num(_get(d, 'lat', label, 'p99'), 1)} | {_core_busy(d):.0%} | "
                   f"{_pct(d['cpu'].get('stolen'))} | {_num(d['cpu'].get('generator'), 2)} | "
                   f"{_num(d.get('lag_p99'), 1)} |")
    out += ["", "The generators share CPU 1 with Redis. They sleep until each message is due "
            "(a timerfd, to the microsecond). Their send lag is how late a message left "
            "against its due time: a generator that is late sends what it owes in a burst, "
            "and the end-to-end tail includes that."]
    return [*out, ""]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _flat_inside(system: dict[str, Any], label: str) -> tuple[float | None, str]:
    """A ramp's p99 inside the server (bucket bounds): see `_worst_ratio`."""
    steps = _inside_steps(system, label)
    if not steps:
        return None, "not measured"
    key = _INSIDE[label][0]
    worst, low, where = _worst_ratio(steps, lambda d: d[key]["p99"])
    return worst, (f"low-load p99 under {_num(low)} ms; worst {_num(worst, 2)}x "
                   f"({where}; bucket bounds)")


def gc_pauses(system: dict[str, Any]) -> list[str]:
    """Partsboard's garbage collections over each step of the shape (gc.callbacks), to
    set beside its event-loop lag: a collection holds the loop for as long as it takes."""
    steps = [(label, d) for label in ("first", "cmd", "drag", "overload")
             for d in _steps(system, label) if "gc" in d]
    if not steps:
        return []
    out = ["**Partsboard's garbage collections** in each step: how many (full ones: generation "
           "2), the pause p99 / max (bucket bounds, ms), and the time they held the process.",
           "", "| step | collections | full | pause p99 / max (ms) | paused in total (ms) "
           "| share of the step |", "|---|---:|---:|---:|---:|---:|"]
    for label, d in steps:
        gc = d["gc"]
        top = gc.get("max")
        pause = ("-" if not gc.get("n") else
                 f"{_num(gc['p99'])} / {'>1000' if top == float('inf') else _num(top)}")
        share = gc["seconds"] / gc["window_s"] if gc.get("window_s") else 0.0
        out.append(f"| {label} {d['offered']:.0f}/s | {gc['n']:.0f} | {gc['full']:.0f} | "
                   f"{pause} | {1000 * gc['seconds']:.1f} | {share:.2%} |")
    return [*out, ""]


def _worst_ratio(steps: list[dict[str, Any]], p99_of: Callable[[dict[str, Any]], float | None],
                 busy: float = 0.8) -> tuple[float, float, str]:
    """The worst p99 / low-load p99 over the steps whose core was at most `busy` busy (the
    low-load p99 is the first step's), the low-load p99, and where the worst was."""
    low = p99_of(steps[0]) or float("inf")
    worst, where = 0.0, ""
    for d in steps:
        if _core_busy(d) > busy:
            continue  # past 80% (other work can take the core at any step)
        ratio = (p99_of(d) or float("inf")) / low
        if ratio > worst:
            worst, where = ratio, f"{d['offered']:.0f}/s, {_cpu_text(d)}{_slower(d, steps[0])}"
    return worst, low, where


SLOWER_FROM = 1.15  # the probe's ratio from which a step's text says the machine was slower


def _slower(d: dict[str, Any], low_load: dict[str, Any]) -> str:
    if not (d.get("probe_us") and low_load.get("probe_us")):
        return ""
    slower = d["probe_us"] / low_load["probe_us"]
    return (f"; the machine {slower:.2f}x slower than at the low-load step"
            if slower >= SLOWER_FROM else "")


def _flat_until_busy(system: dict[str, Any], label: str, what: str) -> tuple[float | None, str]:
    """A ramp's end-to-end p99 (see `_worst_ratio`); for commands, the first step after the
    start counts too."""
    steps = _steps(system, label)
    if not steps or steps[0]["lat"][what]["p99"] is None:
        return None, "no steps"
    worst, low, where = _worst_ratio(steps, lambda d: d["lat"][what]["p99"])
    first = _steps(system, "first")
    if label == "cmd" and first and first[0]["lat"][what]["p99"] is not None:
        ratio = first[0]["lat"][what]["p99"] / low
        if ratio > worst:
            worst, where = ratio, "the first step after the start"
    return worst, f"low-load p99 {_num(low, 2)} ms; worst {_num(worst, 2)}x ({where})"


def shape_targets(results: Results) -> list[str]:
    r = results.systems.get("relay", {})
    p = results.systems.get("partsboard", {})
    if not (_get(r, "shape") and _get(p, "shape")):
        return []
    rows = ["### Targets (issue 13)", "", "| target | measured | met |", "|---|---|---|"]

    def add(name: str, measured: str, ok: bool | None) -> None:
        rows.append(f"| {name} | {measured} | {'yes' if ok else 'no' if ok is not None else '-'} |")

    for label, name in (("drag", "drags"), ("cmd", "commands")):
        worst, text = _flat_until_busy(p, label, label)
        add(f"{name}: p99 within 3x of the low-load p99 until the server's core is 80% busy",
            text,
            worst is not None and worst <= 3.0)
    for label, name in (("drag", "drags"), ("cmd", "commands")):
        worst, text = _flat_inside(p, label)
        add(f"{name} inside the server (`{_INSIDE[label][3].split('`')[1]}`): p99 within 3x "
            "of the low-load p99 until its core is 80% busy", text,
            None if worst is None else worst <= 3.0)
    for label, limit in (("drag", 1.0), ("cmd", 0.5)):
        br, bp = _saturation(r, label), _saturation(p, label)
        relay_saturated = any(not d["ok"] for d in _steps(r, label))
        rate_r, rate_p = _get(br, "rate_in"), _get(bp, "rate_in")
        ratio = rate_p / rate_r if rate_r and rate_p else None
        add(f"{label} saturation at least {limit:.0%} of the relay's",
            f"{_num(rate_p)} vs {_num(rate_r)} /s = {_num(ratio, 2)}"
            + ("" if relay_saturated else " (relay not saturated: no verdict)"),
            (ratio is not None and ratio >= limit) if relay_saturated else None)
    br, bp = _saturation(r, "cmd"), _saturation(p, "cmd")
    common = min(_get(br, "offered") or 0, _get(bp, "offered") or 0)
    at_r = next((d for d in _steps(r, "cmd") if d["offered"] == common), None)
    at_p = next((d for d in _steps(p, "cmd") if d["offered"] == common), None)
    add("CPU per committed command beside the relay's per op",
        f"{_num(_us_per_in(at_p))} µs vs {_num(_us_per_in(at_r))} µs at {common:.0f}/s",
        None)
    po = _last(p, "overload")
    if po:
        internal = po["checks"].get("error_internal", 0)
        lost = loss(po, ("cmd",))
        caught = po.get("delivered_s")
        add("overload: 0 internal, 0 lost acked, presence right, every member caught up "
            "within 10 s",
            f"{internal} internal, {lost} lost, {po['presence_wrong']} wrong presence, members "
            f"had every committed event {_num(caught, 2)} s after it ("
            f"{po['checks'].get('error_busy', 0)} busy answers, "
            f"{po['checks'].get('closed_4408', 0)} cut; the resent backlog committed "
            f"{_num(po.get('caught_up_s'), 2)} s after it)",
            internal == 0 and lost == 0 and po["presence_wrong"] == 0 and caught is not None
            and caught <= 10.0)
    rows.append("")
    return rows


# ---- cluster mode ------------------------------------------------------------------------

CLUSTER_COLUMNS = (("partsboard", "one Redis, 1 process"), ("partsboard-2", "one Redis, 2"),
                   ("cluster", "cluster, 2"))


def _cluster_row(label: str, values: list[float | int | None], digits: int = 1) -> str:
    one, two, cluster = values
    return (f"| {label} | {' | '.join(_num(v, digits) for v in values)} | "
            f"{_ratio(two, cluster)} | {_ratio(one, cluster)} |")


def render_cluster(results: Results) -> str:
    """Cluster mode: a Redis Cluster of 3 shards (2 server processes) beside one Redis
    (1 and 2 server processes), with the ratios."""
    systems = [results.systems.get(kind, {}) for kind, _ in CLUSTER_COLUMNS]
    m, plan = results.machine, results.plan
    header = ("| metric | " + " | ".join(label for _, label in CLUSTER_COLUMNS)
              + " | cluster ÷ one Redis, 2 | cluster ÷ one Redis, 1 |")
    rule = "|---|" + "---:|" * (len(CLUSTER_COLUMNS) + 2)
    others = _others(results)
    out: list[str] = [
        BEGIN, "",
        f"Run {m['date']} at commit `{m['commit'] or '?'}`, in {results.seconds / 60:.1f} min, "
        f"on {m['nproc']} CPUs ({m['cpu']}), {m['redis']}. Every process shares the machine: "
        "the cluster's 6 redis-server processes (3 primaries, 3 replicas), the server "
        f"processes and {plan['workers']} load generators."
        + (f" Other work on the machine used {others:.2f} cores on average during the "
           "measured steps." if others is not None else ""),
        "",
        "A room's three members are spread over the server processes (as behind a load "
        "balancer without sticky sessions), so with two processes most events cross from "
        "one process to the other through Redis. Load per room as in docs/performance.md "
        f"({plan['cmd_rate']} commands/s and {plan['drag_rate']} drag updates/s).", "",
    ]
    steady = [{d["rooms"]: d for d in system.get("steady", [])} for system in systems]
    for rooms in sorted(set().union(*steady)):
        ds = [by_rooms.get(rooms) for by_rooms in steady]
        out += [f"**Steady, {rooms} rooms ({3 * rooms} connections)**", "", header, rule]
        for kind, label in (("cmd", "command fan-out"), ("ack", "command ack"),
                            ("drag", "drag fan-out")):
            for q in ("p50", "p99"):
                out.append(_cluster_row(f"{label} {q} (ms)",
                                        [_get(d, "lat", kind, q) for d in ds], 2))
        out.append(_cluster_row("lost + duplicated + gaps",
                                [loss(d) if d else None for d in ds]))
        for what, label in (("server", "server CPU, all processes (cores)"),
                            ("redis", "Redis CPU, all nodes (cores)"),
                            ("others", "other processes' CPU (cores)")):
            out.append(_cluster_row(label, [_get(d, "cpu", what) for d in ds], 2))
        out.append(_cluster_row("server CPU per message in+out (us)",
                                [_per_msg(d) for d in ds]))
        out.append(_cluster_row("server RSS, all processes (MiB)",
                                [_get(d, "rss_mib") for d in ds]))
        out.append("")
    out += ["**Memory of idle rooms**", "", header, rule,
            _cluster_row("Redis KiB per room (primaries)",
                         [_get(s, "memory", "redis_kib_per_room") for s in systems]),
            _cluster_row("server KiB per connection",
                         [_get(s, "memory", "kib_per_connection") for s in systems]),
            _cluster_row("server CPU while idle (cores)",
                         [_get(s, "idle", "cpu", "server") for s in systems], 3),
            _cluster_row("Redis CPU while idle (cores)",
                         [_get(s, "idle", "cpu", "redis") for s in systems], 3), ""]
    if any(s.get("saturation") for s in systems):
        out += [f"**Saturation** over {plan['sweep'][-1] if plan['sweep'] else '-'} rooms: the "
                f"highest offered step (messages in/s) with p99 <= {plan['sat_p99_ms']:.0f} ms "
                "and nothing lost or refused.", "", header, rule]
        for what, label in (("cmd", "committed commands in/s"), ("drag", "drag updates in/s")):
            out.append(_cluster_row(label, [_get(s, "saturation", what, "best", "rate_in")
                                            for s in systems], 0))
            out.append(_cluster_row(f"{label}: deliveries out/s",
                                    [_get(s, "saturation", what, "best", "rate_out")
                                     for s in systems], 0))
        out.append("")
    if any(s.get("storm") for s in systems):
        storms = [s.get("storm") for s in systems]
        out += ["**Recovery storm**: kill -9 of one server process under the steady load, "
                "started again at once (with two processes, half the connections move).", "",
                header, rule,
                _cluster_row("clients back", [_get(d, "resumed") for d in storms]),
                _cluster_row("restart to every client back (s)",
                             [_get(d, "recovery_s") for d in storms], 2),
                _cluster_row("seq gaps + duplicates",
                             [(d["seq_gaps"] + d["seq_dups"]) if d else None for d in storms]),
                _cluster_row("commands lost or never acked",
                             [((d["lost"].get("cmd") or 0) + d["unacked"]) if d else None
                              for d in storms]), ""]
    out += [END, ""]
    return "\n".join(out)
