"""The HTTP recipe under load: throughput, latency and CPU per request of each deployment.

Run from the repository root (not collected by pytest)::

    python tests/benchmarks/bench_http.py                          # all five, 20 s each
    python tests/benchmarks/bench_http.py --seconds 5 --only memory-1,postgres-4
    python tests/benchmarks/bench_http.py --clients 16 --json http.json

**Configurations.** ``docs/examples/http_service.py`` served by ``python -m uvicorn --factory
http_service:<factory> --workers N`` on a **Unix socket** in a temporary directory (local
only: nothing listens on a network interface, and there is no free port to find):
``memory-1`` (``demo_app``, in memory, one worker), ``sqlite-1`` and ``sqlite-4``
(``sqlite_app``, a fresh SQLite file, the recipe's ``synchronous=FULL``: one fsync per
change), ``postgres-1`` and ``postgres-4`` (``postgres_app``, a fresh database per
configuration). PostgreSQL is ``--postgres DSN``, else ``$OPD_TEST_POSTGRES_DSN``, else a
throwaway server this script starts with ``initdb`` and ``pg_ctl`` in a temporary
directory (Unix socket only, ``fsync=off``, as the ``postgres`` user when run as root),
as the tests' fixture does; the DSN's user must be allowed to create databases. The day
(``OPD_DAY``) is today's date by the wall clock, so bookings land in the current hour's
slots (a run that crosses midnight leaves the day, and its bookings are refused);
``OPD_DEMO_PLACES`` is large enough that no booking is refused as full. Linux only: the
CPU is read from ``/proc``.

**The standard mix.** ``--clients`` threads (8 by default) in this process, each with its
own keep-alive connection, send requests back to back (a closed loop: each waits for its
answer), chosen at random (seeded) in the proportions of a registration desk and
consulting rooms. The clients use the standard library's ``http.client``: on two cores the
client shares the CPU with the server, and it costs about 0.13 ms of CPU per request
against 0.6-0.7 ms for threads with ``httpx.Client`` and 1.1 ms for ``httpx.AsyncClient``
(measured on the in-memory app), so the clients leave the server most of the machine.

- 40% **book** (``POST /tokens``): 70% ``ONLINE`` (they arrive later), 30% ``WALK_IN``
  (present at once), to doctors D1 to D4 at random, the allocator picking the slot;
- 25% **check-in** (``POST /tokens/{id}/check-in``): the client's oldest ``ONLINE`` token
  not yet checked in (a booking instead when it has none);
- 25% **call-next** (``POST /doctors/{id}/call-next``): one of D1 to D4 at random;
- 10% **cancel** (``POST /tokens/{id}/cancel``): the client's latest booked token not yet
  cancelled (a booking instead when it has none); 409 when it was called meanwhile.

The client needs nothing of the app but these four paths and the ``id`` of a booked
token's JSON. Each configuration runs ``--warmup`` seconds (3 by default: connections
opened, replicas caught up), then ``--seconds`` (20 by default, warm-up and measurement at
most 60 s together) are measured; only requests that began and ended in that window count.

**Measured**, per configuration: requests per second; p50, p95 and p99 latency (as the
client sees it) overall and per endpoint; the count of each status per endpoint (a reader
sees whether 409s dominate); the **app's CPU per request**: the ``utime + stime`` of the
uvicorn process and all its descendants (supervisor and workers) from ``/proc``, after the
window minus before, over the requests; for PostgreSQL the **server's own CPU per
request** (the postmaster and all its children: backends, WAL writer, checkpointer,
autovacuum) when it runs on this machine; the client's CPU per request (this process); how
busy the whole machine was (``/proc/stat``), and how many cores other programs kept busy
meanwhile: on a shared machine the figures of two runs compare only when that is low.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
SOURCE = ROOT / "src"
DOCTORS = ("D1", "D2", "D3", "D4")
ENDPOINTS = ("book", "check-in", "call-next", "cancel")
MIX = (0.40, 0.25, 0.25, 0.10)  # book, check-in, call-next, cancel
ONLINE_SHARE = 0.70  # of bookings; the rest are walk-ins
EXPECTED = {"book": {201}, "check-in": {200}, "call-next": {200, 204}, "cancel": {200, 409}}
PLACES = 100_000  # OPD_DEMO_PLACES: far more than a run books into one hourly slot
MAX_RUN = 60.0  # seconds of warm-up and measurement per configuration, at most
START_TIMEOUT = 60.0
TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Config:
    """One deployment of the recipe."""

    name: str
    backend: str  # memory, sqlite or postgres
    workers: int

    @property
    def factory(self) -> str:
        return {"memory": "demo_app", "sqlite": "sqlite_app", "postgres": "postgres_app"}[
            self.backend
        ]


CONFIGS = (
    Config("memory-1", "memory", 1),
    Config("sqlite-1", "sqlite", 1),
    Config("sqlite-4", "sqlite", 4),
    Config("postgres-1", "postgres", 1),
    Config("postgres-2", "postgres", 2),
    Config("postgres-4", "postgres", 4),
)


@dataclass
class Endpoint:
    """What one endpoint answered in the measured window."""

    requests: int
    statuses: dict[str, int]  # "201": count; "error" for no answer (a failed connection)
    p50_ms: float | None  # None: no request
    p95_ms: float | None  # None: no request
    p99_ms: float | None  # None: no request


@dataclass
class Result:
    """One configuration's measurements (``asdict`` gives the JSON)."""

    config: str
    backend: str
    workers: int
    clients: int
    seconds: float  # the measured window
    requests: int
    requests_per_second: float
    p50_ms: float | None  # None: no request
    p95_ms: float | None  # None: no request
    p99_ms: float | None  # None: no request
    app_cpu_ms_per_request: float  # uvicorn's supervisor and workers
    postgres_cpu_ms_per_request: float | None  # None: not PostgreSQL, or not on this machine
    client_cpu_ms_per_request: float
    machine_busy: float  # of all the machine's cores, 0 to 1, over the window
    other_cores: float  # cores busy with anything else: other programs on the machine
    process_cpu_s: dict[str, float]  # CPU seconds of each app process: "<pid> <role>"
    endpoints: dict[str, Endpoint] = field(default_factory=dict)


