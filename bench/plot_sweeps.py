#!/usr/bin/python3
"""Draws `cropshield bench` sweeps as PNG: throughput (x) against p50 and p99 latency (y), one line
per series, points labelled with their concurrency (or rate).

  bench/plot_sweeps.py OUT.png LABEL=BENCH_JSON [LABEL=BENCH_JSON ...]

draws one panel from `cropshield bench --json` files; bench/run_bench.py calls plot_panels() to put
one panel per workload in a figure. Uses Debian's python3-matplotlib (Agg backend, no display).
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

COLOURS = ["tab:green", "tab:blue", "tab:orange", "tab:red", "tab:purple"]


def steps_of(report):
    """The steps of a `cropshield bench --json` report, in the order they ran."""
    return report.get("steps") or [report]


def draw_panel(ax, title, series):
    """series: [(label, steps)]; p50 solid with dots, p99 dashed with crosses."""
    for colour, (label, steps) in zip(COLOURS * 4, series):
        steps = [s for s in steps if s.get("ok")]
        if not steps:
            continue
        x = [s["throughput"] for s in steps]
        ax.plot(x, [s["p50_ms"] for s in steps], "o-", color=colour, label=f"{label} p50")
        ax.plot(x, [s["p99_ms"] for s in steps], "x--", color=colour, label=f"{label} p99")
        for s in steps:
            ax.annotate(s.get("label", ""), (s["throughput"], s["p50_ms"]), fontsize=7,
                        textcoords="offset points", xytext=(3, 3), color=colour)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("throughput (requests/s)")
    ax.set_ylabel("latency (ms)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def plot_panels(path, title, panels, columns=2):
    """panels: [(panel title, [(series label, steps)])] -> one PNG at `path`."""
    rows = (len(panels) + columns - 1) // columns
    cols = min(columns, len(panels))
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4.2 * rows), squeeze=False)
    for ax, (panel_title, series) in zip(axes.flat, panels):
        draw_panel(ax, panel_title, series)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv):
    if len(argv) < 3 or any("=" not in a for a in argv[2:]):
        sys.exit(__doc__)
    series = []
    for arg in argv[2:]:
        label, path = arg.split("=", 1)
        with open(path) as f:
            series.append((label, steps_of(json.load(f))))
    plot_panels(argv[1], "cropshield bench", [("latency against throughput", series)], columns=1)


if __name__ == "__main__":
    main(sys.argv)
