"""Markdown for a Results: Partsboard beside the relay, and the ratio."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .scenarios import Results, loss

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


def _others(results: Results) -> float | None:
    """Mean CPU (cores) used by processes outside the benchmark during measured steps."""
    values = []
    for system in results.systems.values():
        steps = list(system.get("steady", []))
        for sat in system.get("saturation", {}).values():
            steps += sat["steps"]
        values += [d["cpu"]["others"] for d in steps if "others" in d.get("cpu", {})]
    return sum(values) / len(values) if values else None


def render(results: Results) -> str:
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
           if _others(results) is not None else ""),
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
    out += targets(results)
    out += [END, ""]
    return "\n".join(out)


def targets(results: Results) -> list[str]:
    r = results.systems.get("relay", {})
    p = results.systems.get("partsboard", {})
    if not r or not p:
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
