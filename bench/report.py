#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Turn the raw outputs of one scripts/bench.sh run into the results JSON,
the tables of docs/benchmarks.md and the SVG plots.

Percentiles use the nearest-rank method: p-th of n sorted samples is the
ceil(p/100 * n)-th. Times are in microseconds unless the key ends in _ms.
"""
import argparse
import datetime
import json
import math
import os
import platform
import re
import subprocess
import sys

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

STATE_NAMES = ["serving", "draining", "forcing", "closing"]


def summary(values):
    """Return n, p50, p90, p99, max and mean of a list of numbers."""
    values = sorted(values)
    n = len(values)
    if n == 0:
        return {"n": 0}

    def rank(p):
        return values[max(0, math.ceil(p / 100 * n) - 1)]

    return {
        "n": n,
        "p50": round(rank(50), 1),
        "p90": round(rank(90), 1),
        "p99": round(rank(99), 1),
        "max": round(values[-1], 1),
        "mean": round(sum(values) / n, 1),
    }


def load(raw, name):
    with open(os.path.join(raw, name)) as f:
        return json.load(f)


def parse_wrk(path):
    """Return requests/s and latency percentiles (µs) from wrk's text."""
    text = open(path).read()
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not rps:
        raise SystemExit(f"report: no Requests/sec in {path}:\n{text}")
    units = {"us": 1, "ms": 1000, "s": 1000000}
    latency = {}
    for pct, value, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$",
                                       text, re.M):
        latency["p" + pct] = round(float(value) * units[unit], 1)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    socket_errors = re.search(r"Socket errors:.*", text)
    return {
        "requests_per_s": float(rps.group(1)),
        "latency_us": latency,
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(0) if socket_errors else None,
    }


def target(met, text, quick):
    """Targets are reported but not asserted in quick mode."""
    return {"target": text, "met": None if quick else bool(met)}


def build_source_dir(build, root):
    """Return the source dir that the build dir was configured from."""
    try:
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("CMAKE_HOME_DIRECTORY:"):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return root


def live_zero_ms(timeline):
    """Return the first time after SIGTERM at which sbxd counted no live
    sandbox and no start in flight, or None."""
    for t, live, inflight in zip(timeline["t_ms"], timeline["live"],
                                 timeline["inflight"]):
        if t >= 0 and live == 0 and inflight == 0:
            return round(t, 1)
    return None


def judge_force(scenario, timeline, grace_ms, quick):
    """Judge the forced drain by the later of two times: the last VMM
    exit and the first zero of sbxd's live count in the BPF map."""
    zero = live_zero_ms(timeline)
    scenario["sigterm_to_live_zero_ms"] = zero
    empty = max(scenario["sigterm_to_last_vmm_exit_ms"],
                zero if zero is not None else float("inf"))
    scenario["node_empty_ms"] = empty if math.isfinite(empty) else None
    scenario.update(target(
        math.isfinite(empty) and empty <= grace_ms + 2000 and
        scenario["vmms_exited"] == scenario["sandboxes"],
        "node empty (every VMM exited and sbxd's live count 0) "
        "<= grace + 2 s", quick))


def machine_info(source, load_before, load_after, seconds):
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])

    def git(*args):
        return subprocess.run(["git", "-C", source, *args],
                              capture_output=True, text=True).stdout.strip()

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1048576, 1),
        "kernel": platform.release(),
        "source_dir": source,
        "commit": git("rev-parse", "--short=12", "HEAD"),
        "work_tree_dirty": bool(git("status", "--porcelain", "--",
                                    "src", "include", "guest", "bpf")),
        "date": datetime.datetime.now(datetime.timezone.utc)
        .strftime("%Y-%m-%dT%H:%M:%SZ"),
        "load_before": load_before,
        "load_after": load_after,
        "run_seconds": seconds,
    }


