"""The Space under load: `app.py` served on loopback, concurrent `gradio_client` clients for a fixed time, single
reviews (`/rating_age` and `/topic`, alternating) mixed with CSV batches (`/batch`); per kind of request the
throughput and p50/p95/p99 latency, the errors (there must be none), the server's peak RSS and its cold start (process
start to first answer). It stops by itself. Writes benchmarks/results/space_load.json.

    python -m benchmarks.space_load --multitask_model out/multitask --topic_model out/topic_features
"""

import argparse
import csv
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.common import REPO_ROOT, PeakMemory, clothing_texts, command_line, write_json


def review_texts(count: int) -> list[str]:
    """Held-out clothing reviews (the clothing test split), repeated to `count`."""
    texts = clothing_texts("test")
    return (texts * (count // len(texts) + 1))[:count]


def start_server(arguments, port: int, log_path: Path) -> tuple[subprocess.Popen, float]:
    """app.py on loopback, and the seconds from its start until it answered a first review."""
    from gradio_client import Client

    environment = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    environment.pop("GRADIO_SERVER_NAME", None)
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "app.py", "--multitask-model", arguments.multitask_model, "--topic-model",
         arguments.topic_model, "--port", str(port), "--concurrency-limit", str(arguments.concurrency_limit),
         *(["--backend", arguments.backend] if arguments.backend else [])],
        cwd=REPO_ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=open(log_path, "w"),
    )
    while True:
        try:
            Client(f"http://127.0.0.1:{port}/", verbose=False).predict("Fits well.", api_name="/rating_age")
            return server, time.perf_counter() - started
        except Exception:
            if server.poll() is not None or time.perf_counter() - started > 180:
                raise RuntimeError(f"app.py did not serve: {log_path.read_text()[-2000:]}") from None
            time.sleep(0.2)


def client_loop(url: str, kind: str, payload, deadline: float, records: list, lock: threading.Lock) -> None:
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    turn = 0
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        try:
            if kind == "batch":
                client.predict(handle_file(payload), "review", api_name="/batch")
                name = "batch"
            else:
                name = ("rating_age", "topic")[turn % 2]
                client.predict(payload[turn % len(payload)], api_name=f"/{name}")
            error = None
        except Exception as exception:  # counted: the load test's bar is zero errors
            error = f"{type(exception).__name__}: {exception}"[:200]
        with lock:
            records.append((name, time.perf_counter() - started, error))
        turn += 1


def summary(records: list, name: str, seconds: float, reviews_per_request: int) -> dict:
    latencies = np.array([latency for kind, latency, error in records if kind == name and error is None]) * 1000
    errors = [error for kind, _, error in records if kind == name and error is not None]
    return {
        "requests": int(len(latencies)), "errors": len(errors), "first_errors": errors[:3],
        "requests_per_s": round(len(latencies) / seconds, 2),
        "reviews_per_s": round(len(latencies) * reviews_per_request / seconds, 1),
        **({f"p{q}_ms": round(float(np.percentile(latencies, q)), 1) for q in (50, 95, 99)} if len(latencies) else {}),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--multitask_model", required=True)
    parser.add_argument("--topic_model", required=True)
    parser.add_argument("--backend", default=None, help="The app's --backend (default: the app's default)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--batch_clients", type=int, default=5, help="Of --clients, how many send CSV batches")
    parser.add_argument("--csv_rows", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--port", type=int, default=7870)
    parser.add_argument("--concurrency_limit", type=int, default=1, help="The app's --concurrency-limit")
    arguments = parser.parse_args()
    import app

    texts = review_texts(max(arguments.csv_rows, 200))
    with tempfile.TemporaryDirectory() as folder:
        batch_csv = Path(folder) / "batch.csv"
        with open(batch_csv, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["review"])
            writer.writerows([text] for text in texts[: arguments.csv_rows])
        server, cold_start = start_server(arguments, arguments.port, Path(folder) / "app.log")
        memory = PeakMemory(server.pid, interval=0.1)
        records, lock = [], threading.Lock()
        deadline = time.perf_counter() + arguments.seconds
        url = f"http://127.0.0.1:{arguments.port}/"
        threads = [threading.Thread(target=client_loop, args=(
            url, "batch" if index < arguments.batch_clients else "single",
            batch_csv if index < arguments.batch_clients else texts[index::arguments.clients], deadline, records,
            lock)) for index in range(arguments.clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        memory.stop()
        peak_rss_mb = round(memory.peak_rss / 2**20)
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    rows = {name: summary(records, name, elapsed, arguments.csv_rows if name == "batch" else 1)
            for name in ("rating_age", "topic", "batch")}
    write_json("space_load", {
        "command": command_line("space_load", sys.argv[1:]),
        "settings": {"clients": arguments.clients, "batch_clients": arguments.batch_clients,
                     "csv_rows": arguments.csv_rows, "seconds": arguments.seconds,
                     "backend": arguments.backend or app.DEFAULT_BACKEND},
        "queue": {"max_size": app.QUEUE_MAX_SIZE, "max_batch_size": app.MAX_QUEUE_BATCH,
                  "concurrency_limit_per_endpoint": arguments.concurrency_limit},
        "wall_seconds": round(elapsed, 1), "cold_start_s": round(cold_start, 1), "peak_rss_mb": peak_rss_mb,
        "endpoints": rows, "errors": sum(row["errors"] for row in rows.values()),
    })
    print({name: {key: row.get(key) for key in ("requests", "errors", "p50_ms", "p95_ms")} for name, row in rows.items()})


if __name__ == "__main__":
    main()
