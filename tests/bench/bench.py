"""Benchmarks source-aws-billing against a boto3 + requests reference and prints one table.

Both run against the same servers (tests/bench/servers.rs: the fake Cost Explorer from
tests/support and a Rust receiver answering 204 over keep-alive). Every figure comes from
the kernel: wait4() rusage for peak RSS and CPU, taken by a tiny launcher (launch.c) so that
the driver's own memory is not folded in; CLOCK_MONOTONIC for times (the launcher stamps the
exec, the fake Cost Explorer the first request); /proc for the idle cost.

    bench.py --servers PATH --launch PATH [--bin PATH] [--smoke] [--runs N] [--idle-seconds S]

Exit status: 0 when every figure was produced (whatever PASS/MISS says), 1 otherwise.
"""

import argparse
import datetime
import json
import os
import platform
import re
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_BIN = os.path.join(ROOT, "target", "x86_64-unknown-linux-musl", "release", "source-aws-billing")
REFERENCE = os.path.join(HERE, "reference.py")
ACCESS_KEY_ID = "AKIDBENCHEXAMPLE0001"
SECRET_ACCESS_KEY = "benchSecret/DoNotPrint+wJalrXUtnFEMIK7MDENG"
MB = 1_000_000  # targets are read as decimal megabytes, the stricter reading
CLK_TCK = os.sysconf("SC_CLK_TCK")
USABLE_CPUS = len(os.sched_getaffinity(0))  # before any pinning


class Problem(Exception):
    """A figure could not be produced (a run failed or its result was wrong)."""


# --------------------------------------------------------------------------- servers


