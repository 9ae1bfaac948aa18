"""The tunsocks benchmark's report: reads the raw measurements bench/tunsocks/run left in
one directory and writes bench/results/tunsocks-<stamp>.json (every figure, the machine,
the load, the versions) and tunsocks-<stamp>.md (the table, tunsocks/direct ratios), and
tunsocks-<stamp>-profile.md when the run was made with --profile. Prints the Markdown.

Raw layout (one directory per measured path: direct, tunsocks-mtu<N>):
  iperf-<streams>-<up|down>.json   iperf3 -J output
  iperf-<...>.cpu                  {"tunsocks_cpu_s","socksd_cpu_s","wall_s"} (tunsocks only)
  rtt.json, conn_rate.json         one JSON line from bench/tools/rtt and conn_rate
  conn_rate.cpu                    {"tunsocks_cpu_s","socksd_cpu_s"} over the conn_rate run
  memory.jsonl                     one line per held-flow count (tunsocks only)
  udp-rtt.json, udp-flood.json,    one JSON line each from bench/tools/udp_bench (rtt,
  dns.json, udp-fresh.json,        flood, dns, fresh, and fresh one socket at a time);
  udp-first.json                   udp-flood.machine: the TUN queue's drops
  udp-echo-<pps>.json              udp_bench echo at <pps> datagrams/s
  udp-echo-<pps>.{before,after}    counters around it: TUN queue drops, softnet drops, UDP
                                   errors of each namespace, CPU ticks, tunsocks' counters
  profile-<1-up|1-down>[-dso].txt  perf report --stdio (with --profile)
  load                             the load average when the path's measurements began
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys

IPERF_RUNS = ["1-up", "1-down", "4-up", "4-down", "1-up-idle"]


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        return {"error": f"{os.path.basename(path)}: {e}"}


def iperf_result(directory, name):
    result = {}
    if name == "1-up-idle" and not os.path.exists(os.path.join(directory, f"iperf-{name}.json")):
        return result  # measured only with flows held (not on the direct path)
    data = read_json(os.path.join(directory, f"iperf-{name}.json"))
    if "error" in data:
        result["error"] = data["error"]
    else:
        end = data["end"]
        received = end["sum_received"]
        result["gbit_s"] = received["bits_per_second"] / 1e9
        result["bytes"] = received["bytes"]
        result["seconds"] = received["seconds"]
        result["retransmits"] = end.get("sum_sent", {}).get("retransmits")
    machine_path = os.path.join(directory, f"iperf-{name}.machine")
    if os.path.exists(machine_path):
        result.update(read_json(machine_path))
    cpu_path = os.path.join(directory, f"iperf-{name}.cpu")
    if os.path.exists(cpu_path):
        cpu = read_json(cpu_path)
        result.update(cpu)
        if result.get("bytes") and "tunsocks_cpu_s" in cpu:
            gb = result["bytes"] / 1e9
            result["tunsocks_cpu_s_per_gb"] = cpu["tunsocks_cpu_s"] / gb
            result["socksd_cpu_s_per_gb"] = cpu["socksd_cpu_s"] / gb
            result["tunsocks_core_share"] = cpu["tunsocks_cpu_s"] / cpu["wall_s"]
    return result


def memory_results(directory):
    rows = []
    try:
        with open(os.path.join(directory, "memory.jsonl")) as f:
            lines = [line for line in f if line.strip()]
    except OSError:
        return rows
    for line in lines:
        row = json.loads(line)
        held = row["client"].get("held", 0)
        row["flows_held"] = held
        if held:
            row["tunsocks_kib_per_flow"] = (row["tunsocks_rss_kib"] - row["tunsocks_rss_kib_idle"]) / held
            row["socksd_kib_per_flow"] = (row["socksd_rss_kib"] - row["socksd_rss_kib_idle"]) / held
        rows.append(row)
    return rows


def counter_delta(before, after):
    """after - before for every number in two nested dicts of counters (None if absent)."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return None
    delta = {}
    for key, value in after.items():
        if isinstance(value, dict):
            delta[key] = counter_delta(before.get(key), value)
        elif isinstance(value, (int, float)) and isinstance(before.get(key), (int, float)):
            delta[key] = value - before[key]
    return delta