# ----------------------------------------------------------------------------- /proc


def _stat(pid: int) -> tuple[int, int] | None:
    """``(parent pid, utime + stime in ticks)`` of a process, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the name may hold spaces and ")"
    return int(fields[1]), int(fields[11]) + int(fields[12])


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def tree_ticks(root: int) -> dict[int, int]:
    """CPU ticks of ``root`` and every descendant of it, by pid."""
    stats = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                stats[int(entry.name)] = stat
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    ticks, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            ticks[pid] = stats[pid][1]
            todo.extend(children.get(pid, ()))
    return ticks


def spent(before: dict[int, int], after: dict[int, int]) -> dict[int, float]:
    """CPU seconds each process spent between two :func:`tree_ticks` (a process that
    started in between counts from zero; one that ended is lost, and none should)."""
    return {pid: (ticks - before.get(pid, 0)) / TICK for pid, ticks in after.items()}


def role(pid: int, server: int) -> str:
    """What an app process is: the server (uvicorn's supervisor when it has workers), a
    worker, or multiprocessing's resource tracker."""
    if pid == server:
        return "server"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "gone"
    return "resource-tracker" if b"resource_tracker" in command else "worker"


def machine_ticks() -> tuple[int, int]:
    """``(busy, total)`` CPU ticks of the whole machine since boot (``/proc/stat``)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


def own_cpu() -> float:
    """CPU seconds of this process, all threads."""
    times = os.times()
    return times.user + times.system


# ----------------------------------------------------------------------------- PostgreSQL


def _bindir() -> Path | None:
    """``initdb``'s directory: ``pg_config --bindir``, else the newest Debian layout, else
    the PATH."""
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if (Path(out.stdout.strip()) / "initdb").exists():
            return Path(out.stdout.strip())
    for bindir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (bindir / "initdb").exists():
            return bindir
    initdb = shutil.which("initdb")
    return None if initdb is None else Path(initdb).parent


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str | None]:
    """A DSN of a new PostgreSQL server on a Unix socket in a temporary directory, stopped
    and removed at the end; None if PostgreSQL is not installed."""
    bindir = _bindir()
    if bindir is None:
        yield None
        return
    base = Path(tempfile.mkdtemp(prefix="opd-bench-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
    data, log = base / "data", base / "log"
    run = functools.partial(subprocess.run, check=True, capture_output=True, text=True, cwd=base)
    try:
        run([*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
             "--no-sync"])  # fmt: skip
        options = f"-k {base} -c listen_addresses='' -c fsync=off"
        run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log),
             "-w", "start"])  # fmt: skip
        yield f"host={base} port=5432 dbname=postgres user=postgres"
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            check=False,
            cwd=base,
        )
        shutil.rmtree(base, ignore_errors=True)


def postmaster(dsn: str) -> tuple[int | None, str]:
    """The pid of the server's postmaster if it runs on this machine (a backend's parent
    process, both named ``postgres``), else None; and the server's ``fsync`` setting."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as db:
        row = db.execute("SELECT pg_backend_pid(), current_setting('fsync')").fetchone()
        assert row is not None
        backend, fsync = int(row[0]), str(row[1])
        stat = _stat(backend)
        if stat is None or _comm(backend) != "postgres" or _comm(stat[0]) != "postgres":
            return None, fsync
        return stat[0], fsync