def build_results(args):
    raw = args.raw
    quick = args.quick
    cores = os.cpu_count()
    res = {"mode": "quick" if quick else "full"}
    source = build_source_dir(args.build, args.root)
    res["machine"] = machine_info(source, args.load_before, args.load_after,
                                  args.seconds)
    res["machine"]["busiest_processes_before"] = args.busy_before.strip()
    scen = {}

    floor_exec = load(raw, "floor-exec.json")
    floor_kvm = load(raw, "floor-kvm.json")
    fe, fk = summary(floor_exec["samples_us"]), summary(floor_kvm["samples_us"])
    floor_sum = round(fe["p50"] + fk["p50"], 1)
    scen["floor"] = {
        "what": "(a) fork+exec of a static binary that exits; (b) "
                "KVM_CREATE_VM, map RAM, run a CPL3 guest to its first "
                "port exit, close",
        "exec_us": fe, "kvm_us": fk, "sum_p50_us": floor_sum,
        "target": "report both and their sum", "met": None,
    }

    start = load(raw, "start.json")
    st = summary(start["samples_us"])
    r50, r99 = st["p50"] / floor_sum, st["p99"] / floor_sum
    scen["start"] = {
        "what": "POST /v1/sandboxes to its 201, sequential, each deleted "
                "after",
        "samples_us": st, "floor_sum_p50_us": floor_sum,
        "ratio_p50": round(r50, 2), "ratio_p99": round(r99, 2),
        **target(r50 <= 2 and r99 <= 5,
                 "p50 <= 2x floor sum, p99 <= 5x floor sum", quick),
    }

    qemu, vmm = load(raw, "peer-qemu.json"), load(raw, "peer-sbx-vmm.json")
    qw, qr = summary(qemu["wall_samples_us"]), summary(qemu["maxrss_samples_kib"])
    vw, vr = summary(vmm["wall_samples_us"]), summary(vmm["maxrss_samples_kib"])
    wall_ratio, rss_ratio = vw["p50"] / qw["p50"], vr["p50"] / qr["p50"]
    scen["peer"] = {
        "what": "whole-process wall time and max RSS: QEMU microvm with a "
                "64 KiB firmware that writes to isa-debug-exit, vs sbx-vmm "
                "running sbx-agent to `exit 0`",
        "qemu_command": " ".join(qemu["command"]),
        "qemu_wall_us": qw, "qemu_maxrss_kib": qr,
        "sbx_vmm_wall_us": vw, "sbx_vmm_maxrss_kib": vr,
        "ratio_wall_p50": round(wall_ratio, 3),
        "ratio_maxrss_p50": round(rss_ratio, 3),
        **target(wall_ratio <= 0.1 and rss_ratio <= 0.1,
                 "sbx-vmm <= 0.1x QEMU on wall time and max RSS", quick),
    }

    rate, floor_rate = load(raw, "rate.json"), load(raw, "floor-rate.json")
    per_core = rate["rate_per_s"] / cores
    floor_per_core = floor_rate["rate_per_s"] / floor_rate["workers"]
    scen["rate"] = {
        "what": f"create+delete cycles, {rate['clients']} concurrent "
                f"clients for {round(rate['seconds'])} s; floor: "
                f"{floor_rate['workers']} loops of fork + KVM "
                "create/run/destroy",
        "cycles": rate["cycles"], "at_capacity": rate["at_capacity"],
        "rate_per_s": round(rate["rate_per_s"], 1),
        "rate_per_core": round(per_core, 1),
        "cycle_us": summary(rate["cycle_samples_us"]),
        "floor_rate_per_s": round(floor_rate["rate_per_s"], 1),
        "floor_rate_per_core": round(floor_per_core, 1),
        "floor_cpu_s": floor_rate["cpu_s"],
        "ratio": round(per_core / floor_per_core, 3),
        **target(per_core >= 0.5 * floor_per_core,
                 ">= 0.5x floor rate per core", quick),
    }

    dens, floor_dens = load(raw, "density.json"), load(raw, "floor-density.json")
    mem = dens["memory"]
    scen["density"] = {
        "what": "idle 16 MiB sandboxes created until the count or the "
                "2 GiB MemAvailable reserve",
        "requested": dens["requested"], "held": dens["held"],
        "stopped_by": dens["stopped_by"],
        "create_s": round(dens["create_s"], 2),
        "delete_s": round(dens["delete_s"], 2),
        "host_kib_per_sandbox": round(mem["host_kib_per_sandbox"], 1),
        "vmm_pss_kib_mean": round(mem["vmm_pss_kib_mean"], 1),
        "vmm_rss_kib_mean": round(mem["vmm_rss_kib_mean"], 1),
        "sbxd_rss_kib_per_sandbox": round(mem["sbxd_rss_kib_per_sandbox"], 2),
        "sbxd_fds_per_sandbox": round(mem["sbxd_fds_per_sandbox"], 2),
        "floor": {k: (round(v, 1) if isinstance(v, float) else v)
                  for k, v in floor_dens.items() if k != "floor"},
        **target(dens["held"] >= 5000 and mem["host_kib_per_sandbox"] <= 1024,
                 ">= 5000 held, <= 1 MiB host memory each", quick),
    }

    ex = summary(load(raw, "exec.json")["samples_us"])
    scen["exec"] = {
        "what": "POST /v1/sandboxes/ID/exec `echo hi` on a warm sandbox, "
                "one at a time",
        "samples_us": ex,
        **target(ex["p50"] <= 150, "p50 <= 150 us", quick),
    }

    restore = load(raw, "restore.json")
    cold_us = summary(restore["cold_samples_us"])
    restored_us = summary(restore["restore_samples_us"])
    scen["restore"] = {
        "what": "restore from one snapshot vs cold start, alternating, "
                "API request to 201",
        "cold_samples_us": cold_us,
        "restore_samples_us": restored_us,
        "ratio_p50": round(restored_us["p50"] / cold_us["p50"], 3),
        **target(restored_us["p50"] <= cold_us["p50"],
                 "restore p50 <= cold start p50", quick),
    }

    drain = load(raw, "drain.json")
    tick = args.drain_poll_ms
    scen["drain"] = {
        "what": f"{drain['sandboxes']} live sandboxes; SIGTERM; after an "
                "idle wait each guest gets `exec exit 0`, one every "
                "20 ms",
        "sbxd_exit_status": drain["sbxd_exit_status"],
        "last_vmm_exit_to_sbxd_exit_ms":
            round(drain["last_vmm_exit_to_sbxd_exit_ms"], 2),
        "sigterm_to_sbxd_exit_ms": round(drain["sigterm_to_sbxd_exit_ms"], 1),
        "sbxd_cpu_ms": round(drain["sbxd_cpu_ms"], 2),
        "sbxd_cpu_pct_of_wall": round(drain["sbxd_cpu_pct_of_wall"], 3),
        "idle_wait_cpu_pct": round(drain.get("idle_wait_cpu_pct", 0), 3),
        "drain_poll_ms": tick,
        "timeline_source": drain["timeline_source"],
        **target(drain["last_vmm_exit_to_sbxd_exit_ms"] <= tick and
                 drain["sbxd_cpu_pct_of_wall"] <= 1 and
                 drain["sbxd_exit_status"] == 0,
                 f"last exit -> sbxd exit <= one poll tick ({tick} ms); "
                 "sbxd CPU <= 1% of wall", quick),
    }

    force = load(raw, "force.json")
    scen["force"] = {
        "what": f"{force['sandboxes']} ignore_stop sandboxes; "
                "SHUTDOWN_DRAIN_TIMEOUT=0, SBXD_STOP_GRACE=1s; SIGTERM",
        "sandboxes": force["sandboxes"],
        "vmms_exited": force["vmms_exited"],
        "sbxd_exit_status": force["sbxd_exit_status"],
        "sigterm_to_last_vmm_exit_ms":
            round(force["sigterm_to_last_vmm_exit_ms"], 1),
        "sigterm_to_sbxd_exit_ms": round(force["sigterm_to_sbxd_exit_ms"], 1),
        "sbxd_cpu_ms": round(force["sbxd_cpu_ms"], 1),
        "stop_grace_ms": args.stop_grace_ms,
    }
    judge_force(scen["force"], force["timeline"], args.stop_grace_ms, quick)

    wrk_sbxd = parse_wrk(os.path.join(raw, "wrk-sbxd.txt"))
    wrk_nginx = parse_wrk(os.path.join(raw, "wrk-nginx.txt"))
    wrk_healthz = parse_wrk(os.path.join(raw, "wrk-sbxd-healthz.txt"))
    body_bytes = int(open(os.path.join(raw, "api-body-bytes.txt")).read())
    api_ratio = wrk_sbxd["requests_per_s"] / wrk_nginx["requests_per_s"]
    scen["api"] = {
        "what": "wrk -t1 -c8, keep-alive, GET /v1/node over TCP loopback; "
                "nginx (1 worker) serves the same body as a static file",
        "body_bytes": body_bytes, "sbxd": wrk_sbxd, "nginx": wrk_nginx,
        "sbxd_healthz": wrk_healthz,
        "ratio": round(api_ratio, 3),
        **target(api_ratio >= 1.0 and wrk_sbxd["non_2xx"] == 0,
                 ">= 1.0x nginx requests/s", quick),
    }

    res["scenarios"] = scen
    res["raw"] = {
        "start_samples_us": start["samples_us"],
        "floor_exec_samples_us": floor_exec["samples_us"],
        "floor_kvm_samples_us": floor_kvm["samples_us"],
        "drain_timeline": drain["timeline"],
        "force_timeline": force["timeline"],
    }
    return res