def echo_results(directory):
    """The paced echo runs, by rate: the tool's figures plus where the lost echoes went."""
    results = {}
    for name in os.listdir(directory):
        match = re.fullmatch(r"udp-echo-(\d+)\.json", name)
        if not match:
            continue
        pps = int(match.group(1))
        result = read_json(os.path.join(directory, name))
        before = read_json(os.path.join(directory, f"udp-echo-{pps}.before"))
        after = read_json(os.path.join(directory, f"udp-echo-{pps}.after"))
        delta = counter_delta(before, after) or {}
        for key in ("tun_tx_dropped", "softnet_dropped"):
            if key in delta:
                result[key] = delta[key]
        for ns in ("client", "proxy", "server"):
            if delta.get(ns):
                result[f"{ns}_udp_errors"] = delta[ns]
        tunsocks = delta.get("tunsocks")
        if tunsocks:
            result["tunsocks_udp_dropped"] = tunsocks.get("udp_dropped")
            result["tunsocks_udp_dropped_by_reason"] = {
                k: v for k, v in (tunsocks.get("udp_dropped_by_reason") or {}).items() if v}
            result["tunsocks_tun_write_errors"] = tunsocks.get("tun_write_errors")
        clk_tck = after.get("clk_tck") if isinstance(after, dict) else None
        # Per datagram relayed (up and down, from tunsocks' counters), not per echo sent:
        # what the TUN queue dropped cost neither process anything.
        relayed = (tunsocks.get("udp_datagrams_up", 0) + tunsocks.get("udp_datagrams_down", 0)
                   if tunsocks else 0)
        result["tunsocks_datagrams_relayed"] = relayed
        if relayed and clk_tck:
            for who in ("tunsocks", "socksd"):
                ticks = delta.get(f"{who}_ticks")
                if ticks is not None:
                    result[f"{who}_cpu_us_per_datagram"] = ticks / clk_tck * 1e6 / relayed
        results[pps] = result
    return dict(sorted(results.items()))


def read_path(directory):
    path = {}
    # A --udp-only run has no TCP figures, an --iperf-only run only the iperf3 ones: absent,
    # not errors.
    if os.path.exists(os.path.join(directory, "iperf-1-up.json")):
        path["iperf"] = {name: iperf_result(directory, name) for name in IPERF_RUNS}
    if os.path.exists(os.path.join(directory, "rtt.json")):
        path["rtt"] = read_json(os.path.join(directory, "rtt.json"))
        path["conn_rate"] = read_json(os.path.join(directory, "conn_rate.json"))
        cpu_path = os.path.join(directory, "conn_rate.cpu")
        connections = path["conn_rate"].get("connections")
        if os.path.exists(cpu_path) and connections:
            cpu = read_json(cpu_path)
            for who in ("tunsocks", "socksd"):
                if f"{who}_cpu_s" in cpu:
                    path["conn_rate"][f"{who}_cpu_us_per_connection"] = cpu[f"{who}_cpu_s"] * 1e6 / connections
    if os.path.exists(os.path.join(directory, "rtt-socksd.json")):
        path["rtt_socksd_alone"] = read_json(os.path.join(directory, "rtt-socksd.json"))
    if os.path.exists(os.path.join(directory, "udp-rtt.json")):
        flood = read_json(os.path.join(directory, "udp-flood.json"))
        machine_path = os.path.join(directory, "udp-flood.machine")
        if os.path.exists(machine_path):
            flood.update(read_json(machine_path))
        path["udp"] = {"rtt": read_json(os.path.join(directory, "udp-rtt.json")), "flood": flood,
                       "dns": read_json(os.path.join(directory, "dns.json"))}
        if os.path.exists(os.path.join(directory, "udp-fresh.json")):
            path["udp"]["fresh"] = read_json(os.path.join(directory, "udp-fresh.json"))
        if os.path.exists(os.path.join(directory, "udp-first.json")):
            path["udp"]["first"] = read_json(os.path.join(directory, "udp-first.json"))
    echo = echo_results(directory)
    if echo:
        path.setdefault("udp", {})["echo"] = echo
    memory = memory_results(directory)
    if memory:
        path["memory"] = memory
    try:
        with open(os.path.join(directory, "load")) as f:
            path["load_average_at_start"] = f.read().strip()
    except OSError:
        pass
    return path