@contextlib.contextmanager
def fresh_database(dsn: str, name: str) -> Iterator[str]:
    """A new empty database ``name`` on the server of ``dsn``, dropped at the end."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(dsn, dbname=name)
    finally:
        with psycopg.connect(dsn, autocommit=True) as db:
            db.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# ----------------------------------------------------------------------------- the server


class Connection(http.client.HTTPConnection):
    """An HTTP/1.1 keep-alive connection to a server on the Unix socket ``path``."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        super().__init__("opd", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.path))
        except OSError:
            sock.close()
            raise
        self.sock = sock

    def post(self, url: str, body: dict[str, str] | None = None) -> tuple[int, bytes]:
        """POST ``body`` as JSON (none: an empty body); the status and the body read."""
        data = b"" if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"} if body is not None else {}
        try:
            self.request("POST", url, body=data, headers=headers)
            response = self.getresponse()
            return response.status, response.read()
        except BaseException:
            self.close()  # the next request opens a new connection
            raise


def _answers(path: Path) -> bool:
    """Whether a server answers HTTP on the Unix socket ``path`` (any status will do)."""
    connection = Connection(path, timeout=5)
    try:
        connection.request("GET", "/")
        connection.getresponse().read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    return True


@contextlib.contextmanager
def uvicorn(config: Config, env: dict[str, str], base: Path) -> Iterator[tuple[Path, int]]:
    """The recipe served by uvicorn on a Unix socket under ``base``; yields the socket's
    path and the server's pid once every worker has started its app."""
    path, log_path = base / "opd.sock", base / "uvicorn.log"
    command = [
        sys.executable, "-m", "uvicorn", "--factory", f"http_service:{config.factory}",
        "--workers", str(config.workers), "--uds", str(path), "--app-dir", str(EXAMPLES),
        "--log-level", "info", "--no-access-log",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:  # each worker logs it once its factory has built the app
            started = log_path.read_text(errors="replace").count("Application startup complete")
            if started >= config.workers and _answers(path):
                break
            if server.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"uvicorn did not start ({config.name}):\n{tail}")
            time.sleep(0.1)
        yield path, server.pid
    finally:
        family = list(tree_ticks(server.pid))
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            for pid in family:  # the workers too: they are this script's descendants
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            server.wait()


