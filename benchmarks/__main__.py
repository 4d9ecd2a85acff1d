"""``python -m benchmarks [--quick] [--url URL] [--only W1,W2] [--profile W1]``."""

from __future__ import annotations

import argparse
import os
import sys

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/chrononaut_bench"
WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="chrononaut's overhead against plain SQLAlchemy, the peers and psycopg2 "
        "floors. Drops and recreates its own bench_* tables in the database at --url.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes; finishes in under a minute"
    )
    parser.add_argument(
        "--url",
        help=f"PostgreSQL database to use, created if missing (default: $BENCH_DATABASE_URL, "
        f"else {DEFAULT_URL}, else an embedded server when nothing answers there)",
    )
    parser.add_argument(
        "--only", default=",".join(WORKLOADS), help="comma-separated workloads, e.g. W1,W4"
    )
    parser.add_argument("--reps", type=int, default=5, help="repetitions (default 5)")
    parser.add_argument(
        "--profile",
        metavar="WORKLOAD",
        choices=("W1", "W2", "W3", "W5"),
        help="instead of measuring, profile chrononaut's side of one workload (pyinstrument)",
    )
    args = parser.parse_args(argv)
    args.url_given = bool(args.url or os.environ.get("BENCH_DATABASE_URL"))
    args.url = args.url or os.environ.get("BENCH_DATABASE_URL") or DEFAULT_URL
    args.only = [name.strip().upper() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(args.only) - set(WORKLOADS))
    if unknown:
        parser.error(f"unknown workloads {unknown}; choose from {', '.join(WORKLOADS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    from .database import database

    with database(args.url, args.url_given) as url:
        if args.profile:
            from .profile import main as profile

            return profile(url, args.quick, args.profile)
        from .runner import main as run

        return run(url, args.quick, args.only, args.reps)


if __name__ == "__main__":
    sys.exit(main())