def run(command):
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine():
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    return {"cpus": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "memory_gib": round(memory_kib / 1024 / 1024, 1)}


def source(root):
    commit = run(["git", "-C", root, "rev-parse", "--short", "HEAD"])
    # The binaries are built from the working tree: say so when it differs from the commit.
    changed = run(["git", "-C", root, "status", "--porcelain", "--", "src", "third_party",
                   "CMakeLists.txt"])
    return {"commit": commit, "working_tree_differs": bool(changed)}


# ---------------------------------------------------------------- Markdown


def fmt(value, digits=2):
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def ratio(tunsocks, direct):
    if tunsocks is None or direct in (None, 0):
        return "—"
    return f"{tunsocks / direct:.2f}×"


def dig(data, *keys):
    for key in keys:
        if isinstance(data, list):
            if not isinstance(key, int) or not -len(data) <= key < len(data):
                return None
        elif not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def markdown(report):
    paths = report["paths"]
    direct = paths.get("direct")
    tunsocks_names = [name for name in paths if name.startswith("tunsocks-")]
    m = report["machine"]
    src = report["source"]
    s = report["settings"]
    lines = [f"# tunsocks benchmark, {report['stamp']}", ""]
    lines.append(
        f"{m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, kernel {m['kernel']}; "
        f"commit {src['commit']}"
        + (" plus uncommitted changes in the working tree" if src["working_tree_differs"] else "")
        + f"; {report['versions']['tunsocks']}, {report['versions']['iperf3']}.")
    lines.append("")
    load = report["load_average"]
    lines.append(f"Load average at start {load['start']}, at end {load['end']} "
                 f"(1, 5, 15 min). {load['note']}")
    lines.append("")
    lines.append(
        "Topology: client namespace → (veth, MTU %s) → proxy namespace → (veth) → server "
        "namespace. *direct*: the kernel forwards in the proxy namespace, no TUN, no proxy. "
        "*tunsocks*: the client's default route is the TUN; tunsocks → socksd (proxy "
        "namespace) → server. Settings: %s." % (s["veth_mtu"], report["settings_text"]))
    lines.append("")

    header = "| figure |" + (" direct |" if direct else "")
    rule = "|---|" + ("---:|" if direct else "")
    for name in tunsocks_names:
        mtu = name.split("mtu", 1)[1].replace("-nooffload", ", no offload").replace(
            "-baseline", ", baseline build")
        header += f" tunsocks MTU {mtu} |" + (" ÷ direct |" if direct else "")
        rule += "---:|" + ("---:|" if direct else "")
    lines += [header, rule]

    def row(label, getter, digits=2, compare=True):
        cells = f"| {label} |"
        base = getter(direct) if direct else None
        if base is None and all(getter(paths[n]) is None for n in tunsocks_names):
            return  # a figure this run did not measure (--udp-only)
        if direct:
            cells += f" {fmt(base, digits)} |"
        for name in tunsocks_names:
            value = getter(paths[name])
            cells += f" {fmt(value, digits)} |"
            if direct:
                cells += f" {ratio(value, base) if compare else '—'} |"
        lines.append(cells)

    for name, label in [("1-up", "1-stream upload (client → server), Gbit/s"),
                        ("1-down", "1-stream download (-R), Gbit/s"),
                        ("4-up", "4-stream upload (-P 4), Gbit/s"),
                        ("4-down", "4-stream download (-P 4 -R), Gbit/s")]:
        row(label, lambda p, n=name: dig(p, "iperf", n, "gbit_s"))
    idle_flows = max((dig(paths[n], "memory", -1, "flows_held") or 0 for n in tunsocks_names),
                     default=0)
    if idle_flows:
        row(f"1-stream upload with {idle_flows} idle flows open, Gbit/s",
            lambda p: dig(p, "iperf", "1-up-idle", "gbit_s") if p is not direct else None,
            compare=False)

        def idle_share(p):
            with_idle = dig(p, "iperf", "1-up-idle", "gbit_s")
            alone = dig(p, "iperf", "1-up", "gbit_s")
            return with_idle / alone if p is not direct and with_idle and alone else None
        row("  the same ÷ the 1-stream upload without them", idle_share, 2, compare=False)
    size = s["rtt_size"]
    row(f"round trip {size} B, median µs", lambda p: dig(p, "rtt", "p50_us"), 1)
    row(f"round trip {size} B, p99 µs", lambda p: dig(p, "rtt", "p99_us"), 1)
    row(f"round trip {size} B via socksd alone (no TUN), median µs",
        lambda p: dig(p, "rtt_socksd_alone", "p50_us"), 1)
    row(f"new connections/s ({s['concurrency']} threads, 100 B each way)",
        lambda p: dig(p, "conn_rate", "per_second"), 0)
    row("connection (connect → response → EOF) median ms", lambda p: dig(p, "conn_rate", "p50_ms"), 3)
    row("connection p99 ms", lambda p: dig(p, "conn_rate", "p99_ms"), 3)
    row("failed connections", lambda p: dig(p, "conn_rate", "errors"), 0, compare=False)
    row("tunsocks CPU µs per connection", lambda p: dig(p, "conn_rate", "tunsocks_cpu_us_per_connection"),
        0, compare=False)
    row("socksd CPU µs per connection (context)",
        lambda p: dig(p, "conn_rate", "socksd_cpu_us_per_connection"), 0, compare=False)
    for name, label in [("1-up", "upload"), ("1-down", "download")]:
        row(f"tunsocks CPU s per GB, 1-stream {label}",
            lambda p, n=name: dig(p, "iperf", n, "tunsocks_cpu_s_per_gb"), 2, compare=False)
        row(f"tunsocks share of one core, 1-stream {label}",
            lambda p, n=name: dig(p, "iperf", n, "tunsocks_core_share"), 2, compare=False)
    row("socksd CPU s per GB, 1-stream download (context)",
        lambda p: dig(p, "iperf", "1-down", "socksd_cpu_s_per_gb"), 2, compare=False)
    for name, label in [("1-up", "1-stream upload"), ("1-down", "1-stream download")]:
        row(f"whole machine CPU busy during the {label} (all cores)",
            lambda p, n=name: dig(p, "iperf", n, "machine_busy_share"), 2, compare=False)
    for name, label in [("1-up", "1-stream upload"), ("4-up", "4-stream upload"),
                        ("4-down", "4-stream download")]:
        row(f"packets dropped at the full TUN queue, {label}",
            lambda p, n=name: dig(p, "iperf", n, "tun_tx_dropped") if p is not direct else None,
            0, compare=False)

    row(f"UDP round trip {size} B via UDP ASSOCIATE, median µs",
        lambda p: dig(p, "udp", "rtt", "p50_us"), 1)
    row(f"UDP round trip {size} B, p99 µs", lambda p: dig(p, "udp", "rtt", "p99_us"), 1)
    row("UDP round trips lost (no retry)", lambda p: dig(p, "udp", "rtt", "lost"), 0, compare=False)
    row("UDP one way, 512 B datagrams sent/s", lambda p: dig(p, "udp", "flood", "sent_per_s"), 0)
    row("UDP one way, 512 B datagrams received/s", lambda p: dig(p, "udp", "flood", "received_per_s"), 0)
    row("UDP one way, share lost", lambda p: dig(p, "udp", "flood", "loss_share"), 3, compare=False)
    row("UDP one way, packets dropped at the full TUN queue",
        lambda p: dig(p, "udp", "flood", "tun_tx_dropped") if p is not direct else None, 0,
        compare=False)
    row("DNS A queries/s, 32 in flight (direct: dnsmasq; tunsocks: fake-ip)",
        lambda p: dig(p, "udp", "dns", "qps"), 0)
    row("DNS query median µs", lambda p: dig(p, "udp", "dns", "p50_us"), 1)
    row("DNS query p99 µs", lambda p: dig(p, "udp", "dns", "p99_us"), 1)
    row("DNS queries lost (1 s, no retry)", lambda p: dig(p, "udp", "dns", "lost"), 0, compare=False)
    row("UDP queries/s, a new source port each, 16 in flight",
        lambda p: dig(p, "udp", "fresh", "qps"), 0)
    row("UDP new-port query median µs", lambda p: dig(p, "udp", "fresh", "p50_us"), 1)
    row("UDP new-port query p99 µs", lambda p: dig(p, "udp", "fresh", "p99_us"), 1)
    row("UDP new-port queries timed out (1 s, no retry)",
        lambda p: dig(p, "udp", "fresh", "timeouts"), 0, compare=False)
    row("UDP first reply to a new socket, one at a time, median µs",
        lambda p: dig(p, "udp", "first", "p50_us"), 1)
    row("UDP first reply to a new socket, p99 µs", lambda p: dig(p, "udp", "first", "p99_us"), 1)
    row("UDP first replies missing (1 s, no retry)",
        lambda p: dig(p, "udp", "first", "timeouts"), 0, compare=False)

    rates = sorted({pps for p in paths.values() for pps in (dig(p, "udp", "echo") or {})})
    for pps in rates:
        def echo(p, *keys, pps=pps):
            return dig(p, "udp", "echo", pps, *keys)
        tunsocks_only = {"compare": False}
        label = f"UDP echo at {pps:,}/s (64 B, 1 ms batches)"
        row(f"{label}: echoes received/s", lambda p, e=echo: (
            e(p, "received") / e(p, "seconds") if e(p, "received") is not None and e(p, "seconds")
            else None), 0)
        row(f"{label}: share lost", lambda p, e=echo: e(p, "loss_share"), 4, **tunsocks_only)
        row(f"{label}: reply median µs", lambda p, e=echo: e(p, "p50_us"), 1)
        row(f"{label}: reply p99 µs", lambda p, e=echo: e(p, "p99_us"), 1)
        row(f"{label}: replies out of order", lambda p, e=echo: e(p, "reordered"), 0, **tunsocks_only)
        row(f"{label}: lost at the full TUN queue",
            lambda p, e=echo: e(p, "tun_tx_dropped") if p is not direct else None, 0, **tunsocks_only)
        for ns, where in [("client", "client namespace (application, tunsocks' relay sockets)"),
                          ("proxy", "proxy namespace (socksd)"), ("server", "server namespace")]:
            row(f"{label}: UDP receive buffer overflows, {where}",
                lambda p, e=echo, ns=ns: e(p, f"{ns}_udp_errors", "RcvbufErrors"), 0, **tunsocks_only)
            row(f"{label}: UDP sends refused (buffer full), {where}",
                lambda p, e=echo, ns=ns: e(p, f"{ns}_udp_errors", "SndbufErrors"), 0, **tunsocks_only)
        row(f"{label}: dropped at a full CPU input backlog (softnet, whole machine)",
            lambda p, e=echo: e(p, "softnet_dropped"), 0, **tunsocks_only)
        row(f"{label}: dropped by tunsocks (udp_dropped)",
            lambda p, e=echo: e(p, "tunsocks_udp_dropped"), 0, **tunsocks_only)
        row(f"{label}: tunsocks CPU µs per datagram relayed (up + down)",
            lambda p, e=echo: e(p, "tunsocks_cpu_us_per_datagram"), 2, **tunsocks_only)
        row(f"{label}: socksd CPU µs per datagram relayed (context)",
            lambda p, e=echo: e(p, "socksd_cpu_us_per_datagram"), 2, **tunsocks_only)

    def kib_to_mib(value):
        return None if value is None else value / 1024

    row("tunsocks RSS idle, MiB",
        lambda p: kib_to_mib(dig(p, "memory", 0, "tunsocks_rss_kib_idle")), 1, compare=False)
    row("tunsocks private memory idle (RSS less shared library pages), MiB",
        lambda p: kib_to_mib(dig(p, "memory", 0, "tunsocks_private_kib_idle")), 2, compare=False)
    counts = max((len(paths[n].get("memory", [])) for n in tunsocks_names), default=0)
    for i in range(counts):
        held = {dig(paths[n], "memory", i, "flows_held") for n in tunsocks_names}
        want = dig(paths[tunsocks_names[0]], "memory", i, "flows_requested")
        label = f"{want} flows" if held == {want} else f"{want} flows (held: {'/'.join(map(str, sorted(h for h in held if h is not None)))})"
        row(f"tunsocks RSS with {label}, MiB",
            lambda p, i=i: kib_to_mib(dig(p, "memory", i, "tunsocks_rss_kib")), 1, compare=False)
        row(f"tunsocks KiB per flow ({want})",
            lambda p, i=i: dig(p, "memory", i, "tunsocks_kib_per_flow"), 1, compare=False)
        row(f"tunsocks RSS after the {want} flows closed, MiB",
            lambda p, i=i: kib_to_mib(dig(p, "memory", i, "tunsocks_rss_kib_after")), 1, compare=False)
        row(f"seconds until {want} flows closed at once were gone from tunsocks and socksd",
            lambda p, i=i: dig(p, "memory", i, "close_seconds"), 0, compare=False)
        row(f"packets dropped at the full TUN queue while closing {want} flows",
            lambda p, i=i: dig(p, "memory", i, "close_tun_tx_dropped"), 0, compare=False)
    row("socksd RSS idle, MiB (context)",
        lambda p: kib_to_mib(dig(p, "memory", 0, "socksd_rss_kib_idle")), 1, compare=False)
    for i in range(counts):
        want = dig(paths[tunsocks_names[0]], "memory", i, "flows_requested")
        row(f"socksd KiB per flow ({want}) (context)",
            lambda p, i=i: dig(p, "memory", i, "socksd_kib_per_flow"), 1, compare=False)
    lines.append("")
    lines.append("Ratios are tunsocks ÷ direct: below 1 for throughput and connection rate "
                 "means slower, above 1 for times means slower. CPU and memory have no direct "
                 "counterpart (the direct path has no process).")
    if report["notes"]:
        lines.append("")
        lines += [f"- {note}" for note in report["notes"]]
    errors = []
    echo_drops = []
    for name, path in paths.items():
        for run_name, result in path.get("iperf", {}).items():
            if "error" in result:
                errors.append(f"{name} iperf3 {run_name}: {result['error']}")
        for what in ("rtt", "rtt_socksd_alone", "conn_rate"):
            if what in path and "error" in path[what]:
                errors.append(f"{name} {what}: {path[what]['error']}")
        for pps, result in (dig(path, "udp", "echo") or {}).items():
            if "error" in result:
                errors.append(f"{name} udp echo at {pps}/s: {result['error']}")
            if result.get("tunsocks_udp_dropped_by_reason"):
                echo_drops.append(f"{name}, echo at {pps}/s: "
                                  f"{json.dumps(result['tunsocks_udp_dropped_by_reason'])}")
        for what, result in path.get("udp", {}).items():
            if what == "echo":
                continue
            if "error" in result:
                errors.append(f"{name} udp {what}: {result['error']}")
            kinds = dig(path, what, "errors_by_kind")
            if kinds:
                errors.append(f"{name} {what} errors: {json.dumps(kinds)}")
        for row_data in path.get("memory", []):
            if row_data["client"].get("failed"):
                errors.append(f"{name} holding {row_data['flows_requested']} flows: "
                              f"{json.dumps(row_data['client'])}")
    if errors:
        lines += ["", "Errors during the run:", ""] + [f"- {e}" for e in errors]
    if echo_drops:
        lines += ["", "tunsocks' UDP drops by reason (udp_dropped_by_reason) during the echo runs:",
                  ""] + [f"- {d}" for d in echo_drops]
    return "\n".join(lines) + "\n"


