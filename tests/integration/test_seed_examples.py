"""The seed's examples (examples/seed/), each run as a user runs it, print what they should."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from support import REPO

SEED = REPO / "examples" / "seed"
MISSING_MODULE = r"exited with code 1: .*No module named no_such_mcp_server"

# example -> the lines it must print, in order (regular expressions, each matching a whole line)
EXPECTED = {
    "connect": [
        re.escape("Active servers: ['filesystem', 'search']"),
        re.escape("Failed servers: ['database']"),
    ],
    "monitor": [
        re.escape("2/3 servers active: ['filesystem', 'search']"),
        "FAILED database: " + MISSING_MODULE,
        re.escape("Required servers missing: ['database']"),
        r"filesystem: active, protocol 20\d\d-\d\d-\d\d, tools: echo, add, now, word_count",
        r"search: active, protocol 20\d\d-\d\d-\d\d, tools: echo, add, now, word_count",
    ],
    "drop_failed": [
        re.escape("Failed before: ['database', 'email']"),
        re.escape("Failed after: []"),
        re.escape("Dropped: ['database', 'email']"),
        re.escape("Serving: ['filesystem']"),
        re.escape("Errors kept for: ['database', 'email']"),
    ],
    "reconnect": [
        re.escape("Failed at start: ['docs']"),
        re.escape("Working with: ['calendar']"),
        re.escape("Active after reconnect: ['calendar', 'docs']"),
        re.escape("Failed after reconnect: []"),
    ],
}


def test_every_example_is_run_here() -> None:
    examples = {path.stem for path in SEED.glob("*.py")} - {"servers"}
    assert examples == set(EXPECTED)


@pytest.mark.parametrize("example", sorted(EXPECTED))
def test_seed_example_prints_what_it_should(example: str) -> None:
    done = subprocess.run(
        [sys.executable, str(SEED / f"{example}.py")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(EXPECTED[example]), done.stdout
    for line, pattern in zip(lines, EXPECTED[example], strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)