def plot_start(res, path):
    raw = res["raw"]
    floor_sum = res["scenarios"]["floor"]["sum_p50_us"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for key, label in [("start_samples_us", "sbxd start (API create to 201)"),
                       ("floor_kvm_samples_us", "floor (b): KVM create, run, close"),
                       ("floor_exec_samples_us", "floor (a): fork+exec static binary")]:
        values = sorted(v / 1000 for v in raw[key])
        ys = [(i + 1) / len(values) for i in range(len(values))]
        ax.step(values, ys, where="post", label=label)
    for mult, style in [(1, ":"), (2, "--"), (5, "-.")]:
        ax.axvline(mult * floor_sum / 1000, color="grey", linestyle=style,
                   label=f"{mult}x floor sum ({mult * floor_sum / 1000:.2f} ms)")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("fraction of samples")
    ax.set_title("Start latency vs the floors (CDF)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)


def plot_timeline(timeline, sbxd_exit_ms, title, path):
    t = timeline["t_ms"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.step(t, timeline["live"], where="post", label="live sandboxes")
    ax.step(t, timeline["inflight"], where="post", label="in-flight starts")
    exits = timeline["vmm_exit_ms"]
    if exits:
        ax.plot(exits, [0] * len(exits), "|", color="black", markersize=8,
                label="VMM exits (pidfd)")
    ax.axvline(0, color="red", linestyle="--", label="SIGTERM")
    ax.axvline(sbxd_exit_ms, color="green", linestyle=":", label="sbxd exit")
    ax.set_xlabel("ms since SIGTERM")
    ax.set_ylabel("count")
    ax2 = ax.twinx()
    ax2.step(t, timeline["state"], where="post", color="purple", alpha=0.5,
             label="node state")
    ax2.set_yticks(range(len(STATE_NAMES)))
    ax2.set_yticklabels(STATE_NAMES)
    ax2.set_ylim(-0.2, len(STATE_NAMES) - 0.8)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8,
              loc="center right")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)


def fmt_us(value):
    return f"{value / 1000:.3f} ms" if value >= 1000 else f"{value:.1f} µs"


def met_text(scenario):
    met = scenario.get("met")
    if met is None:
        return "not asserted"
    return "**met**" if met else "**missed**"


def samples_row(name, s):
    return (f"| {name} | {s['n']} | {fmt_us(s['p50'])} | {fmt_us(s['p90'])} | "
            f"{fmt_us(s['p99'])} | {fmt_us(s['max'])} | {fmt_us(s['mean'])} |")


SAMPLES_HEAD = ("| series | n | p50 | p90 | p99 | max | mean |\n"
                "|---|---|---|---|---|---|---|")


def tables(res):
    """Return the generated Markdown for each marker name."""
    m, s = res["machine"], res["scenarios"]
    out = {}
    out["machine"] = "\n".join([
        "| | |", "|---|---|",
        f"| CPU | {m['cpu']}, {m['cores']} cores |",
        f"| memory | {m['memory_gib']} GiB |",
        f"| kernel | {m['kernel']} |",
        f"| commit | {m['commit']}"
        f"{' (built with uncommitted changes in src/)' if m['work_tree_dirty'] else ', built from a clean checkout'} |",
        f"| date | {m['date']} |",
        f"| load average before / after | {m['load_before']} / {m['load_after']} |",
        f"| busiest processes at the start (ps %CPU) | {m['busiest_processes_before']} |",
        f"| run time | {m['run_seconds']} s |",
    ])

    rows = ["| scenario | result | target | |", "|---|---|---|---|"]
    st, ex, fl = s["start"], s["exec"], s["floor"]
    rows.append(f"| start | p50 {fmt_us(st['samples_us']['p50'])} "
                f"({st['ratio_p50']}x floor sum), p99 "
                f"{fmt_us(st['samples_us']['p99'])} ({st['ratio_p99']}x) | "
                f"{st['target']} | {met_text(st)} |")
    rows.append(f"| floor | (a) {fmt_us(fl['exec_us']['p50'])} + (b) "
                f"{fmt_us(fl['kvm_us']['p50'])} = {fmt_us(fl['sum_p50_us'])} "
                f"(p50s) | {fl['target']} | |")
    pe = s["peer"]
    rows.append(f"| peer | sbx-vmm/QEMU: wall {pe['ratio_wall_p50']}x, max RSS "
                f"{pe['ratio_maxrss_p50']}x | {pe['target']} | {met_text(pe)} |")
    ra = s["rate"]
    rows.append(f"| rate | {ra['rate_per_core']}/s per core vs floor "
                f"{ra['floor_rate_per_core']}/s ({ra['ratio']}x) | "
                f"{ra['target']} | {met_text(ra)} |")
    de = s["density"]
    rows.append(f"| density | {de['held']} held, "
                f"{de['host_kib_per_sandbox']:.0f} KiB host memory each | "
                f"{de['target']} | {met_text(de)} |")
    rows.append(f"| exec | p50 {fmt_us(ex['samples_us']['p50'])}, p99 "
                f"{fmt_us(ex['samples_us']['p99'])} | {ex['target']} | "
                f"{met_text(ex)} |")
    rs = s["restore"]
    rows.append(f"| restore | p50 {fmt_us(rs['restore_samples_us']['p50'])} "
                f"vs cold {fmt_us(rs['cold_samples_us']['p50'])} "
                f"({rs['ratio_p50']}x) | {rs['target']} | {met_text(rs)} |")
    dr = s["drain"]
    rows.append(f"| drain | last exit to sbxd exit "
                f"{dr['last_vmm_exit_to_sbxd_exit_ms']} ms, sbxd CPU "
                f"{dr['sbxd_cpu_pct_of_wall']}% of wall | {dr['target']} | "
                f"{met_text(dr)} |")
    fo = s["force"]
    rows.append(f"| force | node empty {fo['node_empty_ms']} ms after "
                f"SIGTERM (last VMM exit {fo['sigterm_to_last_vmm_exit_ms']} "
                f"ms) | {fo['target']} | {met_text(fo)} |")
    ap = s["api"]
    rows.append(f"| api | {ap['sbxd']['requests_per_s']:.0f} vs nginx "
                f"{ap['nginx']['requests_per_s']:.0f} requests/s "
                f"({ap['ratio']}x) | {ap['target']} | {met_text(ap)} |")
    out["summary"] = "\n".join(rows)

    out["start"] = "\n".join([
        SAMPLES_HEAD,
        samples_row("start (create to 201)", st["samples_us"]),
        samples_row("floor (a) fork+exec", fl["exec_us"]),
        samples_row("floor (b) KVM cycle", fl["kvm_us"]),
        "", f"Floor sum (p50 + p50): {fmt_us(fl['sum_p50_us'])}. "
        f"Ratios: p50 {st['ratio_p50']}x, p99 {st['ratio_p99']}x.",
    ])
    out["peer"] = "\n".join([
        "| program | wall p50 | wall p99 | max RSS p50 | runs |",
        "|---|---|---|---|---|",
        f"| QEMU microvm | {fmt_us(pe['qemu_wall_us']['p50'])} | "
        f"{fmt_us(pe['qemu_wall_us']['p99'])} | "
        f"{pe['qemu_maxrss_kib']['p50'] / 1024:.1f} MiB | {pe['qemu_wall_us']['n']} |",
        f"| sbx-vmm | {fmt_us(pe['sbx_vmm_wall_us']['p50'])} | "
        f"{fmt_us(pe['sbx_vmm_wall_us']['p99'])} | "
        f"{pe['sbx_vmm_maxrss_kib']['p50'] / 1024:.1f} MiB | {pe['sbx_vmm_wall_us']['n']} |",
        "", f"Ratios sbx-vmm/QEMU: wall {pe['ratio_wall_p50']}x, max RSS "
        f"{pe['ratio_maxrss_p50']}x.",
    ])
    out["rate"] = "\n".join([
        "| series | cycles/s | per core | notes |", "|---|---|---|---|",
        f"| sbxd create+delete | {ra['rate_per_s']} | {ra['rate_per_core']} | "
        f"{ra['cycles']} cycles, {ra['at_capacity']} answered 429; cycle p50 "
        f"{fmt_us(ra['cycle_us']['p50'])}, p99 {fmt_us(ra['cycle_us']['p99'])} |",
        f"| floor: fork + KVM create/run/destroy | {ra['floor_rate_per_s']} | "
        f"{ra['floor_rate_per_core']} | children used {ra['floor_cpu_s']:.1f} "
        "CPU-seconds |",
    ])
    fd = de["floor"]
    out["density"] = "\n".join([
        "| series | held | host memory each (MemAvailable drop) | PSS each | RSS each | create time |",
        "|---|---|---|---|---|---|",
        f"| sbxd sandboxes | {de['held']} | {de['host_kib_per_sandbox']:.0f} KiB | "
        f"{de['vmm_pss_kib_mean']:.0f} KiB | {de['vmm_rss_kib_mean']:.0f} KiB | "
        f"{de['create_s']} s |",
        f"| floor: forked processes holding a VM | {fd['held']} | "
        f"{fd['host_kib_per_vm']:.0f} KiB | {fd['pss_kib_mean']:.0f} KiB | "
        f"{fd['rss_kib_mean']:.0f} KiB | {fd['create_s']} s |",
        "", f"Stopped by: {de['stopped_by']}. sbxd itself grew by "
        f"{de['sbxd_rss_kib_per_sandbox']} KiB RSS and "
        f"{de['sbxd_fds_per_sandbox']} file descriptors per sandbox. "
        f"Deleting them all took {de['delete_s']} s.",
    ])
    out["exec"] = "\n".join([SAMPLES_HEAD, samples_row("exec echo hi",
                                                       ex["samples_us"])])
    out["restore"] = "\n".join([
        SAMPLES_HEAD,
        samples_row("cold create", rs["cold_samples_us"]),
        samples_row("restore from snapshot", rs["restore_samples_us"])])
    out["drain"] = "\n".join([
        "| measure | value |", "|---|---|",
        f"| last VMM exit to sbxd exit | {dr['last_vmm_exit_to_sbxd_exit_ms']} ms |",
        f"| SIGTERM to sbxd exit | {dr['sigterm_to_sbxd_exit_ms']} ms |",
        f"| sbxd CPU, SIGTERM to exit | {dr['sbxd_cpu_ms']} ms "
        f"({dr['sbxd_cpu_pct_of_wall']}% of wall) |",
        f"| sbxd CPU in the idle wait before the first end | "
        f"{dr['idle_wait_cpu_pct']}% |",
        f"| sbxd exit status | {dr['sbxd_exit_status']} |",
        f"| timeline source | {dr['timeline_source']} |",
    ])
    out["force"] = "\n".join([
        "| measure | value |", "|---|---|",
        f"| VMMs exited | {fo['vmms_exited']} |",
        f"| SIGTERM to last VMM exit (pidfds) | {fo['sigterm_to_last_vmm_exit_ms']} ms |",
        f"| SIGTERM to sbxd's live count 0 (BPF map) | {fo['sigterm_to_live_zero_ms']} ms |",
        f"| SIGTERM to sbxd exit | {fo['sigterm_to_sbxd_exit_ms']} ms |",
        f"| sbxd CPU | {fo['sbxd_cpu_ms']} ms |",
        f"| sbxd exit status | {fo['sbxd_exit_status']} |",
    ])
    lat = ["p50", "p90", "p99"]

    def lat_cells(w):
        return " | ".join(fmt_us(w["latency_us"][p]) if p in w["latency_us"]
                          else "-" for p in lat)

    out["api"] = "\n".join([
        "| server | requests/s | p50 | p90 | p99 |", "|---|---|---|---|---|",
        f"| sbxd GET /v1/node | {ap['sbxd']['requests_per_s']:.0f} | {lat_cells(ap['sbxd'])} |",
        f"| nginx static file | {ap['nginx']['requests_per_s']:.0f} | {lat_cells(ap['nginx'])} |",
        f"| sbxd GET /healthz (reference, not the target) | "
        f"{ap['sbxd_healthz']['requests_per_s']:.0f} | {lat_cells(ap['sbxd_healthz'])} |",
        "", f"Body: {ap['body_bytes']} bytes. Ratio sbxd/nginx: {ap['ratio']}x.",
    ])
    return out


def update_docs(path, generated):
    text = open(path).read()
    for name, body in generated.items():
        pattern = re.compile(
            rf"(<!-- bench:begin {name} -->\n).*?(<!-- bench:end {name} -->)",
            re.S)
        if not pattern.search(text):
            raise SystemExit(f"report: marker bench:begin {name} missing in {path}")
        text = pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2),
                           text)
    with open(path, "w") as f:
        f.write(text)