# ----------------------------------------------------------------------------- the clients

Record = tuple[str, str, float, float]  # endpoint, status, began, ended (perf_counter)


class Desk:
    """One client: a keep-alive connection sending the standard mix, back to back."""

    def __init__(self, path: Path, number: int, seed: int) -> None:
        self.connection = Connection(path)
        self.rng = random.Random(seed * 1_000 + number)
        self.prefix = f"c{number}-{seed}-"
        self.booked: list[str] = []  # not cancelled, latest last
        self.arriving: deque[str] = deque()  # booked ONLINE, not checked in, oldest first
        self.cancelled: set[str] = set()
        self.count = 0  # bookings sent: each is a new patient
        self.records: list[Record] = []
        self.failure: BaseException | None = None  # what stopped this client early

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                self.one()
        except BaseException as failure:  # an answer it cannot read: reported by _drive
            self.failure = failure
        finally:
            self.connection.close()

    def one(self) -> None:
        endpoint = self.rng.choices(ENDPOINTS, MIX)[0]
        while self.arriving and self.arriving[0] in self.cancelled:
            self.cancelled.discard(self.arriving.popleft())
        if (endpoint == "check-in" and not self.arriving) or (
            endpoint == "cancel" and not self.booked
        ):
            endpoint = "book"
        source = "ONLINE" if self.rng.random() < ONLINE_SHARE else "WALK_IN"
        url, body = self.request(endpoint, source)
        began = time.perf_counter()
        try:
            status, data = self.connection.post(url, body)
        except (OSError, http.client.HTTPException):
            self.records.append((endpoint, "error", began, time.perf_counter()))
            return
        self.records.append((endpoint, str(status), began, time.perf_counter()))
        if endpoint == "book" and status == 201:
            token_id = str(json.loads(data)["id"])
            self.booked.append(token_id)
            if source == "ONLINE":
                self.arriving.append(token_id)

    def request(self, endpoint: str, source: str) -> tuple[str, dict[str, str] | None]:
        """The path and body of a request of ``endpoint`` (``source``: of a booking)."""
        if endpoint == "book":
            self.count += 1
            patient = f"{self.prefix}{self.count}"
            return "/tokens", {
                "patient_id": patient,
                "doctor_id": self.rng.choice(DOCTORS),
                "source": source,
            }
        if endpoint == "check-in":
            return f"/tokens/{self.arriving.popleft()}/check-in", None
        if endpoint == "call-next":
            return f"/doctors/{self.rng.choice(DOCTORS)}/call-next", None
        token_id = self.booked.pop()
        self.cancelled.add(token_id)
        return f"/tokens/{token_id}/cancel", None


# ----------------------------------------------------------------------------- one run


Percentiles = tuple[float | None, float | None, float | None]


def percentiles(latencies: Sequence[float]) -> Percentiles:
    """p50, p95, p99 (nearest rank) of ``latencies`` in seconds, as milliseconds; None
    without any."""
    if not latencies:
        return None, None, None
    ordered = sorted(latencies)

    def rank(p: int) -> float:
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1e3

    return rank(50), rank(95), rank(99)