def profile_markdown(report, raw):
    sections = []
    for name in report["paths"]:
        for run_name, label in [("1-up", "1-stream upload"), ("1-down", "1-stream download")]:
            path = os.path.join(raw, name, f"profile-{run_name}.txt")
            if not os.path.exists(path):
                continue
            with open(path) as f:
                symbols = [line.rstrip() for line in f if not line.startswith("#")]
            def lines_of(suffix, limit):
                try:
                    with open(os.path.join(raw, name, f"profile-{run_name}{suffix}.txt")) as f:
                        return [line.rstrip() for line in f if not line.startswith("#")][:limit]
                except OSError:
                    return []
            iperf = read_json(os.path.join(raw, name, f"perf-iperf-{run_name}.json"))
            rate = dig(iperf, "end", "sum_received", "bits_per_second")
            sections += [f"## {name}, {label}"
                         + (f" ({rate / 1e9:.2f} Gbit/s under perf)" if rate else ""), "",
                         "Self time by object:", "", "```"] + lines_of("-dso", 8) + ["```", "",
                         "Self time by symbol (≥ 0.7 %):", "", "```"] + symbols[:40] + ["```", "",
                         "Inclusive time (children) of user-space functions (≥ 2 %):", "",
                         "```", "Children  Self"] + lines_of("-inclusive", 30) + ["```", ""]
    if not sections:
        return None
    head = [f"# tunsocks CPU profile, {report['stamp']}", "",
            "`perf record -F 499 --call-graph dwarf -p <tunsocks>` during one extra iperf3 run "
            "per direction (not one of the measured runs: perf costs throughput). Kernel time "
            "in tunsocks' context includes work done for its peers: a TUN write runs the app's "
            "TCP receive path, an upstream write runs the veth and socksd's receive path "
            "(softirq in the writer's context).", ""]
    return "\n".join(head + sections)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--raw", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--stamp", required=True)
    parser.add_argument("--load-start", required=True)
    parser.add_argument("--load-end", required=True)
    parser.add_argument("--fd-limit", required=True)
    parser.add_argument("--tunsocks", required=True)
    parser.add_argument("--socksd", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--settings", required=True)
    args = parser.parse_args()

    settings = dict(item.split("=", 1) for item in args.settings.split())
    paths = {}
    names = sorted((n for n in os.listdir(args.raw) if os.path.isdir(os.path.join(args.raw, n))),
                   key=lambda n: (n != "direct", int(re.sub(r"\D", "", n) or 0)))
    for name in names:
        if os.path.isdir(os.path.join(args.raw, name)):
            paths[name] = read_path(os.path.join(args.raw, name))

    m = machine()
    load_1min = float(args.load_start.split()[0])
    if load_1min >= 0.5 * m["cpus"]:
        load_note = (f"The machine was busy before the run started (1-minute load {load_1min:.2f} "
                     f"on {m['cpus']} CPUs: other builds or tests): every figure, the direct "
                     "ones included, is lower than on an idle machine, and the ratios are the "
                     "more trustworthy part.")
    else:
        load_note = "The machine was close to idle when the run started."
    notes = []
    try:
        with open(os.path.join(args.raw, "notes")) as f:
            raw_notes = set(f.read().split())
    except OSError:
        raw_notes = set()
    if "sigpipe" in raw_notes:
        notes.append(
            "This tunsocks leaves SIGPIPE at its default action: the first write to an "
            "upstream socket that the proxy has reset (iperf3's server closes its data "
            "connection at the end of every upload) kills the process. The run therefore "
            "started tunsocks with SIGPIPE ignored (inherited across exec); a deployed "
            "tunsocks of this build would die instead.")
    for name, path in paths.items():
        for row_data in path.get("memory", []):
            if row_data["flows_held"] and row_data["flows_held"] < row_data["flows_requested"]:
                notes.append(
                    f"{name}: {row_data['flows_requested']} flows were asked for and "
                    f"{row_data['flows_held']} held. The descriptor hard limit here is "
                    f"{args.fd_limit} and cannot be raised without CAP_SYS_RESOURCE; socksd needs "
                    "two descriptors per flow, so the run holds as many as fit. KiB per flow "
                    "divides by the flows actually held.")
                break
    iperf3_version = run(["iperf3", "--version"]).splitlines()
    if any("udp" in path for path in paths.values()):
        notes.append(
            "UDP one way: on the direct path sendto() blocks while the veth's queue is full, so "
            "the sender is mostly paced by the path; a TUN's queue never blocks the sender but "
            "drops (tx_dropped), so through tunsocks 'sent/s' is what the application pushed "
            "and 'received/s' what the relay carried. Round trips and DNS queries have one "
            "datagram (or 32 queries) in flight and lose nothing when the path keeps up.")
    if any(dig(path, "udp", "echo") for path in paths.values()):
        nice = settings.get("echo_nice", "0")
        notes.append(
            "UDP echo: every process of the echo runs (client, server, tunsocks, socksd; both "
            f"paths alike) ran at nice {nice}"
            + (": the figure is whether the path keeps up, not the scheduler's share against "
               "other work on the machine" if nice != "0" else "") +
            ". A lost echo shows up in one of the counter rows: the TUN queue (tunsocks did "
            "not read in time), a socket's receive buffer (its reader did not), a refused "
            "send, or tunsocks' own drops.")
    ran_iperf = any("iperf" in path for path in paths.values())
    if ran_iperf and iperf3_version and re.search(r"iperf 3\.(\d+)", iperf3_version[0]) and \
            int(re.search(r"iperf 3\.(\d+)", iperf3_version[0]).group(1)) < 16:
        notes.append("iperf3 before 3.16 runs all -P streams in one thread: the 4-stream "
                     "figures share one iperf3 core on each side.")

    report = {
        "benchmark": "tunsocks",
        "stamp": args.stamp,
        "machine": m,
        "source": source(args.root),
        "versions": {
            "tunsocks": run([args.tunsocks, "--version"]) or "tunsocks",
            "socksd": run([args.socksd, "--version"]) or "socksd",
            "iperf3": iperf3_version[0] if iperf3_version else "iperf3",
        },
        "load_average": {"start": args.load_start, "end": args.load_end, "note": load_note},
        "settings": settings,
        "settings_text": args.settings,
        "fd_hard_limit": args.fd_limit,
        "notes": notes,
        "paths": paths,
    }
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, f"tunsocks-{args.stamp}")
    with open(base + ".json", "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    text = markdown(report)
    with open(base + ".md", "w") as f:
        f.write(text)
    profile = profile_markdown(report, args.raw)
    if profile:
        with open(base + "-profile.md", "w") as f:
            f.write(profile)
    sys.stdout.write(text)
    print(f"\nwritten: {base}.json, {base}.md" + (f", {base}-profile.md" if profile else ""),
          file=sys.stderr)


if __name__ == "__main__":
    main()
