"""Printing: machine details, one table per workload, the summary and the targets."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata

import sqlalchemy as sa

from .measure import Measured

PACKAGES = (
    "chrononaut",
    "SQLAlchemy",
    "psycopg2-binary",
    "Flask-SQLAlchemy",
    "SQLAlchemy-Continuum",
    "SQLAlchemy-Utils",
    "PostgreSQL-Audit",
)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _memory() -> str:
    try:
        with open("/proc/meminfo") as meminfo:
            kib = int(meminfo.readline().split()[1])
        return f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        return "unknown"


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _checkout() -> str:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(
            ["git", "-C", here, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", here, "status", "--porcelain", "chrononaut"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" with uncommitted changes in chrononaut/" if dirty else "")


def machine(engine: sa.Engine) -> list[str]:
    with engine.connect() as connection:
        server = connection.exec_driver_sql("SHOW server_version").scalar()
        commit_mode = connection.exec_driver_sql("SHOW synchronous_commit").scalar()
    lines = [
        f"machine: {os.cpu_count()} cores ({_cpu()}), {_memory()} memory, "
        f"{platform.system()} {platform.release()}",
        f"PostgreSQL {server} (synchronous_commit={commit_mode}) at "
        f"{engine.url.render_as_string(hide_password=True)}",
        f"Python {platform.python_version()}; "
        + ", ".join(f"{p} {_version(p)}" for p in PACKAGES),
        f"chrononaut checkout: {_checkout()}",
        load(),
    ]
    return lines


def load() -> str:
    """The load average: other work on the machine makes the numbers noisier."""
    one, five, fifteen = os.getloadavg()
    return f"load average: {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} cores)"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.3f} ms"


def table(result: Measured) -> list[str]:
    """The workload's variants: median time per repetition and per operation, and the
    ratio to the baseline: the median of the paired ratios, then each repetition's."""
    reps = len(result.times[result.baseline])
    baseline = result.labels[result.baseline]
    lines = [
        f"{result.name}  {result.title}: {result.ops:,} {result.unit}(s) per repetition, "
        f"{reps} repetitions",
        f"    {'variant':<44} {'median/rep':>14} {'per ' + result.unit:>16}   "
        f"ratio to {baseline}: median (each repetition, paired)",
    ]
    for key, label in result.labels.items():
        median = result.median(key)
        each = " ".join(f"{r:.2f}" for r in result.ratios(key))
        lines.append(
            f"    {label:<44} {_ms(median):>14} {_ms(median / result.ops):>16}   "
            f"{result.ratio(key):.2f} ({each})"
        )
    for label, reason in result.missing.items():
        lines.append(f"    {label:<44} not run: {reason}")
    return lines


def markdown(results: list[Measured], columns: list[tuple[str, str]]) -> list[str]:
    """The summary as a Markdown table: plain's time per operation, then each ratio."""
    header = "| workload | plain per op | " + " | ".join(label for _, label in columns) + " |"
    lines = [header, "|" + " --- |" * (2 + len(columns))]
    for result in results:
        base = result.median(result.baseline) / result.ops
        cells = []
        for key, _ in columns:
            ratio = result.ratio(key)
            cells.append("-" if ratio is None else f"{ratio:.2f}x")
        lines.append(f"| {result.name} {result.title} | {_ms(base)} | " + " | ".join(cells) + " |")
    return lines