def measure(
    config: Config,
    *,
    seconds: float = 20.0,
    warmup: float = 3.0,
    clients: int = 8,
    postgres: str | None = None,
    seed: int = 1,
) -> Result:
    """Serve ``config``, drive it with the standard mix, and measure ``seconds`` after
    ``warmup``. ``postgres`` is a DSN of a server on which to create a fresh database
    (required for the PostgreSQL configurations)."""
    if not (seconds > 0 and warmup >= 0 and seconds + warmup <= MAX_RUN):
        raise ValueError(f"warm-up and measurement must take at most {MAX_RUN:g} s together")
    env = {k: v for k, v in os.environ.items() if k not in ("OPD_WORKERS", "WEB_CONCURRENCY")}
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(SOURCE), env.get("PYTHONPATH")])),
        OPD_DAY=date.today().isoformat(),  # wall clock: bookings land in this hour's slots
        OPD_DEMO_PLACES=str(PLACES),
    )
    with contextlib.ExitStack() as stack:
        base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="opd-bench-")))
        server_pid: int | None = None
        if config.backend == "sqlite":
            env["OPD_SQLITE_PATH"] = str(base / "opd.sqlite3")
        elif config.backend == "postgres":
            if postgres is None:
                raise ValueError(f"{config.name} needs a PostgreSQL DSN")
            name = f"opd_bench_{os.getpid()}_{config.name.replace('-', '_')}"
            env["OPD_POSTGRES_DSN"] = stack.enter_context(fresh_database(postgres, name))
            server_pid = postmaster(postgres)[0]
        path, app_pid = stack.enter_context(uvicorn(config, env, base))
        return _drive(config, path, app_pid, server_pid, seconds, warmup, clients, seed)


def _drive(
    config: Config,
    path: Path,
    app_pid: int,
    server_pid: int | None,
    seconds: float,
    warmup: float,
    clients: int,
    seed: int,
) -> Result:
    desks = [Desk(path, number, seed) for number in range(clients)]
    stop = threading.Event()
    threads = [threading.Thread(target=desk.run, args=(stop,), daemon=True) for desk in desks]
    for thread in threads:
        thread.start()
    try:
        time.sleep(warmup)
        began = time.perf_counter()
        app0, machine0, own0 = tree_ticks(app_pid), machine_ticks(), own_cpu()
        db0 = {} if server_pid is None else tree_ticks(server_pid)
        time.sleep(seconds)
        app1, machine1, own1 = tree_ticks(app_pid), machine_ticks(), own_cpu()
        db1 = {} if server_pid is None else tree_ticks(server_pid)
        ended = time.perf_counter()
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    for desk in desks:
        if desk.failure is not None:
            raise RuntimeError(f"a client failed on {config.name}") from desk.failure
    records = [r for desk in desks for r in desk.records if r[2] >= began and r[3] <= ended]
    window = ended - began
    n = max(1, len(records))
    app_cpu = spent(app0, app1)
    endpoints = {}
    for endpoint in ENDPOINTS:
        mine = [r for r in records if r[0] == endpoint]
        statuses = dict(sorted(Counter(r[1] for r in mine).items()))
        endpoints[endpoint] = Endpoint(
            len(mine), statuses, *percentiles([r[3] - r[2] for r in mine])
        )
    p50, p95, p99 = percentiles([r[3] - r[2] for r in records])
    busy = (machine1[0] - machine0[0]) / max(1, machine1[1] - machine0[1])
    db_cpu = None if server_pid is None else sum(spent(db0, db1).values())
    ours = sum(app_cpu.values()) + (db_cpu or 0.0) + (own1 - own0)
    other = (machine1[0] - machine0[0]) / TICK - ours
    return Result(
        config=config.name,
        backend=config.backend,
        workers=config.workers,
        clients=clients,
        seconds=window,
        requests=len(records),
        requests_per_second=len(records) / window,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        app_cpu_ms_per_request=sum(app_cpu.values()) / n * 1e3,
        postgres_cpu_ms_per_request=None if db_cpu is None else db_cpu / n * 1e3,
        client_cpu_ms_per_request=(own1 - own0) / n * 1e3,
        machine_busy=busy,
        other_cores=max(0.0, other / window),
        process_cpu_s={
            f"{pid} {role(pid, app_pid)}": round(cpu, 2) for pid, cpu in sorted(app_cpu.items())
        },
        endpoints=endpoints,
    )