class Servers:
    """The bench-servers process, driven line by line."""

    def __init__(self, path):
        self.proc = subprocess.Popen(
            [path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.receiver = self._read()["receiver"]

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise Problem("bench-servers exited")
        answer = json.loads(line)
        if "error" in answer:
            raise Problem(f"bench-servers: {answer['error']}")
        return answer

    def command(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self._read()

    def new_ce(self, groups, page_size):
        """A fresh fake Cost Explorer (request log empty); also zeroes the receiver."""
        url = self.command(f"ce {groups} {page_size}")["ce"]
        self.command("reset")
        return url

    def stats(self):
        return self.command("stats")

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


# --------------------------------------------------------------------------- processes


class Child:
    """A command run through the launcher (tests/bench/launch.c): exact exec time, peak RSS, CPU."""

    launcher = None  # set in main()

    def __init__(self, argv, env, cwd, log_path):
        self.argv = argv
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [Child.launcher, *argv], env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log
            )
        self.fd = self.proc.stdout.fileno()
        self.pending = b""
        self.result = None
        started = self._line(30)
        if not started or "pid" not in started:
            self.proc.kill()
            self.proc.wait()
            raise Problem(f"launch {argv[0]} failed: {self.log_tail()}")
        self.pid, self.exec_ns = started["pid"], started["exec_ns"]

    def _line(self, timeout):
        """The launcher's next JSON line; None at EOF or when `timeout` seconds pass first."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.pending:
            left = max(deadline - time.monotonic(), 0)
            if not select.select([self.fd], [], [], left)[0]:
                return None
            chunk = os.read(self.fd, 4096)
            if not chunk:
                return None
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return json.loads(line)

    def running(self):
        if self.result is None:
            self.result = self._line(0)
        return self.result is None

    def wait(self, timeout):
        """Returns (exit code, usage, end_ns); kills the command at the deadline (a Problem then)."""
        if self.result is None:
            self.result = self._line(timeout)
            if self.result is None:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.result = self._line(10) or {}
                self.proc.wait()
                raise Problem(f"{self.describe()} did not finish within {timeout}s; log: {self.log_tail()}")
        self.proc.wait()
        r = self.result
        if "status" not in r:
            raise Problem(f"launch lost {self.describe()}: {self.log_tail()}")
        code = r["exit"] if r["signal"] == 0 else -r["signal"]
        usage = {
            "maxrss_bytes": r["maxrss_kb"] * 1024,
            "cpu_s": (r["utime_us"] + r["stime_us"]) / 1e6,
            "launcher_hwm_bytes": r["launcher_hwm_kb"] * 1024,
        }
        return code, usage, r["end_ns"]

    def stop(self, timeout=10):
        """SIGTERM, then wait for the exit."""
        if self.running():
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass  # it exited since; the launcher reports how
        return self.wait(timeout)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_tail(self, lines=6):
        return " | ".join(self.log().strip().splitlines()[-lines:])

    def describe(self):
        return " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(self.argv[:4]))


def wait_for(condition, within, what):
    """Polls `condition` until true or `within` seconds pass (then Problem)."""
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise Problem(f"timed out after {within}s waiting for {what}")
        time.sleep(0.005)


def clean_env(extra):
    """No proxies, no AWS config from the host: only what the run needs."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "TZ": "UTC"}
    env.update(extra)
    return env


# --------------------------------------------------------------------------- the two contenders


class Bench:
    def __init__(self, args, servers, workdir):
        self.args = args
        self.servers = servers
        self.workdir = workdir
        self.counter = 0
        self.today = datetime.datetime.now(datetime.timezone.utc).date()
        self.yesterday = self.today - datetime.timedelta(days=1)
        self.range_first = self.today - datetime.timedelta(days=1 + args.range_days)
        self.range_last = self.today - datetime.timedelta(days=2)

    def fresh_dir(self, tag):
        self.counter += 1
        path = os.path.join(self.workdir, f"{self.counter:03d}-{tag}")
        os.makedirs(os.path.join(path, "state"))
        return path

    def binary_setup(self, tag, ce, pull_hour=2):
        """A directory with config.yml, secret.yml and an empty state_dir; returns its path."""
        path = self.fresh_dir(tag)
        with open(os.path.join(path, "config.yml"), "w") as f:
            f.write(
                f"target: {self.servers.receiver}\n"
                f"endpoint: {ce}\n"
                "region: us-east-1\n"
                f"pull_hour: {pull_hour}\n"
                f"state_dir: {os.path.join(path, 'state')}\n"
                "content_mode: binary\n"
                "max_spool_mb: 512\n"
            )
        with open(os.path.join(path, "secret.yml"), "w") as f:
            f.write(f"access_key_id: {ACCESS_KEY_ID}\nsecret_access_key: {SECRET_ACCESS_KEY}\n")
        return path

    def binary(self, path, args, log_level="info"):
        argv = [self.args.bin, *args, "--config", "config.yml", "--secret", "secret.yml"]
        env = clean_env({"LOG_LEVEL": log_level})
        return Child(argv, env, path, os.path.join(path, f"log-{self.counter}-{args[0]}.txt"))

    def reference(self, path, ce, dates):
        argv = [sys.executable, REFERENCE, "--endpoint", ce, "--target", self.servers.receiver, *dates]
        env = clean_env(
            {
                "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
                "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
                "AWS_CONFIG_FILE": "/dev/null",
                "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                "AWS_EC2_METADATA_DISABLED": "true",
                "HOME": path,
            }
        )
        return Child(argv, env, path, os.path.join(path, f"log-{self.counter}-reference.txt"))

    def measured(self, who, days):
        """One complete pull-and-deliver of `days` days by `who`; checks the result; returns figures."""
        groups = self.args.groups * days
        ce = self.servers.new_ce(self.args.groups, self.args.page_size)
        if days == 1:
            dates = ["--date", self.yesterday.isoformat()]
        else:
            dates = ["--from", self.range_first.isoformat(), "--to", self.range_last.isoformat()]
        if who == "binary":
            path = self.binary_setup("binary", ce)
            child = self.binary(path, ["once", *dates])
        else:
            path = self.fresh_dir("reference")
            child = self.reference(path, ce, dates)
        code, usage, end_ns = child.wait(self.args.timeout)
        stats = self.servers.stats()
        if code != 0:
            raise Problem(f"{child.describe()} exited {code}: {child.log_tail()}")
        self.check_delivery(stats, groups, child)
        first = stats.get("ce_first_mono_ns")
        return {
            "wall_s": (end_ns - child.exec_ns) / 1e9,
            "maxrss_bytes": usage["maxrss_bytes"],
            "cpu_s": usage["cpu_s"],
            "launcher_hwm_bytes": usage["launcher_hwm_bytes"],
            "first_request_ms": (int(first) - child.exec_ns) / 1e6 if first else None,
            "ce_requests": stats["ce_requests"],
            "receiver_connections": stats["receiver_connections"],
        }

    def pages_needed(self, groups):
        return max(1, -(-groups // self.args.page_size))

    def check_delivery(self, stats, groups, child):
        problems = []
        if stats["ce_violations"]:
            problems.append(f"fake Cost Explorer refused requests: {stats['ce_violations'][:2]}")
        if stats["bad_events"]:
            problems.append(f"{stats['bad_events']} malformed events, first: {stats['first_bad']}")
        if stats["events"] != groups or stats["distinct_ids"] != groups:
            problems.append(f"receiver got {stats['events']} events ({stats['distinct_ids']} ids), expected {groups}")
        if stats["ce_groups_served"] != groups:
            problems.append(f"Cost Explorer served {stats['ce_groups_served']} groups, expected {groups}")
        if problems:
            raise Problem(f"{child.describe()}: " + "; ".join(problems) + f"; log: {child.log_tail()}")

    # ----------------------------------------------------------------------- figure 2c

    def revised_day(self):
        """A day grouped by SERVICE × LINKED_ACCOUNT with revise_days 3: its first delivery
        (which records the snapshot), then `revise` after every 10th line changed."""
        groups = self.args.revise_groups
        ce = self.servers.new_ce(groups, self.args.page_size)
        path = self.binary_setup("revise", ce)
        with open(os.path.join(path, "config.yml"), "a") as f:
            f.write("group_by: [SERVICE, LINKED_ACCOUNT]\nrevise_days: 3\n")
        day = (self.today - datetime.timedelta(days=2)).isoformat()
        first = self.binary(path, ["once", "--date", day])
        code, first_usage, _ = first.wait(self.args.timeout)
        if code != 0:
            raise Problem(f"{first.describe()} exited {code}: {first.log_tail()}")
        self.check_delivery(self.servers.stats(), groups, first)
        self.servers.command("drift 10")
        self.servers.command("reset")
        requests_before = self.servers.stats()["ce_requests"]
        again = self.binary(path, ["revise"])
        code, usage, _ = again.wait(self.args.timeout)
        stats = self.servers.stats()
        if code != 0:
            raise Problem(f"{again.describe()} exited {code}: {again.log_tail()}")
        want = -(-groups // 10)
        if stats["events"] != want or stats["distinct_ids"] != want or stats["bad_events"]:
            raise Problem(f"revise sent {stats['events']} events ({stats['distinct_ids']} ids, {stats['bad_events']} bad), expected {want} revisions")
        snapshot = sum(os.path.getsize(os.path.join(path, "state", "revise", n)) for n in os.listdir(os.path.join(path, "state", "revise")))
        return {
            "first_rss": first_usage["maxrss_bytes"],
            "revise_rss": usage["maxrss_bytes"],
            "revisions": stats["events"],
            "ce_requests": stats["ce_requests"] - requests_before,
            "snapshot_bytes": snapshot,
        }

    # ----------------------------------------------------------------------- figure 5

    def idle(self):
        """`run` asleep with yesterday delivered and the next pull hours away: wake-ups and CPU over the window."""
        ce = self.servers.new_ce(self.args.groups, self.args.page_size)
        hour = (datetime.datetime.now(datetime.timezone.utc).hour + 12) % 24
        path = self.binary_setup("idle", ce, pull_hour=hour)
        with open(os.path.join(path, "state", "delivered.json"), "w") as f:
            json.dump({"version": 1, "delivered": [self.yesterday.isoformat()]}, f)
        os.makedirs(os.path.join(path, "state", "spool"), exist_ok=True)
        child = self.binary(path, ["run"], log_level="debug")
        try:
            wait_for(lambda: "sleeping until" in child.log(), 10, "the service to go to sleep")
            # The log line comes just before the sleep: start the window only once every
            # thread is blocked in its wait, or the block itself counts as a wake-up.
            wait_for(lambda: all_blocked(child.pid), 10, "every thread of the service to block")
            before = proc_sample(child.pid)
            time.sleep(self.args.idle_seconds)  # the measurement window itself
            after = proc_sample(child.pid)
            if not child.running():
                raise Problem(f"the service exited while idle: {child.log_tail()}")
            stats = self.servers.stats()
        finally:
            child.stop()
        new_tids = sorted(set(after["threads"]) - set(before["threads"]))
        return {
            "seconds": self.args.idle_seconds,
            "voluntary": after["voluntary"] - before["voluntary"],
            "involuntary": after["involuntary"] - before["involuntary"],
            "cpu_ticks": after["ticks"] - before["ticks"],
            "oncpu_ns": after["oncpu_ns"] - before["oncpu_ns"],
            "threads": len(after["threads"]),
            "new_threads": new_tids,
            "rss_bytes": after["rss_bytes"],
            "ce_requests": stats["ce_requests"],
            "events": stats["events"],
            "wake_at": re.findall(r"sleeping until (\S+)", child.log())[-1:],
        }

    # ----------------------------------------------------------------------- figure 6

    def restart(self):
        """once for yesterday, then `run` on the same state: Cost Explorer requests before and after."""
        groups = self.args.groups
        ce = self.servers.new_ce(groups, self.args.page_size)
        path = self.binary_setup("restart", ce, pull_hour=0)
        once = self.binary(path, ["once", "--date", self.yesterday.isoformat()])
        code, _, _ = once.wait(self.args.timeout)
        first = self.servers.stats()
        if code != 0:
            raise Problem(f"once exited {code}: {once.log_tail()}")
        self.check_delivery(first, groups, once)
        service = self.binary(path, ["run"], log_level="debug")
        try:
            wait_for(lambda: "sleeping until" in service.log(), 10, "the restarted service to go to sleep")
            second = self.servers.stats()
        finally:
            service.stop()
        return {
            "pages": self.pages_needed(groups),
            "first": first["ce_requests"],
            "after_restart": second["ce_requests"] - first["ce_requests"],
            "events_after_restart": second["events"] - first["events"],
        }

    def interrupted(self):
        """once stopped by SIGTERM mid-delivery, then `run`: the spool is delivered, nothing pulled again."""
        groups = self.args.groups
        ce = self.servers.new_ce(groups, self.args.page_size)
        path = self.binary_setup("interrupted", ce, pull_hour=0)
        self.servers.command("delay 1000")  # a slow target, so the stop lands mid-delivery
        try:
            once = self.binary(path, ["once", "--date", self.yesterday.isoformat()])
            try:
                wait_for(lambda: self.servers.stats()["events"] >= groups // 4, 30, "a quarter of the events")
            finally:
                once.stop(self.args.timeout)
        finally:
            self.servers.command("delay 0")
        stopped = self.servers.stats()
        if stopped["events"] >= groups:
            raise Problem("the stop came after the whole day was delivered; nothing was left to resume")
        service = self.binary(path, ["run"], log_level="debug")
        try:
            wait_for(lambda: "sleeping until" in service.log(), self.args.timeout, "the restarted service to go to sleep")
            final = self.servers.stats()
        finally:
            service.stop()
        if final["distinct_ids"] != groups or final["bad_events"]:
            raise Problem(f"after the restart the receiver has {final['distinct_ids']} distinct events, expected {groups}")
        return {
            "pages": self.pages_needed(groups),
            "total": final["ce_requests"],
            "delivered_before_stop": stopped["events"],
            "duplicates": final["events"] - groups,
        }


# x86_64 syscall numbers of the service's waits: poll (timer + stop pipe), rt_sigtimedwait
# (sigwait in the signal thread).
WAIT_SYSCALLS = {"7", "128"}


def all_blocked(pid):
    """True when every thread of `pid` sleeps in one of WAIT_SYSCALLS."""
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/syscall") as f:
                if f.read().split(" ", 1)[0] not in WAIT_SYSCALLS:
                    return False
    except (FileNotFoundError, PermissionError):
        return False
    return True


def proc_sample(pid):
    """Context switches summed over every thread, utime+stime ticks of the process, RSS."""
    voluntary = involuntary = oncpu_ns = 0
    tids = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                text = f.read()
        except FileNotFoundError:
            continue
        tids.append(int(tid))
        voluntary += int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", text, re.M).group(1))
        involuntary += int(re.search(r"^nonvoluntary_ctxt_switches:\s+(\d+)", text, re.M).group(1))
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                oncpu_ns += int(f.read().split()[0])  # nanoseconds run on a CPU
        except (FileNotFoundError, IndexError, ValueError):
            pass
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    with open(f"/proc/{pid}/status") as f:
        rss_kb = int(re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M).group(1))
    return {
        "voluntary": voluntary,
        "involuntary": involuntary,
        "ticks": ticks,
        "oncpu_ns": oncpu_ns,
        "threads": tids,
        "rss_bytes": rss_kb * 1024,
    }


# --------------------------------------------------------------------------- sizes and machine


def reference_footprint():
    """Bytes on disk the reference needs: the installed boto3 + requests closure, and the part of
    CPython it loads (interpreter, libpython, the stdlib modules and extensions it imports)."""
    script = r"""
import importlib.metadata as md, json, os, re, sys, sysconfig
seen, todo, packages = set(), ["boto3", "requests"], 0
while todo:
    name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
    if name in seen:
        continue
    seen.add(name)
    dist = md.distribution(name)
    for f in dist.files or []:
        p = f.locate()
        if os.path.isfile(p):
            packages += os.path.getsize(p)
    for req in dist.requires or []:
        if "extra ==" not in req:
            todo.append(re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0])
import boto3, requests
boto3.client("ce", region_name="us-east-1", endpoint_url="http://127.0.0.1:9", aws_access_key_id="x", aws_secret_access_key="y")
site = tuple(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
files = {os.path.realpath(sys.executable)}
with open("/proc/self/maps") as maps:
    files.update(l.split(None, 5)[5].strip() for l in maps if len(l.split(None, 5)) == 6 and l.split(None, 5)[5].startswith("/"))
for m in list(sys.modules.values()):
    f = getattr(m, "__file__", None)
    if f and not f.startswith(site):
        files.add(os.path.realpath(f))
        cached = getattr(m, "__cached__", None)
        if cached and os.path.isfile(cached):
            files.add(cached)
runtime = sum(os.path.getsize(f) for f in files if os.path.isfile(f) and not f.startswith(site))
print(json.dumps({"packages": packages, "runtime": runtime, "dists": sorted(seen)}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def machine():
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        commit = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "?"
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    return f"nproc {USABLE_CPUS} ({os.cpu_count()} online), {model}; Linux {platform.release()}; load {load}; Python {platform.python_version()}; commit {commit or '?'}"


def is_static(path):
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    return b"/ld-linux" not in head and b"ld-musl" not in head


# --------------------------------------------------------------------------- formatting


def median(values):
    return statistics.median(values) if values else None


def spread(values, fmt):
    if len(values) < 2:
        return ""
    return f" ({fmt(min(values))}–{fmt(max(values))})"


def mb(b):
    return f"{b / MB:.2f} MB"


def ms(x):
    return f"{x:.1f} ms" if x < 100 else f"{x:.0f} ms"


def secs(x):
    return f"{x:.3f} s" if x < 10 else f"{x:.1f} s"


def rate(x):
    return f"{x:,.0f}/s"


def verdict(ok):
    return "PASS" if ok else "MISS"


def print_table(rows):
    headers = ["#", "figure", "source-aws-billing", "reference (boto3+requests)", "target", "result"]
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    line = "  ".join("-" * w for w in widths)
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print(line)
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


# --------------------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", required=True, help="the built bench-servers example")
    parser.add_argument("--launch", required=True, help="the built tests/bench/launch.c")
    parser.add_argument("--bin", default=os.environ.get("SAB_BENCH_BIN", DEFAULT_BIN))
    parser.add_argument("--smoke", action="store_true", help="1 run, small sizes, 3 s idle window")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--groups", type=int, help="groups per day (default 2000, smoke 200)")
    parser.add_argument("--range-days", type=int, help="days in the range run (default 10, smoke 2)")
    parser.add_argument("--page-size", type=int, help="groups per Cost Explorer page (default 1000, smoke 100)")
    parser.add_argument("--reference-range-runs", type=int, help="reference runs of the range (default 3, smoke 1)")
    parser.add_argument("--idle-seconds", type=float)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument(
        "--cpus",
        choices=["one", "all"],
        default="one",
        help="one (default): the driver, the servers and the measured process share one CPU; all: no pinning",
    )
    parser.add_argument("--only", help="comma-separated parts to run: day,range,restart,interrupted,idle,footprint")
    args = parser.parse_args()
    smoke = args.smoke
    args.runs = args.runs or (1 if smoke else 5)
    args.groups = args.groups or (200 if smoke else 2000)
    args.revise_groups = 2000 if smoke else 20000
    args.range_days = args.range_days or (2 if smoke else 10)
    args.page_size = args.page_size or (100 if smoke else 1000)
    args.reference_range_runs = args.reference_range_runs if args.reference_range_runs is not None else (1 if smoke else 3)
    args.idle_seconds = args.idle_seconds or (3 if smoke else 60)

    args.bin = os.path.abspath(args.bin)
    if not os.access(args.bin, os.X_OK):
        print(f"bench: no binary at {args.bin} (run make static)", file=sys.stderr)
        return 1

    Child.launcher = args.launch
    if args.cpus == "one":
        # Everything inherits this. On a VM, waking an idle second vCPU costs tens of µs per
        # round trip and would swamp what the clients themselves cost; on one CPU each
        # request hands over directly to the receiver and back.
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    started = time.monotonic()
    servers = Servers(args.servers)
    failures = []
    results = {}
    with tempfile.TemporaryDirectory(prefix="sab-bench-") as workdir:
        bench = Bench(args, servers, workdir)

        only = set(args.only.split(",")) if args.only else None

        def attempt(name, fn):
            if only is not None and name.split("_")[0] not in only:
                results[name] = None
                return
            try:
                results[name] = fn()
            except Exception as e:  # noqa: BLE001 - any failure means this figure is missing
                failures.append(f"{name}: {e}")
                results[name] = None
            print(f"bench: {name} done ({time.monotonic() - started:.0f}s)", file=sys.stderr)

        def runs(who, days, count):
            out = []
            for _ in range(count):
                out.append(bench.measured(who, days))
            return out

        # Interleaved so that drift in the machine's load hits both sides alike.
        day_bin, day_ref = [], []

        def day_runs():
            for _ in range(args.runs):
                day_bin.append(bench.measured("binary", 1))
                day_ref.append(bench.measured("reference", 1))
            return True

        attempt("day", day_runs)
        attempt("range_binary", lambda: runs("binary", args.range_days, args.runs))
        attempt("range_reference", lambda: runs("reference", args.range_days, args.reference_range_runs))
        attempt("restart", bench.restart)
        attempt("interrupted", bench.interrupted)
        attempt("revise", lambda: [bench.revised_day() for _ in range(args.runs)])
        attempt("idle", bench.idle)
        attempt("footprint", reference_footprint)
    servers.close()

    rows = []
    g, n = args.groups, args.groups * args.range_days

    # 1. size
    size = os.path.getsize(args.bin)
    fp = results.get("footprint")
    ref_size = f"{mb(fp['packages'])} boto3+requests ({len(fp['dists'])} dists) + {mb(fp['runtime'])} of CPython it loads" if fp else "n/a"
    rows.append(["1", "binary (= scratch image) size", f"{size:,} B = {mb(size)} ({size / 2**20:.2f} MiB){'' if is_static(args.bin) else ' NOT STATIC'}", ref_size, "≤ 2.00 MB", verdict(size <= 2 * MB)])

    # 2. peak RSS
    rss_day = median([r["maxrss_bytes"] for r in day_bin]) if len(day_bin) == args.runs else None
    rss_day_ref = median([r["maxrss_bytes"] for r in day_ref]) if len(day_ref) == args.runs else None
    rb, rr = results.get("range_binary"), results.get("range_reference")
    rss_range = median([r["maxrss_bytes"] for r in rb]) if rb else None
    rss_range_ref = median([r["maxrss_bytes"] for r in rr]) if rr else None

    def rss_cell(v, values):
        return f"{mb(v)}{spread(values, lambda x: f'{x / MB:.2f}')}" if v else "n/a"

    rows.append(["2a", f"peak RSS, {g:,}-group day", rss_cell(rss_day, [r["maxrss_bytes"] for r in day_bin]), rss_cell(rss_day_ref, [r["maxrss_bytes"] for r in day_ref]), "≤ 4.00 MB", verdict(rss_day is not None and rss_day <= 4 * MB) if rss_day else "n/a"])
    growth = f" = {rss_range / rss_day:.2f}× 2a" if rss_range and rss_day else ""
    rows.append(["2b", f"peak RSS, {n:,}-group range ({args.range_days} d)", rss_cell(rss_range, [r["maxrss_bytes"] for r in rb or []]) + growth, rss_cell(rss_range_ref, [r["maxrss_bytes"] for r in rr or []]), "≤ 1.25× 2a", verdict(rss_range <= 1.25 * rss_day) if rss_range and rss_day else "n/a"])

    rv = results.get("revise")
    if rv:
        fr, rr_ = median([r["first_rss"] for r in rv]), median([r["revise_rss"] for r in rv])
        label = f"peak RSS, {args.revise_groups:,}-line day by SERVICE × LINKED_ACCOUNT, revise_days 3: first delivery / revise ({rv[0]['revisions']:,} revisions; {rv[0]['ce_requests']} CE requests = the day's pages)"
        cell = f"{mb(fr)} / {mb(rr_)}{spread([r['revise_rss'] for r in rv], lambda x: f'{x / MB:.2f}')}; snapshot {mb(rv[0]['snapshot_bytes'])} on disk"
        flat = rss_day is not None and rr_ <= 1.25 * rss_day and fr <= 1.25 * rss_day
        rows.append(["2c", label, cell, "n/a", "≤ 1.25× 2a", verdict(flat) if rss_day else "n/a"])
    else:
        rows.append(["2c", "peak RSS, revised day", "n/a", "n/a", "≤ 1.25× 2a", "n/a"])

    # 3. wall time and events/s
    if len(day_bin) == args.runs and len(day_ref) == args.runs:
        wb, wr = [r["wall_s"] for r in day_bin], [r["wall_s"] for r in day_ref]
        mb_, mr = median(wb), median(wr)
        rows.append(["3a", f"wall time, {g:,}-group day, exec to exit", f"{secs(mb_)}{spread(wb, lambda x: f'{x:.3f}')}", f"{secs(mr)}{spread(wr, lambda x: f'{x:.2f}')}", "", ""])
        cb, cr = median([r["cpu_s"] for r in day_bin]), median([r["cpu_s"] for r in day_ref])
        rows.append(["3b", "CPU time (user+sys) of that run", secs(cb), secs(cr), "", ""])
        ratio = mr / mb_
        rows.append(["3c", "events delivered per second", rate(g / mb_), rate(g / mr), "≥ 10× reference", f"{verdict(ratio >= 10)} ({ratio:.1f}×)"])
        conns = sorted({r["receiver_connections"] for r in day_bin}), sorted({r["receiver_connections"] for r in day_ref})
        rows.append(["3d", "TCP connections to the receiver per run", "/".join(map(str, conns[0])), "/".join(map(str, conns[1])), "1 (keep-alive)", verdict(conns[0] == [1])])
        # 4. exec to first request
        fb = [r["first_request_ms"] for r in day_bin if r["first_request_ms"] is not None]
        fr = [r["first_request_ms"] for r in day_ref if r["first_request_ms"] is not None]
        f_b, f_r = median(fb), median(fr)
        rows.append(["4", "exec → first Cost Explorer request", f"{ms(f_b)}{spread(fb, lambda x: f'{x:.2f}')}", f"{ms(f_r)}{spread(fr, lambda x: f'{x:.0f}')}", "≤ 5 ms", verdict(f_b <= 5)])
    else:
        for tag, name in [("3a", "wall time"), ("3c", "events/s"), ("4", "exec → first request")]:
            rows.append([tag, name, "n/a", "n/a", "", "n/a"])

    # 5. idle
    idle = results.get("idle")
    if idle:
        secs_ = idle["seconds"]
        quiet = idle["voluntary"] == 0 and not idle["new_threads"] and idle["ce_requests"] == 0 and idle["events"] == 0
        wake = f", next wake {idle['wake_at'][0]}" if idle["wake_at"] else ""
        rows.append(["5a", f"idle wake-ups over {secs_:g} s (voluntary ctx switches, all threads)", f"{idle['voluntary']} ({idle['involuntary']} involuntary, {idle['threads']} threads{wake})", "n/a (a cron job: no process)", "0", verdict(quiet)])
        rows.append(["5b", f"idle CPU over {secs_:g} s (utime+stime; schedstat)", f"{idle['cpu_ticks'] * 1000 // CLK_TCK} ms; {idle['oncpu_ns'] / 1000:.0f} µs on CPU; RSS {mb(idle['rss_bytes'])}", "n/a", "0", verdict(idle["cpu_ticks"] == 0 and idle["oncpu_ns"] == 0)])
    else:
        rows.append(["5", "idle cost", "n/a", "n/a", "0", "n/a"])

    # 6. restart
    rs = results.get("restart")
    if rs:
        rows.append(["6a", f"CE requests: once for a {g:,}-group day", f"{rs['first']} (pages needed: {rs['pages']})", f"{median([r['ce_requests'] for r in day_ref]) if day_ref else 'n/a'}", "= pages", verdict(rs["first"] == rs["pages"])])
        rows.append(["6b", "CE requests: `run` restarted on that state", f"{rs['after_restart']} ({rs['events_after_restart']} events re-sent)", "n/a (no state: pulls again)", "0", verdict(rs["after_restart"] == 0 and rs["events_after_restart"] == 0)])
    else:
        rows.append(["6a/b", "CE requests over a restart", "n/a", "n/a", "", "n/a"])
    it = results.get("interrupted")
    if it:
        rows.append(["6c", "CE requests: SIGTERM mid-delivery, then `run`", f"{it['total']} in all (stopped after {it['delivered_before_stop']:,} events; {it['duplicates']} resent)", "n/a", "= pages", verdict(it["total"] == it["pages"])])
    else:
        rows.append(["6c", "CE requests: SIGTERM mid-delivery, then `run`", "n/a", "n/a", "= pages", "n/a"])

    mode = "SMOKE (1 run, small sizes: figures only, not for comparison)" if smoke else f"medians of {args.runs} runs (min–max)"
    print()
    print(f"source-aws-billing benchmark — {mode}")
    print(f"machine: {machine()}")
    print(f"binary: {os.path.relpath(args.bin, ROOT)}; reference: tests/bench/reference.py (boto3 {module_version('boto3')}, requests {module_version('requests')})")
    print(f"servers: tests/bench/servers.rs — fake Cost Explorer (tests/support, {args.page_size} groups/page) and a Rust std receiver (keep-alive, 204, counts and checks every event), one process, loopback")
    pinning = f"all processes pinned to CPU {max(os.sched_getaffinity(0))}" if args.cpus == "one" else "no CPU pinning"
    print(f"cpus: {pinning} (--cpus all to let the scheduler spread them)")
    hwm = [r["launcher_hwm_bytes"] for r in day_bin + day_ref]
    if hwm:
        print(f"peak RSS: wait4() of a child forked by launch.c, whose own VmHWM is {max(hwm) // 1024} KiB (figures above that are exact)")
    print(f"sizes: {g:,} groups/day; range {args.range_days} days = {n:,} groups; reference range runs: {args.reference_range_runs}; idle window {args.idle_seconds:g} s; MB = 10^6 bytes")
    print()
    print_table(rows)
    print()
    print(f"bench: finished in {time.monotonic() - started:.0f}s")
    if failures:
        print("bench: figures that could not be produced:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        return 1
    return 0


def module_version(name):
    try:
        import importlib.metadata as md

        return md.version(name)
    except Exception:  # noqa: BLE001 - informational only
        return "?"


if __name__ == "__main__":
    sys.exit(main())
