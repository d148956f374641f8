"""Load test of the rating app: concurrent simulated raters over real HTTP on 127.0.0.1.

Starts ``tidekit rate serve`` in a subprocess on a fresh study, then runs ``--raters`` concurrent
raters (each a keep-alive connection doing consent, demographics, then GET item / POST rating
until done, after which a new rater takes its place) until ``--submissions`` ratings are
acknowledged or ``--time-limit`` seconds pass. A few forms are posted twice on purpose. With
``--kill-after S`` the server is SIGKILLed once after S seconds of load and restarted on the same
database; raters reconnect and resume with their session cookies. Finally the database is read
directly: every acknowledged rating (a 303 answer to its POST) must be there with the values
sent, and no assignment may hold two ratings.

With ``--baseline GIT_REF`` the same load also runs against the server *and* study-building code
of ``GIT_REF`` (its ``src/``, extracted with ``git archive`` onto ``PYTHONPATH``), alternating
before/after for ``--rounds`` pairs, and the after/before ratios of throughput and server CPU
come from that one run. Every rater comes from 127.0.0.1, so the per-address limits are lifted.

Loopback only, bounded in count and time. Run (about a minute on 2 cores)::

    python benchmarks/rating_load.py                       # SQLite, 50 raters, >= 5,000 submissions
    python benchmarks/rating_load.py --kill-after 5        # the same, SIGKILL + restart mid-load
    python benchmarks/rating_load.py --db postgresql://postgres@127.0.0.1:5432/bench
    python benchmarks/rating_load.py --append-docs         # add the figures to docs/benchmarks.md
    python benchmarks/rating_load.py --baseline HEAD~3     # before (HEAD~3's src/) and after, alternating

Prints one JSON object (figures, checks); exit status 1 if a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import platform
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
ANSWERS = ("empathy", "emotion_recognition", "distress_normalization", "supportive_reflection")
_FIELD = re.compile(r'name="(csrf|assignment_id)" value="([^"]*)"')
_ASK = re.compile(r"please choose (\d) for every rating")


class Down(Exception):
    """The server is not answering (killed, restarting)."""


@dataclass
class Stats:
    acknowledged: dict[int, dict[str, int]] = field(default_factory=dict)  # assignment -> values
    in_flight_lost: set[int] = field(default_factory=set)  # posted, no answer (server killed)
    latencies: list[float] = field(default_factory=list)  # seconds, rating POSTs
    doubles: int = 0
    raters_done: int = 0
    errors: list[str] = field(default_factory=list)
    reconnects: int = 0


class Conn:
    """A minimal HTTP/1.1 keep-alive client with a cookie jar (cheap enough to share 2 cores)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.cookies: dict[str, str] = {}
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def request(self, method: str, path: str, form: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            body = urlencode(form).encode() if form is not None else b""
            head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
            if self.cookies:
                head.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
            if form is not None:
                head += ["Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(body)}"]
            assert self.writer is not None and self.reader is not None
            self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            status_line = await self.reader.readline()
            if not status_line:
                raise ConnectionResetError("closed")
            status = int(status_line.split()[1])
            headers: dict[str, str] = {}
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                name, value = name.strip().lower(), value.strip()
                if name == "set-cookie":
                    cookie, _, attrs = value.partition(";")
                    key, _, val = cookie.partition("=")
                    if "max-age=0" in attrs.lower() or 'expires=thu, 01 jan 1970' in attrs.lower():
                        self.cookies.pop(key, None)
                    else:
                        self.cookies[key] = val.strip('"')
                else:
                    headers[name] = value
            data = await self.reader.readexactly(int(headers.get("content-length", "0")))
            if headers.get("connection", "").lower() == "close":
                await self.close()
            return status, headers, data.decode("utf-8")
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            await self.close()
            raise Down(str(exc)) from None


def fields(page: str) -> dict[str, str]:
    import html

    return {k: html.unescape(v) for k, v in _FIELD.findall(page)}


async def retrying(conn: Conn, method: str, path: str, form: dict[str, str] | None, deadline: float,
                   stats: Stats) -> tuple[int, dict[str, str], str]:
    """Requests that are safe to repeat (GETs; consent/demographics), retried while the server restarts."""
    while True:
        try:
            return await conn.request(method, path, form)
        except Down:
            stats.reconnects += 1
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def rater(host: str, port: int, stats: Stats, stop: asyncio.Event, deadline: float, target: int,
                double_rate: float, rng: random.Random) -> None:
    while not stop.is_set():
        conn = Conn(host, port)
        try:
            _, _, page = await retrying(conn, "GET", "/", None, deadline, stats)
            status, _, _ = await retrying(conn, "POST", "/consent", {"csrf": fields(page)["csrf"], "decision": "agree",
                                                                       "confirm": "yes"}, deadline, stats)
            if status == 200:  # the study is full
                stop.set()
                return
            _, _, page = await retrying(conn, "GET", "/demographics", None, deadline, stats)
            demo = {"age_group": rng.choice(["25-34", "55-64"]), "gender": "prefer_not_to_say",
                    "education": "graduate", "race_ethnicity": "prefer_not_to_say", "mh_support_experience": "none"}
            await retrying(conn, "POST", "/demographics", {"csrf": fields(page)["csrf"], **demo}, deadline, stats)
            while not stop.is_set():
                status, _headers, page = await retrying(conn, "GET", "/rate", None, deadline, stats)
                if status == 303:
                    stats.raters_done += 1
                    break
                f = fields(page)
                ask = _ASK.search(page)
                values = {k: int(ask.group(1)) if ask else rng.randint(1, 7) for k in ANSWERS}
                form = {"csrf": f["csrf"], "assignment_id": f["assignment_id"], **{k: str(v) for k, v in values.items()}}
                aid = int(f["assignment_id"])
                for attempt in range(2 if rng.random() < double_rate else 1):
                    t0 = time.perf_counter()
                    try:
                        status, _, _ = await conn.request("POST", "/rate", form)
                    except Down:
                        stats.in_flight_lost.add(aid)  # unacknowledged: may or may not be stored
                        break
                    if status != 303:
                        stats.errors.append(f"POST /rate answered {status}")
                        stop.set()
                        return
                    if attempt == 0:
                        stats.latencies.append(time.perf_counter() - t0)
                        stats.acknowledged[aid] = values
                    else:
                        stats.doubles += 1
                if len(stats.acknowledged) >= target or time.monotonic() > deadline:
                    stop.set()
        except Down as exc:
            stats.errors.append(f"server gone for good: {exc}")
            stop.set()
        finally:
            await conn.close()


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc)."""
    try:
        fields_ = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields_[11]) + int(fields_[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@functools.cache
def has_serve_knob(name: str, env: tuple[tuple[str, str], ...]) -> bool:
    """Whether the tidekit that ``env`` runs has the serving knob ``name``."""
    code = f"from tidekit.rating import RatingServeConfig; print({name!r} in RatingServeConfig.model_fields)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, **dict(env)}).stdout
    return out.strip() == "True"


def start_server(db: str, port: int, workers_env: dict[str, str]) -> subprocess.Popen[bytes]:
    # every simulated rater comes from 127.0.0.1: lift the per-address limits (where the code has them)
    knobs = ["submit_rate=100000", "submit_burst=100000", "join_rate=100000", "join_burst=100000"]
    if has_serve_knob("max_unfinished_per_client", tuple(sorted(workers_env.items()))):
        knobs.append("max_unfinished_per_client=100000")
    cmd = [sys.executable, "-m", "tidekit", "rate", "serve", "--db", db, "--host", "127.0.0.1", "--port", str(port),
           *knobs]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **workers_env})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server failed: {proc.stderr.read().decode() if proc.stderr else ''}")
        with socket.socket() as s, contextlib.suppress(OSError):
            s.settimeout(2.0)  # a restart under load answers, but not at once
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if s.recv(64).startswith(b"HTTP/1.1 200"):
                return proc
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("server did not start within 30 s")


def build_study(db: str, raters_needed: int, items_per_rater: int, seed: int) -> dict[str, Any]:
    from tidekit.data import GenerationRecord, load_dataset, sample_path
    from tidekit.rating import RatingStudyConfig, create_study

    ds = load_dataset(sample_path())
    systems = ["smollm2-135m:zero_shot", "smollm2-135m:fine_tuned", "qwen2.5-0.5b:zero_shot", "qwen2.5-0.5b:fine_tuned"]
    gens = [GenerationRecord(conversation_id=c.id, system=s, model=s.split(":")[0], condition=s.split(":")[1],  # type: ignore[arg-type]
                             output=f"It sounds really hard ({s}). You are not alone in feeling this way.")
            for c in ds.conversations for s in systems]
    n_items = len(ds.conversations) * (len(systems) + 1)
    k = max(1, -(-raters_needed * items_per_rater // n_items))
    cfg = RatingStudyConfig(items_per_rater=items_per_rater, ratings_per_item=k, attention_checks=2, seed=seed)
    return create_study(cfg, ds, gens, db=db).model_dump()


def verify(db: str, stats: Stats) -> dict[str, Any]:
    import sqlalchemy as sa

    from tidekit.rating import RatingStore
    from tidekit.rating import _schema as t

    store = RatingStore.open(db)
    try:
        with store.read() as conn:
            rows = conn.execute(sa.select(t.ratings.c.assignment_id, *(getattr(t.ratings.c, k) for k in ANSWERS))).all()
    finally:
        store.close()
    stored: dict[int, dict[str, int]] = {}
    duplicated = 0
    for r in rows:
        duplicated += r.assignment_id in stored
        stored[r.assignment_id] = {k: getattr(r, k) for k in ANSWERS}
    lost = [a for a in stats.acknowledged if a not in stored]
    wrong = [a for a, v in stats.acknowledged.items() if a in stored and stored[a] != v]
    unexplained = [a for a in stored if a not in stats.acknowledged and a not in stats.in_flight_lost]
    return {"stored": len(rows), "lost": len(lost), "wrong_values": len(wrong), "duplicated": duplicated,
            "unexplained_rows": len(unexplained),
            "in_flight_at_kill_stored": sum(1 for a in stats.in_flight_lost if a in stored and a not in stats.acknowledged),
            "in_flight_at_kill": len(stats.in_flight_lost - set(stats.acknowledged))}


async def load(port: int, args: argparse.Namespace, stats: Stats, kill: Any) -> float:
    stop = asyncio.Event()
    deadline = time.monotonic() + args.time_limit
    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(rater("127.0.0.1", port, stats, stop, deadline, args.submissions, args.double_rate,
                                       random.Random(rng.random()))) for _ in range(args.raters)]
    if args.kill_after is not None:
        tasks.append(asyncio.create_task(kill(stop)))
    await asyncio.gather(*tasks)
    return time.perf_counter() - t0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", help="Study database URL (default: a fresh SQLite file in a temp dir).")
    ap.add_argument("--raters", type=int, default=50, help="Concurrent raters.")
    ap.add_argument("--submissions", type=int, default=5000, help="Stop after this many acknowledged ratings.")
    ap.add_argument("--items-per-rater", type=int, default=20)
    ap.add_argument("--time-limit", type=float, default=180.0, help="Hard bound on the load phase, seconds.")
    ap.add_argument("--double-rate", type=float, default=0.05, help="Share of forms posted twice.")
    ap.add_argument("--kill-after", type=float, default=None, help="SIGKILL the server after this many seconds of load (and at least one acknowledged rating), then restart it.")
    ap.add_argument("--attach", type=int, default=None, help="Load a server already running on 127.0.0.1:PORT over --db (study made by you; for profiling).")
    ap.add_argument("--baseline", metavar="GIT_REF", default=None,
                    help="Also run the server (and build the study) from the src/ of GIT_REF, alternating with the "
                         "working tree, and report after/before ratios measured in this one run.")
    ap.add_argument("--rounds", type=int, default=2, help="With --baseline: before/after pairs to run (alternating).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="Also write the result here.")
    ap.add_argument("--append-docs", action="store_true", help="Append the figures to docs/benchmarks.md.")
    ap.add_argument("--build-only", metavar="DB", default=None, help=argparse.SUPPRESS)  # used by --baseline
    return ap.parse_args(argv)


def code_env(ref: str | None, into: Path) -> dict[str, str]:
    """Environment that runs tidekit from ``ref``'s src/ (extracted with git archive) or, with
    None, from the working tree."""
    if ref is None:
        return {}
    src = into / "src"
    src.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "src"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    env = {"PYTHONPATH": str(src)}
    where = subprocess.run([sys.executable, "-c", "import tidekit; print(tidekit.__file__)"], capture_output=True,
                           text=True, check=True, env={**os.environ, **env}).stdout.strip()
    if not where.startswith(str(src)):
        raise SystemExit(f"--baseline: tidekit imports from {where}, not from {src}")
    return env


def run_once(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    """One load run against a server started with ``env`` (which tidekit code it runs)."""
    tmp = tempfile.TemporaryDirectory(prefix="tidekit-load-")
    db = args.db or str(Path(tmp.name) / "ratings.db")
    per_rater = args.items_per_rater + 2
    if args.attach is None:
        needed = -(-args.submissions // per_rater) + args.raters + 5
        subprocess.run([sys.executable, __file__, "--build-only", db, "--raters", str(needed),
                        "--items-per-rater", str(args.items_per_rater), "--seed", str(args.seed)],
                       check=True, env={**os.environ, **env}, stdout=subprocess.DEVNULL)
        summary: dict[str, Any] = {"items": None}
        port = free_port()
        server = {"proc": start_server(db, port, env)}
    else:
        summary, port = {"items": None}, args.attach
        server = {"proc": subprocess.Popen(["sleep", "3600"])}
    stats = Stats()
    kill_info: dict[str, float] = {}

    async def kill(stop: asyncio.Event) -> None:
        await asyncio.sleep(args.kill_after)
        while not stats.acknowledged and not stop.is_set():  # a busy machine may need longer to get going
            await asyncio.sleep(0.05)
        if stop.is_set():
            return
        kill_info["acknowledged_before_kill"] = len(stats.acknowledged)
        cpu["server"] += proc_cpu_s(server["proc"].pid) - cpu.pop("server_start", 0.0)
        os.kill(server["proc"].pid, signal.SIGKILL)
        server["proc"].wait()
        t0 = time.perf_counter()
        server["proc"] = await asyncio.to_thread(start_server, db, port, env)
        kill_info["restart_s"] = round(time.perf_counter() - t0, 2)

    import resource

    cpu = {"server": 0.0, "server_start": proc_cpu_s(server["proc"].pid)}
    client0 = resource.getrusage(resource.RUSAGE_SELF)
    try:
        wall = asyncio.run(load(port, args, stats, kill))
        cpu["server"] += proc_cpu_s(server["proc"].pid) - cpu.pop("server_start", 0.0)
        client1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu["client"] = (client1.ru_utime + client1.ru_stime) - (client0.ru_utime + client0.ru_stime)
    finally:
        server["proc"].terminate()
        try:
            server["proc"].wait(10)
        except subprocess.TimeoutExpired:
            server["proc"].kill()
    checks = verify(db, stats)
    if args.attach is None:
        from tidekit.rating import RatingStore

        store = RatingStore.open(db)
        try:
            summary["items"] = len(store.counts()["per_item"])
        finally:
            store.close()
    lat = sorted(stats.latencies)

    def pct(p: float) -> float:
        return round(1000 * lat[min(len(lat) - 1, int(p * len(lat)))], 1) if lat else float("nan")

    backend = "postgresql" if db.startswith("postgres") else "sqlite"
    result = {
        "backend": backend, "raters_concurrent": args.raters, "raters_finished": stats.raters_done,
        "acknowledged": len(stats.acknowledged), "double_posts": stats.doubles, "wall_s": round(wall, 2),
        "submissions_per_s": round(len(stats.acknowledged) / wall, 1), "p50_ms": pct(0.50), "p99_ms": pct(0.99),
        "server_cpu_ms_per_submission": round(1000 * cpu["server"] / max(1, len(stats.acknowledged)), 2),
        "client_cpu_ms_per_submission": round(1000 * cpu["client"] / max(1, len(stats.acknowledged)), 2),
        "load_average_1m": round(os.getloadavg()[0], 1),
        "killed": bool(kill_info), **kill_info, "reconnects": stats.reconnects, "errors": stats.errors[:5],
        **checks, "study_items": summary["items"], "cores_usable": len(os.sched_getaffinity(0)),
        "machine": f"{platform.system()} {platform.machine()}, {len(os.sched_getaffinity(0))} usable of "
                   f"{os.cpu_count()} cores, Python {platform.python_version()}",
    }
    result["ok"] = (checks["lost"] == 0 and checks["duplicated"] == 0 and checks["wrong_values"] == 0
                    and checks["unexplained_rows"] == 0 and not stats.errors)
    tmp.cleanup()
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.build_only:
        build_study(args.build_only, raters_needed=args.raters, items_per_rater=args.items_per_rater, seed=args.seed)
        return 0
    if args.baseline is None:
        result = run_once(args, {})
    else:
        if args.db or args.attach is not None:
            raise SystemExit("--baseline makes its own SQLite studies; leave out --db and --attach")
        base_dir = tempfile.TemporaryDirectory(prefix="tidekit-baseline-")
        before_env = code_env(args.baseline, Path(base_dir.name))
        runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
        for n in range(args.rounds):  # alternate, so a change in machine load hits both sides
            order = (("before", before_env), ("after", {})) if n % 2 == 0 else (("after", {}), ("before", before_env))
            for label, env in order:
                runs[label].append(run_once(args, env))
                print(f"round {n + 1} {label}: {runs[label][-1]['submissions_per_s']} submissions/s, "
                      f"{runs[label][-1]['server_cpu_ms_per_submission']} server CPU ms/submission", file=sys.stderr)
        base_dir.cleanup()

        def total(label: str, key: str) -> float:
            return sum(r[key] for r in runs[label])

        def rate(label: str) -> float:
            return total(label, "acknowledged") / total(label, "wall_s")

        def cpu(label: str) -> float:
            return sum(r["server_cpu_ms_per_submission"] * r["acknowledged"] for r in runs[label]) / total(label, "acknowledged")

        # each round's before and after ran back to back, under about the same machine load: the
        # median of the per-round ratios is the least noisy figure on a shared machine
        pair_tput = [a["submissions_per_s"] / b["submissions_per_s"] for a, b in zip(runs["after"], runs["before"], strict=True)]
        pair_cpu = [a["server_cpu_ms_per_submission"] / b["server_cpu_ms_per_submission"]
                    for a, b in zip(runs["after"], runs["before"], strict=True)]
        result = {**runs["after"][-1], "baseline": args.baseline, "rounds": args.rounds,
                  "submissions_per_s": round(rate("after"), 1), "before_submissions_per_s": round(rate("before"), 1),
                  "throughput_ratio": round(statistics.median(pair_tput), 3),
                  "throughput_ratio_of_totals": round(rate("after") / rate("before"), 3),
                  "throughput_ratio_per_round": [round(x, 3) for x in pair_tput],
                  "server_cpu_ratio_per_round": [round(x, 3) for x in pair_cpu],
                  "server_cpu_ms_per_submission": round(cpu("after"), 2),
                  "before_server_cpu_ms_per_submission": round(cpu("before"), 2),
                  "server_cpu_ratio": round(cpu("after") / cpu("before"), 3),
                  "acknowledged": int(total("after", "acknowledged")),
                  "lost": int(total("after", "lost")), "duplicated": int(total("after", "duplicated")),
                  "before_lost": int(total("before", "lost")), "before_duplicated": int(total("before", "duplicated")),
                  "ok": all(r["ok"] for rs in runs.values() for r in rs), "runs": runs}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.append_docs:
        append_docs(result, argv if argv is not None else sys.argv[1:])
    return 0 if result["ok"] else 1


SECTION = "## Rating app under load (`benchmarks/rating_load.py`)"
TABLE_HEAD = ("| date | command | backend | concurrent raters | acknowledged | submissions/s | p50 ms | p99 ms | "
              "server CPU ms/submission | SIGKILL + restart | lost / duplicated | machine |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|---|\n")


def append_docs(r: dict[str, Any], argv: list[str]) -> None:
    """Add a row to this benchmark's table in docs/benchmarks.md (the section is made if missing)."""
    path = ROOT / "docs" / "benchmarks.md"
    cmd = "python benchmarks/rating_load.py " + " ".join(a for a in argv if a != "--append-docs")
    tput, cpu = f"{r['submissions_per_s']}", f"{r['server_cpu_ms_per_submission']}"
    if "baseline" in r:  # an A/B run: after vs before, with the ratios measured in it
        tput = (f"{tput} after vs {r['before_submissions_per_s']} before: ratio {r['throughput_ratio']} (median of "
                f"{r['rounds']} back-to-back pairs; {r['throughput_ratio_of_totals']} of totals)")
        cpu = f"{cpu} vs {r['before_server_cpu_ms_per_submission']} (ratio {r['server_cpu_ratio']})"
    row = (f"| {time.strftime('%Y-%m-%d')} | `{cmd.strip()}` | {r['backend']} | {r['raters_concurrent']} | "
           f"{r['acknowledged']} | {tput} | {r['p50_ms']} | {r['p99_ms']} | {cpu} | "
           f"{'yes, restart ' + str(r.get('restart_s')) + ' s' if r['killed'] else 'no'} | "
           f"{r['lost']} / {r['duplicated']} | {r['machine']}, load avg {r['load_average_1m']} |\n")
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True) if path.exists() else ["# Benchmarks\n"]
    if not any(line.strip() == SECTION for line in lines):
        lines += ["\n", SECTION + "\n", "\n", *TABLE_HEAD.splitlines(keepends=True)]
    at = next(i for i, line in enumerate(lines) if line.strip() == SECTION)
    end = at + 1
    while end < len(lines) and not lines[end].startswith("## "):
        end += 1
    last_row = max(i for i in range(at, end) if lines[i].startswith("|"))
    lines.insert(last_row + 1, row)
    path.write_text("".join(lines), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
