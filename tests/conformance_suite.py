"""Running the MCP conformance suite's server scenarios against a URL, and reading its verdicts.

The suite (`@modelcontextprotocol/conformance`, installed by `make .cache/npm/.installed`)
writes one ``checks.json`` per scenario into ``--output-dir``, in a folder named
``server-{scenario}-{ISO time}``. Those files are the verdicts; its console output is for
people and is only kept to explain a failure. Used by tests/e2e/test_conformance.py and
benchmarks/bench_gateway_compare.py (this folder is on their import path).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CONFORMANCE_JS",
    "Check",
    "SuiteRun",
    "lost",
    "passed",
    "read_checks",
    "run_suite",
    "scenario_of",
]

# Where `make .cache/npm/.installed` puts it (no import of support.py: benchmarks use this too).
CONFORMANCE_JS = (
    Path(__file__).resolve().parent.parent
    / ".cache/npm/node_modules/@modelcontextprotocol/conformance/dist/index.js"
)
# `server-tools-call-image-2026-12-03T11-18-22-788Z`: the scenario between prefix and time.
_FOLDER = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T[0-9-]+Z$")
VERDICTS = ("SUCCESS", "FAILURE", "WARNING")  # INFO entries are the suite's own trace, not checks


@dataclass(frozen=True)
class Check:
    """One verdict of one scenario."""

    scenario: str
    id: str
    status: str  # SUCCESS | FAILURE | WARNING
    message: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return self.scenario, self.id


@dataclass(frozen=True)
class SuiteRun:
    """One run of the suite: its verdicts (what counts), exit code and console output."""

    checks: tuple[Check, ...]
    returncode: int
    output: str  # stdout and stderr, for the failure message

    def count(self, status: str) -> int:
        return sum(1 for check in self.checks if check.status == status)

    def __repr__(self) -> str:  # pytest shows it in assertion messages: the counts, not 40 checks
        return f"SuiteRun({self.summary().splitlines()[0]}, returncode={self.returncode})"

    def summary(self) -> str:
        failed = [f"{c.scenario}/{c.id}: {c.message}" for c in self.checks if c.status != "SUCCESS"]
        counts = (self.count(status) for status in VERDICTS)
        head = "{} passed, {} failed, {} warnings".format(*counts)
        return "\n  ".join([head, *failed])


def scenario_of(folder: str) -> str | None:
    """The scenario a result folder belongs to, or None for anything else."""
    match = _FOLDER.match(folder)
    return match["scenario"] if match else None


def read_checks(output_dir: Path) -> tuple[Check, ...]:
    """Every verdict under `output_dir`; an unreadable checks.json is one FAILURE of its scenario."""
    checks: list[Check] = []
    for path in sorted(output_dir.glob("*/checks.json")):
        scenario = scenario_of(path.parent.name)
        if scenario is None:
            continue
        try:
            entries = json.loads(path.read_text())
            if not isinstance(entries, list):
                raise ValueError("not a list")
        except ValueError as exc:
            checks.append(Check(scenario, "checks.json", "FAILURE", f"unreadable: {exc}"))
            continue
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("status") not in VERDICTS:
                continue
            message = str(entry.get("errorMessage") or "")
            checks.append(Check(scenario, str(entry.get("id", "?")), str(entry["status"]), message))
    return tuple(checks)


def passed(checks: tuple[Check, ...] | list[Check]) -> Counter[tuple[str, str]]:
    """(scenario, check id) of every SUCCESS, counted (an id may repeat within a scenario)."""
    return Counter(check.key for check in checks if check.status == "SUCCESS")


def lost(reference: tuple[Check, ...], other: tuple[Check, ...]) -> list[tuple[str, str]]:
    """Checks that pass in `reference` but not (as often) in `other`, sorted."""
    return sorted((passed(reference) - passed(other)).elements())


def run_suite(
    node: str, url: str, output_dir: Path, *, scenario: str | None = None, timeout: float = 240.0
) -> SuiteRun:
    """Run the active server suite (or one scenario) against `url`; verdicts from `output_dir`."""
    output_dir.mkdir(parents=True, exist_ok=True)
    argv = [node, str(CONFORMANCE_JS), "server", "--url", url, "--output-dir", str(output_dir)]
    if scenario is not None:
        argv += ["--scenario", scenario]
    # The suite exits 1 when any check fails: that is a verdict, not an error of the run.
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return SuiteRun(read_checks(output_dir), done.returncode, done.stdout + done.stderr)
