"""socksd benchmark: socksd vs microsocks vs Dante vs the direct path, on loopback, in one
run. Started by bench/socksd/run (which builds the load tool and finds socksd); see
bench/README.md for what each figure means.

The data path is bench/tools/socks_load (C++); this file only starts and stops the
servers, reads /proc, and writes the JSON and Markdown reports.
"""

import argparse
import datetime
import json
import os
import platform
import re
import signal
import socket
import subprocess
import statistics
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- /proc readers


def stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    # comm may hold spaces and parentheses: split after the last ')'.
    return text[text.rindex(")") + 2:].split()


def descendants(root):
    """root and every live process below it (by PPid), read from /proc."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ppid = int(stat_fields(d)[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(root):
    """utime+stime of the tree, plus what the root has reaped from exited children
    (Dante's per-connection processes come and go)."""
    total = 0
    for p in descendants(root):
        try:
            f = stat_fields(p)
        except OSError:
            continue
        total += int(f[11]) + int(f[12])  # utime, stime
        if p == root:
            total += int(f[13]) + int(f[14])  # cutime, cstime
    return total / CLK_TCK


def rss_kib(root):
    """Sum of VmRSS over the process tree (pages shared between Dante's processes are
    counted once per process: an upper bound for multi-process servers)."""
    total = 0
    for p in descendants(root):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


# ---------------------------------------------------------------- processes


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_connectable(port, proc, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before accepting connections")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing accepts on 127.0.0.1:{port} after {timeout}s")


def wait_listening_line(path, proc, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(path, errors="replace") as f:
            m = re.search(r"listening on (127\.0\.0\.1:\d+)", f.read())
        if m:
            return m.group(1)
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before listening")
        time.sleep(0.05)
    raise RuntimeError(f"no 'listening on' line after {timeout}s")


class Proxy:
    """One server under test; stop() ends exactly the processes it started (the root
    and the children that root forked, as seen in /proc just before stopping)."""

    def __init__(self, name, argv, workdir, ready):
        self.name = name
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen(argv, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self.addr = ready(self)
        except Exception:
            self.stop()
            raise

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            tree = descendants(self.proc.pid)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            deadline = time.monotonic() + 3
            for p in tree[1:]:
                while time.monotonic() < deadline and os.path.exists(f"/proc/{p}"):
                    time.sleep(0.05)
                try:
                    os.kill(p, signal.SIGKILL)  # a child of ours still around after 3 s
                except ProcessLookupError:
                    pass
        self.log_file.close()


def start_socksd(binary, workdir, name="socksd"):
    cfg = os.path.join(workdir, "socksd.json")
    with open(cfg, "w") as f:
        # Capacity, not policy: the default limits must not cap the 1000 idle sessions.
        json.dump({"listen": ["127.0.0.1:0"], "allow_private": True, "log_level": "info",
                   "limits": {"max_connections": 100000, "max_connections_per_client": 100000}}, f)
    return Proxy(name, [binary, "--config", cfg], workdir,
                 lambda p: wait_listening_line(p.log_path, p.proc))


def start_microsocks(binary, workdir):
    port = free_port()
    return Proxy("microsocks", [binary, "-i", "127.0.0.1", "-p", str(port)], workdir,
                 lambda p: (wait_connectable(port, p.proc), f"127.0.0.1:{port}")[1])


def start_dante(binary, workdir):
    port = free_port()
    cfg = os.path.join(workdir, "danted.conf")
    with open(cfg, "w") as f:
        f.write(f"""# written by bench/socksd/bench.py: loopback only, no auth, CONNECT only
logoutput: stderr
internal: 127.0.0.1 port = {port}
external: 127.0.0.1
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}
socks pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 command: connect }}
""")
    return Proxy("dante", [binary, "-f", cfg, "-p", os.path.join(workdir, "danted.pid")], workdir,
                 lambda p: (wait_connectable(port, p.proc), f"127.0.0.1:{port}")[1])


# ---------------------------------------------------------------- measurements


def load(tool, mode, proxy, target, **kw):
    argv = [tool, mode, "--proxy", proxy, "--target", target]
    for k, v in kw.items():
        argv += [f"--{k}", str(v)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {out.returncode}: {out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def hold(tool, proxy, target, count, root):
    p = subprocess.Popen([tool, "hold", "--proxy", proxy, "--target", target, "--count", str(count)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        res = json.loads(p.stdout.readline())
        time.sleep(0.5)  # let the proxy settle (lazy allocations, worker processes)
        res["rss_kib"] = rss_kib(root) if root else None
        res["processes"] = len(descendants(root)) if root else None
    finally:
        p.stdin.close()
        p.wait(30)
    return res


# What one round measures, in this order: (key, socks_load mode, its options).
FIGURES = [
    ("down_1", "stream", lambda a: {"streams": 1, "dir": "down"}),
    ("down_4", "stream", lambda a: {"streams": 4, "dir": "down"}),
    ("up_1", "stream", lambda a: {"streams": 1, "dir": "up"}),
    ("rate", "rate", lambda a: {"workers": a.workers, "size": a.size}),
    ("rtt", "rtt", lambda a: {"count": a.round_trips, "size": 64}),
]


def measure_all(paths, tool, target, a, failed):
    """Throughput, rate and CPU figures for every path in `paths` ({name: Proxy or None for
    the direct path}, all running). Interleaved: each of the --repeat rounds runs every
    figure once per path, path after path, so busy moments of a shared machine fall on all
    columns alike; a figure is the median of its rounds (the runs are kept for the spread).
    A path that fails is recorded in `failed` and left out of later rounds."""
    res = {name: {"name": name, "via": proxy.addr if proxy else "direct"} for name, proxy in paths.items()}
    time.sleep(0.3)
    for name, proxy in paths.items():
        if proxy:
            res[name]["rss_start_kib"] = rss_kib(proxy.pid)
    runs = {name: {key: [] for key, _, _ in FIGURES} for name in paths}
    cpu = dict.fromkeys(paths, 0.0)
    moved = dict.fromkeys(paths, 0)
    rate_cpu = dict.fromkeys(paths, 0.0)
    sessions = dict.fromkeys(paths, 0)
    live = list(paths)
    for round_no in range(a.repeat):
        for key, mode, options in FIGURES:
            for name in list(live):
                proxy = paths[name]
                try:
                    c0 = cpu_seconds(proxy.pid) if proxy else 0.0
                    x = load(tool, mode, proxy.addr if proxy else "direct", target, seconds=a.seconds, **options(a))
                    if "error" in x:
                        raise RuntimeError(f"{key}: {x['error']}")
                    if proxy and mode == "stream":
                        cpu[name] += cpu_seconds(proxy.pid) - c0
                        moved[name] += x["bytes"]
                    elif proxy and mode == "rate":
                        rate_cpu[name] += cpu_seconds(proxy.pid) - c0
                        sessions[name] += x["sessions"]
                    if mode == "rtt" and x["errors"]:
                        raise RuntimeError(f"{key}: the echo broke after {x['round_trips']} round trips")
                    runs[name][key].append(x)
                except Exception as e:  # one broken server must not hide the others' figures
                    failed[name] = str(e)
                    live.remove(name)
                    log(f"{name} failed: {e}")
        log(f"round {round_no + 1} of {a.repeat} done")
    for name in live:
        r = res[name]
        for key, mode, _ in FIGURES:
            xs = runs[name][key]
            if mode == "stream":
                r[key] = {"gbit_s": statistics.median(x["gbit_s"] for x in xs),
                          "bytes": sum(x["bytes"] for x in xs), "runs": [x["gbit_s"] for x in xs]}
            elif mode == "rtt":
                r[key] = {"median_us": statistics.median(x["median_us"] for x in xs),
                          "p99_us": statistics.median(x["p99_us"] for x in xs),
                          "median_runs": [x["median_us"] for x in xs], "p99_runs": [x["p99_us"] for x in xs]}
            else:
                r[key] = {"per_second": statistics.median(x["per_second"] for x in xs),
                          "p50_ms": statistics.median(x["p50_ms"] for x in xs),
                          "p99_ms": statistics.median(x["p99_ms"] for x in xs),
                          "errors": sum(x["errors"] for x in xs),
                          "runs": [x["per_second"] for x in xs],
                          "p50_runs": [x["p50_ms"] for x in xs], "p99_runs": [x["p99_ms"] for x in xs]}
        if paths[name]:
            r["cpu_seconds"] = round(cpu[name], 3)
            r["bytes_relayed"] = moved[name]
            r["cpu_s_per_gb"] = round(cpu[name] / (moved[name] / 1e9), 3) if moved[name] else None
            # Sessions/s depends on the CPU share a server gets from the scheduler (per
            # thread: a thread-per-connection server gets more of a busy machine); the CPU
            # a session costs does not.
            r["cpu_us_per_session"] = round(rate_cpu[name] * 1e6 / sessions[name], 1) if sessions[name] else None
    return {name: res[name] for name in live}


def measure_idle(r, proxy, tool, target, a):
    """The idle hold (RSS per session), one path at a time: it measures memory, not time."""
    root = proxy.pid if proxy else None
    r["idle"] = hold(tool, proxy.addr if proxy else "direct", target, a.idle, root)
    if root:
        r["rss_idle_kib"] = r["idle"]["rss_kib"]
        held = r["idle"]["held"]
        # Per session only when the hold (nearly) succeeded; otherwise the figure means nothing.
        r["rss_per_conn_kib"] = (round((r["rss_idle_kib"] - r["rss_start_kib"]) / held, 2)
                                 if held >= 0.9 * a.idle else None)


# ---------------------------------------------------------------- report

# Column order; "socksd-prev" is another socksd build (--baseline), for before/after.
PATHS = ("direct", "socksd", "socksd-prev", "microsocks", "dante")


ROWS = [
    ("1-stream download, Gbit/s", lambda r: r["down_1"]["gbit_s"], "higher"),
    ("4-stream download, Gbit/s", lambda r: r["down_4"]["gbit_s"], "higher"),
    ("1-stream upload, Gbit/s", lambda r: r["up_1"]["gbit_s"], "higher"),
    ("sessions/s (CONNECT + {size} B echo, {workers} workers)", lambda r: r["rate"]["per_second"], "higher"),
    ("session latency p50, ms", lambda r: r["rate"]["p50_ms"], "lower"),
    ("session latency p99, ms", lambda r: r["rate"]["p99_ms"], "lower"),
    ("64 B round trip median, µs (one session, {round_trips} round trips)",
     lambda r: r["rtt"]["median_us"], "lower"),
    ("64 B round trip p99, µs", lambda r: r["rtt"]["p99_us"], "lower"),
    ("failed sessions in the rate run", lambda r: r["rate"]["errors"], "lower"),
    ("RSS at start, KiB", lambda r: r.get("rss_start_kib"), "lower"),
    ("RSS with {idle} idle sessions, KiB", lambda r: r.get("rss_idle_kib"), "lower"),
    ("RSS per idle session, KiB", lambda r: r.get("rss_per_conn_kib"), "lower"),
    ("idle sessions held (of {idle})", lambda r: r["idle"]["held"], "higher"),
    ("CPU seconds per GB relayed", lambda r: r.get("cpu_s_per_gb"), "lower"),
    ("CPU µs per session (rate run)", lambda r: r.get("cpu_us_per_session"), "lower"),
]


# The rounds behind a median figure, for its spread (label prefix -> runs).
SPREADS = {
    "1-stream download": lambda r: r["down_1"].get("runs"),
    "4-stream download": lambda r: r["down_4"].get("runs"),
    "1-stream upload": lambda r: r["up_1"].get("runs"),
    "sessions/s": lambda r: r["rate"].get("runs"),
    "session latency p50": lambda r: r["rate"].get("p50_runs"),
    "session latency p99": lambda r: r["rate"].get("p99_runs"),
    "64 B round trip median": lambda r: r["rtt"].get("median_runs"),
    "64 B round trip p99": lambda r: r["rtt"].get("p99_runs"),
}


def cell(label, get, r):
    v = get(r)
    for prefix, runs_of in SPREADS.items():
        if label.startswith(prefix):
            runs = runs_of(r)
            if runs and len(runs) > 1:
                return f"{fmt(v)} ({fmt(min(runs))}–{fmt(max(runs))})"
    return fmt(v)


def fmt(v):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:,.0f}"
    return f"{v:,}"


def ratio(v, base):
    if v is None or base in (None, 0):
        return "–"
    return f"{v / base:.2f}×"


def markdown(report, a):
    res = report["results"]
    names = [n for n in PATHS if n in res and "error" not in res[n]]
    out = [f"# socksd benchmark, {report['date']}", "",
           f"Loopback, {report['machine']['cpus']} CPUs ({report['machine']['cpu_model']}), kernel "
           f"{report['machine']['kernel']}; commit {report['source']['commit']}"
           f"{' (socksd sources modified)' if report['source']['socksd_sources_modified'] else ''}; "
           f"{a.seconds} s per throughput/rate run, {a.repeat} interleaved rounds (figure: median, "
           "in brackets: min–max of the rounds), "
           f"{a.idle} idle sessions; load average "
           f"{report.get('load_average_at_start', [0])[0]:.1f} at start, "
           f"{report.get('load_average_at_end', [0])[0]:.1f} at the end (other work moves every figure). "
           "Figures from one run: compare columns, not machines.", ""]
    for n, r in res.items():
        if "error" in r:
            out += [f"- **{n}** not measured: {r['error']}"]
    if any("error" in r for r in res.values()):
        out.append("")
    out += ["| metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for label, get, _ in ROWS:
        label = label.format(size=a.size, workers=a.workers, idle=a.idle, round_trips=a.round_trips)
        out.append(f"| {label} | " + " | ".join(cell(label, get, res[n]) for n in names) + " |")
    for base in ("direct", "socksd"):
        if base not in names:
            continue
        others = [n for n in names if n != base]
        out += ["", f"Ratio to {base} (figure / {base}'s figure):", "",
                "| metric | " + " | ".join(others) + " |", "|---|" + "---:|" * len(others)]
        for label, get, better in ROWS:
            if not get(res[base]) or label.startswith(("failed", "idle sessions held")):
                continue
            label = label.format(size=a.size, workers=a.workers, idle=a.idle, round_trips=a.round_trips)
            out.append(f"| {label} ({better} is better) | " +
                       " | ".join(ratio(get(res[n]), get(res[base])) for n in others) + " |")
    out += ["", "Versions: " + "; ".join(f"{k}: {v}" for k, v in report["versions"].items()), ""]
    return "\n".join(out)


def version_of(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=5)
        line = (out.stdout or out.stderr).strip().splitlines()
        return line[0] if line else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def deb_version(pkg):
    return version_of(["dpkg-query", "-W", "-f=${Version}", pkg])


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"kernel": platform.release(), "cpus": os.cpu_count(), "cpu_model": model}


def source_state():
    """The commit measured, and whether socksd's sources differed from it."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    head = version_of(["git", "-C", root, "rev-parse", "--short", "HEAD"])
    dirty = version_of(["git", "-C", root, "status", "--porcelain", "--", "src/server", "src/apps/socksd",
                        "src/net", "src/socks", "src/config"])
    return {"commit": head, "socksd_sources_modified": dirty not in ("", "?")}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--load", required=True, help="path of the socks_load binary")
    ap.add_argument("--socksd", default="", help="path of socksd ('' = not measured)")
    ap.add_argument("--socksd-missing", default="", help="why socksd is not measured")
    ap.add_argument("--baseline", default="", help="another socksd binary, measured as 'socksd-prev'")
    ap.add_argument("--microsocks", default="/usr/bin/microsocks")
    ap.add_argument("--danted", default="/usr/sbin/danted")
    ap.add_argument("--only", default="direct,socksd,microsocks,dante")
    ap.add_argument("--seconds", type=int, default=5, help="length of each throughput and rate run")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved rounds; figures are their medians")
    ap.add_argument("--workers", type=int, default=4, help="concurrent clients in the rate run")
    ap.add_argument("--size", type=int, default=100, help="echoed bytes per session in the rate run")
    ap.add_argument("--round-trips", type=int, default=5000,
                    help="64-byte round trips per path and round in the latency run")
    ap.add_argument("--idle", type=int, default=1000, help="idle relayed sessions held for the RSS figure")
    ap.add_argument("--out", required=True, help="results directory")
    a = ap.parse_args()

    only = a.only.split(",")
    if a.baseline and "socksd-prev" not in only:
        only.append("socksd-prev")
    work = tempfile.mkdtemp(prefix="socksd-bench.")
    server = subprocess.Popen([a.load, "server", "--threads", "2"], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    report = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": machine(),
              "source": source_state(),
              "config": {k: getattr(a, k) for k in ("seconds", "repeat", "workers", "size", "round_trips", "idle")},
              "load_average_at_start": list(os.getloadavg()),
              "versions": {}, "results": {}}
    try:
        line = server.stdout.readline()
        m = re.search(r"listening on (\S+)", line)
        if not m:
            raise SystemExit(f"load server did not start: {line!r}")
        target = m.group(1)
        log(f"sink/source/echo server on {target}")
        starters = {
            "socksd": (lambda: start_socksd(a.socksd, work)) if a.socksd else None,
            "socksd-prev": lambda: start_socksd(a.baseline, work, "socksd-prev"),
            "microsocks": lambda: start_microsocks(a.microsocks, work),
            "dante": lambda: start_dante(a.danted, work),
        }
        if a.socksd:
            report["versions"]["socksd"] = version_of([a.socksd, "--version"])
        if a.baseline:
            report["versions"]["socksd-prev"] = version_of([a.baseline, "--version"]) + " (--baseline " + a.baseline + ")"
        report["versions"]["microsocks"] = deb_version("microsocks")
        report["versions"]["dante"] = version_of([a.danted, "-v"]).split(".  ")[0]
        paths = {}
        failed = {}
        try:
            for name in PATHS:
                if name not in only or (name == "socksd-prev" and not a.baseline):
                    continue
                if name == "socksd" and not a.socksd:
                    failed[name] = a.socksd_missing or "no socksd binary"
                    log(f"socksd skipped: {failed[name]}")
                    continue
                try:
                    paths[name] = starters[name]() if name != "direct" else None
                except Exception as e:
                    failed[name] = str(e)
                    log(f"{name} did not start: {e}")
            log(f"measuring {', '.join(paths)}: {a.repeat} interleaved rounds ...")
            results = measure_all(paths, a.load, target, a, failed)
            for name, r in results.items():
                try:
                    measure_idle(r, paths[name], a.load, target, a)
                except Exception as e:
                    failed[name] = f"idle hold: {e}"
                    continue
                report["results"][name] = r
                log(f"{name}: down1 {r['down_1']['gbit_s']:.2f} Gbit/s, down4 {r['down_4']['gbit_s']:.2f}, "
                    f"up1 {r['up_1']['gbit_s']:.2f}, {r['rate']['per_second']:.0f} sessions/s, "
                    f"64 B round trip {r['rtt']['median_us']:.1f} µs, "
                    f"idle held {r['idle']['held']}, RSS {r.get('rss_idle_kib')} KiB, "
                    f"CPU {r.get('cpu_s_per_gb')} s/GB")
        finally:
            for name, proxy in paths.items():
                if proxy:
                    proxy.stop()
        for name, why in failed.items():
            report["results"][name] = {"error": why}
            tail = os.path.join(work, f"{name}.log")
            if os.path.exists(tail):
                with open(tail, errors="replace") as f:
                    log(f"tail of {name}'s log:\n" + "".join(f.readlines()[-20:]))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(5)

    report["load_average_at_end"] = list(os.getloadavg())
    os.makedirs(a.out, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    jpath = os.path.join(a.out, f"socksd-{stamp}.json")
    mpath = os.path.join(a.out, f"socksd-{stamp}.md")
    with open(jpath, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    md = markdown(report, a)
    with open(mpath, "w") as f:
        f.write(md)
    print(md)
    log(f"wrote {jpath} and {mpath}")
    for n in os.listdir(work):
        os.remove(os.path.join(work, n))
    os.rmdir(work)


if __name__ == "__main__":
    main()
