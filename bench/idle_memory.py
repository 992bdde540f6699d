#!/usr/bin/python3
"""Resident memory of the C++ server through bursts of load and idle gaps, with and without
--release_memory_idle_ms (the idle heap release), alternating, on the full-width CNN.

  bench/idle_memory.py [--build build] [--rounds 2] [--device auto] [--duration 8]

Per round and setting: RSS 2 s after SERVING, right after Predict W1 at 4 clients, right after
uncached Explain W1 at 4 clients, after 3 s idle; then five single Predict W2 calls 1.5 s apart
(the first call after an idle release faults its pages in again) with their server-side times.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import run_bench

SETTINGS = {"release after 1 s idle": ["--release_memory_idle_ms=1000"],
            "never release": ["--release_memory_idle_ms=0"]}


def sparse_calls(cli, port, image):
    times = []
    for _ in range(5):
        out = subprocess.run([cli, "predict", image, f"--target=127.0.0.1:{port}", "--json"],
                             capture_output=True, text=True, check=True).stdout
        timing = json.loads(out)["response"]["timing"]
        times.append(float(timing["total_us"]) / 1000)  # int64: a JSON string
        time.sleep(1.5)
    return times


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", default=os.path.join(run_bench.SOURCE, "build"))
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--duration", type=float, default=8)
    args = p.parse_args()
    server = os.path.join(args.build, "server", "cropshield-server")
    cli = os.path.join(args.build, "client", "cropshield")
    work = tempfile.mkdtemp(prefix="cropshield_idle_memory_")
    workloads = run_bench.make_workloads(work)
    package = os.path.join(work, "cropshield-cnn", "1")
    subprocess.run([sys.executable, os.path.join(run_bench.SOURCE, "models", "export.py"), "--arch",
                    "cropshield_cnn", "--random-weights", "--seed", "1", package],
                   check=True, stdout=subprocess.DEVNULL)
    w2_image = os.path.join(workloads["W2"], sorted(os.listdir(workloads["W2"]))[0])
    print("| setting | round | after start MB | after Predict W1 c4 MB | after Explain W1 c4 MB "
          "| after 3 s idle MB | sparse Predict W2 server ms (median) |")
    print("|---|---|---|---|---|---|---|")
    for round_index in range(args.rounds):
        for name, flags in SETTINGS.items():
            proc, port, logname = run_bench.start(
                [server, f"--model={package}", "--address=127.0.0.1:0", f"--device={args.device}",
                 "--metrics_address="] + flags)
            try:
                time.sleep(2)
                row = [run_bench.rss_mb(proc.pid)]
                run_bench.load(cli, port, workloads["W1"], "predict", 4, args.duration, 1,
                               connections=4)
                row.append(run_bench.rss_mb(proc.pid))
                run_bench.load(cli, port, workloads["W1"], "explain", 4, args.duration, 1,
                               bypass=True, connections=4)
                row.append(run_bench.rss_mb(proc.pid))
                time.sleep(3)
                row.append(run_bench.rss_mb(proc.pid))
                times = sparse_calls(cli, port, w2_image)
            finally:
                run_bench.stop(proc)
                os.remove(logname)
            cells = [name, str(round_index + 1)] + [f"{v:.0f}" for v in row]
            cells.append(" ".join(f"{t:.0f}" for t in times) + f" ({statistics.median(times):.0f})")
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