def print_summary(res):
    for name, s in res["scenarios"].items():
        met = {None: "-", True: "met", False: "MISSED"}[s.get("met")]
        print(f"{name:8} {met:7} {s.get('target', '')}")


def rebuild_results(path, quick):
    """Load a results file and re-judge what its raw part allows."""
    with open(path) as f:
        res = json.load(f)
    force = res["scenarios"]["force"]
    timeline = res["raw"]["force_timeline"]
    # Files written before these keys existed: the count is the live
    # sandboxes at the first sample, and bench.sh has always used 1 s.
    force.setdefault("sandboxes", timeline["live"][0])
    force.setdefault("stop_grace_ms", 1000)
    judge_force(force, timeline, force["stop_grace_ms"], quick)
    return res


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--raw", help="directory of bench.sh's raw outputs")
    parser.add_argument("--rebuild", metavar="JSON",
                        help="regenerate JSON, plots and docs from this "
                             "results file instead of --raw")
    parser.add_argument("--root")
    parser.add_argument("--build")
    parser.add_argument("--json", required=True)
    parser.add_argument("--plots", required=True)
    parser.add_argument("--docs")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--load-before", default="")
    parser.add_argument("--load-after", default="")
    parser.add_argument("--busy-before", default="")
    parser.add_argument("--seconds", type=int, default=0)
    parser.add_argument("--drain-poll-ms", type=float, default=10)
    parser.add_argument("--stop-grace-ms", type=float, default=1000)
    args = parser.parse_args()

    if not args.rebuild and not (args.raw and args.root and args.build):
        parser.error("--raw, --root and --build are required without "
                     "--rebuild")
    plt.rcParams["svg.hashsalt"] = "sbx-bench"
    if args.rebuild:
        res = rebuild_results(args.rebuild, args.quick)
    else:
        res = build_results(args)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    os.makedirs(args.plots, exist_ok=True)
    plot_start(res, os.path.join(args.plots, "bench-start.svg"))
    plot_timeline(res["raw"]["drain_timeline"],
                  res["scenarios"]["drain"]["sigterm_to_sbxd_exit_ms"],
                  "Drain: sandboxes end one by one after SIGTERM",
                  os.path.join(args.plots, "bench-drain.svg"))
    plot_timeline(res["raw"]["force_timeline"],
                  res["scenarios"]["force"]["sigterm_to_sbxd_exit_ms"],
                  "Forced drain: ignore_stop sandboxes, grace 1 s",
                  os.path.join(args.plots, "bench-force.svg"))
    if args.docs:
        update_docs(args.docs, tables(res))
    else:
        tables(res)  # build them anyway so that a quick run checks them
    print_summary(res)
    print(f"report: wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