# ----------------------------------------------------------------------------- the report


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def report(results: Sequence[Result]) -> None:
    """Print the results as tables."""
    print(
        f"  {'config':<12}{'req/s':>8}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}"
        f"{'app CPU':>9}{'PG CPU':>8}{'client':>8}{'busy':>6}{'other':>7}{'app/mem':>9}"
    )
    memory = next((r for r in results if r.config == "memory-1"), None)
    for r in results:
        ratio = "-"
        if memory is not None and memory.app_cpu_ms_per_request > 0:
            ratio = f"{r.app_cpu_ms_per_request / memory.app_cpu_ms_per_request:.2f}x"
        print(
            f"  {r.config:<12}{r.requests_per_second:>8.0f}{_ms(r.p50_ms):>8}{_ms(r.p95_ms):>8}"
            f"{_ms(r.p99_ms):>8}{_ms(r.app_cpu_ms_per_request):>9}"
            f"{_ms(r.postgres_cpu_ms_per_request):>8}{_ms(r.client_cpu_ms_per_request):>8}"
            f"{r.machine_busy:>6.0%}{r.other_cores:>7.2f}{ratio:>9}"
        )
    print(
        "  (app CPU, PG CPU, client: ms of CPU per request of uvicorn and its workers, of the"
        " PostgreSQL server,\n   of these clients; busy: the whole machine, all cores; other:"
        " cores busy with other programs;\n   app/mem: app CPU per request / memory-1's)"
    )
    print(f"\n  {'config':<12}{'endpoint':<11}{'requests':>9}{'p50 ms':>8}{'p95 ms':>8}", end="")
    print(f"{'p99 ms':>8}  statuses")
    for r in results:
        for name, e in r.endpoints.items():
            statuses = " ".join(f"{code}:{count}" for code, count in e.statuses.items())
            print(
                f"  {r.config:<12}{name:<11}{e.requests:>9}{_ms(e.p50_ms):>8}{_ms(e.p95_ms):>8}"
                f"{_ms(e.p99_ms):>8}  {statuses}"
            )
        if r.workers > 1:
            split = ", ".join(
                f"{name.partition(' ')[2]} {cpu:.1f}" for name, cpu in r.process_cpu_s.items()
            )
            print(f"  {r.config:<12}CPU s by app process: {split}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured, per config")
    parser.add_argument("--warmup", type=float, default=3.0, help="before each measurement")
    parser.add_argument("--clients", type=int, default=8)
    names = ",".join(c.name for c in CONFIGS)
    parser.add_argument("--only", default=names, help=f"a comma-separated subset of {names}")
    parser.add_argument("--postgres", metavar="DSN", help="default: $OPD_TEST_POSTGRES_DSN")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()
    if args.seconds <= 0 or args.warmup < 0 or args.seconds + args.warmup > MAX_RUN:
        parser.error(f"--seconds plus --warmup must be at most {MAX_RUN:g}")
    by_name = {c.name: c for c in CONFIGS}
    unknown = [name for name in args.only.split(",") if name not in by_name]
    if unknown:
        parser.error(f"unknown configuration {', '.join(unknown)}; choose from {names}")
    configs = [by_name[name] for name in args.only.split(",")]
    with contextlib.ExitStack() as stack:
        dsn = args.postgres or os.environ.get("OPD_TEST_POSTGRES_DSN")
        if dsn is None and any(c.backend == "postgres" for c in configs):
            dsn = stack.enter_context(throwaway_postgres())
            if dsn is None:
                print("no PostgreSQL (set --postgres or install it): its configurations skipped")
                configs = [c for c in configs if c.backend != "postgres"]
        fsync = "" if dsn is None else f", PostgreSQL fsync={postmaster(dsn)[1]}"
        print(
            f"The HTTP recipe under the standard mix: {args.clients} clients on a Unix socket,"
            f" {args.seconds:g} s measured after {args.warmup:g} s warm-up,"
            f" {os.cpu_count()} CPUs{fsync}"
        )
        results = []
        for config in configs:
            result = measure(
                config,
                seconds=args.seconds,
                warmup=args.warmup,
                clients=args.clients,
                postgres=dsn,
            )
            results.append(result)
            print(f"  {config.name}: {result.requests_per_second:.0f} requests/s", flush=True)
    print()
    report(results)
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")


if __name__ == "__main__":
    main()
