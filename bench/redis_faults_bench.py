"""Redis-fault benchmark: a batch on real ``python worker.py`` processes while the operator drops
every client connection (``CLIENT KILL TYPE normal``) and restarts Redis (AOF, same port),
then a ``kill -9`` of a busy worker.

    python bench/redis_faults_bench.py [--lines 20000] [--workers 2] [--kills 10] [--restarts 2]

Provider: the Cohere wire server from the tests (every query is unique, so the server's log
says how often each line was paid for).  Prints the figures: lines, connection drops, restarts,
outcomes by code, lines asked twice, worker exits, and the seconds a killed worker's lines
waited before running again (default heartbeat settings).  Exits 1 when a line is missing,
duplicated, failed, or a worker died.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import cast

import redis as sync_redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jobs.settings import RunnerSettings  # noqa: E402
from tests.integration.test_redis_faults import RestartableRedis, fault_env, patient_probe  # noqa: E402
from tests.integration.test_workers import cohere_lines, enqueue  # noqa: E402
from tests.process_tools import SlowCohereServer, Workers, export_batch, start_verbose_worker  # noqa: E402
from tests.support import wait_until, write_dataset  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kills", type=int, default=10, help="CLIENT KILL rounds, spread over the batch")
    parser.add_argument("--restarts", type=int, default=2, help="Redis restarts (2 s down), spread over it")
    parser.add_argument("--delay", type=float, default=0.02, help="provider latency, seconds")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, SlowCohereServer("bench-key", args.delay) as server:
        work = Path(tmp)
        (work / "redis").mkdir()
        redis_server = RestartableRedis(work / "redis")
        redis_server.start()
        url = redis_server.url
        pool = Workers(work)
        try:
            lines = cohere_lines(args.lines)
            path = write_dataset(work / "bench.jsonl", lines)
            env = fault_env(url, server, RR_MAX_JOBS="16")
            for name in ("RR_HEARTBEAT_SECONDS", "RR_WORKER_TTL_SECONDS"):
                del env[name]  # the defaults: the recovery figure is the documented one
            env["COHERE_API_KEY"] = "bench-key"
            enqueue(url, path, "bench")
            started = time.monotonic()
            workers = [start_verbose_worker(pool, env) for _ in range(args.workers)]
            probe = patient_probe(url)
            events = sorted(
                [(n / (args.kills + 1), "kill") for n in range(1, args.kills + 1)]
                + [(n / (args.restarts + 1) + 0.03, "restart") for n in range(1, args.restarts + 1)]
            )
            dropped = restarts = 0
            killer = sync_redis.Redis.from_url(url)
            for fraction, event in events:
                wait_until(lambda f=fraction: probe.done("bench") >= f * args.lines, 3600, f"{fraction:.0%}")  # type: ignore[misc]
                if event == "kill":
                    dropped += int(cast(int, killer.client_kill_filter(_type="normal")))
                else:
                    redis_server.stop()
                    time.sleep(2)
                    redis_server.start()
                    restarts += 1
            killer.close()

            # kill -9 a busy worker near the end, its lines waiting at a slowed provider, and
            # time how long they wait before running again
            server.delay = 3.0
            query_for = {f"bench:{line['id']}": line["query"] for line in lines}

            def mid_request() -> bool:
                held = workers[0].log().in_flight
                asked = server.queries()
                return len(held) >= 4 and all(asked[query_for[job]] for job in held)

            wait_until(mid_request, 600, "a worker holding lines mid-request")
            stranded = workers[0].log().in_flight
            workers[0].process.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            workers[0].process.wait()
            unrecorded = {job for job in stranded if probe.record(job) is None}
            server.delay = args.delay
            rerun: dict[str, float] = {}

            def back() -> bool:
                for worker in workers[1:]:
                    for job, tries in worker.log().started.items():
                        if job in stranded and max(tries) >= 2:
                            rerun.setdefault(job, time.monotonic() - killed_at)
                return set(rerun) >= unrecorded

            wait_until(back, 600, "the killed worker's lines to run again")
            wait_until(lambda: probe.done("bench") >= args.lines, 3600, "the batch to finish")
            elapsed = time.monotonic() - started
            results, errors, _ = export_batch(url, "bench", work)
            asked = server.queries()
            exits = [w.process.returncode for w in workers[1:] if w.process.poll() is not None]
            ids = [line["id"] for line in lines]
            codes = Counter(e["error"]["code"] for e in errors)
            ok = [r["id"] for r in results] == ids and not errors and not exits
            print(
                f"lines {args.lines}, workers {args.workers}, {elapsed:.0f}s\n"
                f"connection drops: {args.kills} CLIENT KILL rounds, {dropped} connections\n"
                f"redis restarts: {restarts} (2 s down each, AOF)\n"
                f"results {len(results)}, errors {len(errors)} {dict(codes)}, "
                f"ids exactly once: {[r['id'] for r in results] == ids}\n"
                f"provider requests {asked.total()}, lines asked twice "
                f"{sum(1 for n in asked.values() if n > 1)}\n"
                f"workers that exited (besides the one killed): {exits}\n"
                f"kill -9: {len(unrecorded)} lines in flight, back in "
                f"{max(rerun.values(), default=0):.1f}s "
                f"(bound {RunnerSettings().recovery_seconds:g}s)"
            )
            probe.close()
            return 0 if ok else 1
        finally:
            pool.stop_all()
            redis_server.stop()


if __name__ == "__main__":
    sys.exit(main())
