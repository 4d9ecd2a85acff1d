"""The issue's targets, checked against one run, and the run's last line."""

from __future__ import annotations

from typing import Any

from . import report
from .measure import Measured
from .variants import AUDIT, CHRONONAUT, CONTINUUM

#: workload -> most chrononaut may cost, as a ratio to plain
CEILINGS = {
    "W1": 1.20,
    "W2": 1.25,
    "W3": 1.05,
    "W4 versions": 1.15,
    "W4 version_at": 1.30,
    "W5": 1.50,
}
#: W6 workload -> least throughput of 4 processes over 1 process alone
FLOORS = {"W6 one record": 0.8, "W6 100 records": 1.5}
#: the W4 ratio may move this much between history sizes and count as unchanged, or
#: half the spread of the repetitions' paired ratios, when that is larger
NOISE = 0.10


def _ceiling(name: str) -> float | None:
    for prefix, ceiling in CEILINGS.items():
        if name == prefix or name.startswith(prefix + " "):
            return ceiling
    return None


def _verdict(ok: bool, by: str) -> str:
    return "met" if ok else f"MISSED by {by}"


def _spread(result: Measured) -> float:
    """Half the range of chrononaut's paired ratios over the repetitions."""
    ratios = result.ratios(CHRONONAUT)
    return (max(ratios) - min(ratios)) / 2


def _unchanged(kind: str, small: Measured, large: Measured) -> str:
    """Unchanged within noise: the paired ratio (which cancels drift of the machine
    between the two sizes) moved less than the noise allowance."""
    first, last = small.ratio(CHRONONAUT), large.ratio(CHRONONAUT)
    moved = last - first
    noise = max(NOISE, _spread(small), _spread(large))
    verdict = _verdict(abs(moved) <= noise, f"{abs(moved) - noise:.2f} beyond noise")
    before, after = small.median(CHRONONAUT) / small.ops, large.median(CHRONONAUT) / large.ops
    return (
        f"W4 {kind:<19} {small.name.split()[-1]} -> {large.name.split()[-1]} history rows: "
        f"{first:.2f}x -> {last:.2f}x ({moved:+.2f}, noise {noise:.2f}; "
        f"{before * 1000:.3f} -> {after * 1000:.3f} ms per call): unchanged {verdict}"
    )


def check(run: Any) -> list[str]:
    lines = []
    results: dict[str, Measured] = run.results
    for name, result in results.items():
        ceiling = _ceiling(name)
        if ceiling is not None:
            ratio = result.ratio(CHRONONAUT)
            over = f"{ratio - ceiling:.2f} ({(ratio / ceiling - 1) * 100:.0f}%)"
            lines.append(
                f"{name:<22} {ratio:.2f}x <= {ceiling:.2f}x: {_verdict(ratio <= ceiling, over)}"
            )
        if name in FLOORS:
            speedup = 1 / result.ratio("4 processes")
            least = FLOORS[name]
            lines.append(
                f"{name:<22} {speedup:.2f}x >= {least:.2f}x: "
                f"{_verdict(speedup >= least, f'{least - speedup:.2f}')}"
            )
    for kind in ("versions", "version_at"):
        sizes = [r for n, r in results.items() if n.startswith(f"W4 {kind} ")]
        if len(sizes) >= 2:
            lines.append(_unchanged(kind, sizes[0], sizes[-1]))
    profile = run.profiles.get(CHRONONAUT)
    if profile is not None:
        lines.append(
            f"{'W7':<22} peak growth {profile.growth:.2f}x <= 1.10x: "
            f"{_verdict(profile.flat, f'{profile.growth - 1.10:.2f}')}"
        )
    for name in ("W1", "W2", "W3"):
        result = results.get(name)
        if result is None:
            continue
        ours = result.ratio(CHRONONAUT)
        for peer in (CONTINUUM, AUDIT):
            theirs = result.ratio(peer)
            if theirs is None:
                label = run.variants[peer].label
                lines.append(
                    f"{name:<22} faster than {label}: not measured "
                    f"({run.variants[peer].unavailable})"
                )
                continue
            label = result.labels[peer]
            lines.append(
                f"{name:<22} faster than {label} ({ours:.3f}x vs {theirs:.3f}x): "
                f"{_verdict(ours < theirs, f'{ours - theirs:.2f}')}"
            )
    return lines


def summary(run: Any) -> list[str]:
    columns = [
        (CHRONONAUT, "chrononaut"),
        (CONTINUUM, "Continuum"),
        (AUDIT, "PostgreSQL-Audit"),
        ("floor", "floor"),
        ("floor+history", "floor + history"),
        ("for update", "plain FOR UPDATE"),
    ]
    # W6 compares processes, W8 and W9 features with chrononaut itself: not ratios to plain.
    listed = [r for n, r in run.results.items() if not n.startswith(("W6", "W8", "W9"))]
    lines = ["summary: median of paired ratios to plain (chrononaut/plain etc.)"]
    lines += report.markdown(listed, columns)
    lines += feature_costs(run.results)
    lines += ["", "targets:"]
    lines += [f"    {line}" for line in check(run)]
    return lines


#: feature -> the workload that measures it, and the entry "with" the feature
FEATURES = {
    "database guard": ("W8 update", "guarded"),
    "changesets": ("W9 changesets", "with"),
    "creation events": ("W9 creation events", "with"),
    "collection bumps": ("W9 collection bumps", "with"),
}


def feature_costs(results: dict[str, Measured]) -> list[str]:
    """One line per feature: its cost as the median paired ratio with/without it."""
    lines = []
    for feature, (name, key) in FEATURES.items():
        result = results.get(name)
        if result is None:
            continue
        ratios = " ".join(f"{r:.2f}" for r in result.ratios(key))
        per_op = (result.median(key) - result.median(result.baseline)) / result.ops
        lines.append(
            f"    {feature:<17} {result.ratio(key):.2f}x with/without "
            f"({per_op * 1000:+.3f} ms per {result.unit}; repetitions {ratios}): {result.title}"
        )
    return (
        ["", "cost of features (paired ratio with/without the feature):", *lines] if lines else []
    )


def last_line(results: dict[str, Measured]) -> str:
    """``W1 <r> W2 <r> W3 <r> W4 <r> W5 <r>``: median chrononaut/plain ratios.

    W4 is the versions() ratio at the largest history measured; a workload not
    run shows ``-``.
    """

    def ratio(name: str) -> str:
        found = [r for n, r in results.items() if n == name or n.startswith(name + " ")]
        return "-" if not found else f"{found[-1].ratio(CHRONONAUT):.2f}"

    return " ".join(
        f"{name} {ratio(key)}"
        for name, key in (
            ("W1", "W1"),
            ("W2", "W2"),
            ("W3", "W3"),
            ("W4", "W4 versions"),
            ("W5", "W5"),
        )
    )
