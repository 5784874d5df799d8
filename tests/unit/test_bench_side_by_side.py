"""The side-by-side benchmark's table: raw results in, one honest cell per scenario and contender out."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_side_by_side as sbs


def _victim(unoffered, first, recovered, **extra):
    return {
        "unoffered": unoffered,
        "offered_again": None,
        "recovered": recovered,
        "first_call": first,
        **extra,
    }


SUPERVISED = {
    "contender": "sidecar",
    "startup": {
        "finished": True,
        "ready": 5.02,
        "offered": [f"s{i}" for i in range(7)],
        "close": {"seconds": 0.07, "error": None, "servers": 8, "left": []},
    },
    "faults": {
        "local": _victim(0.017, {"outcome": "ServerUnavailable", "seconds": 0.003}, 0.78),
        "remote": _victim(0.036, {"outcome": "ToolCallError", "seconds": 0.018}, 2.55, listening=2.14),
        "stuck": _victim(15.3, {"outcome": "ToolCallError", "seconds": 15.26}, 17.5),
        "close": {"seconds": 0.63, "error": None, "servers": 2, "left": []},
    },
    "left_after_exit": {"startup": 0, "faults": 0},
}
UNSUPERVISED = {
    "contender": "agents-sequential",
    "startup": {
        "finished": False,
        "ready": 15.0,
        "offered": ["s0", "s1", "s2"],
        "close": {"seconds": 4.0, "error": None, "servers": 4, "left": [123]},
    },
    "faults": {
        "local": _victim(None, {"outcome": "MCPError", "seconds": 0.012}, None),
        "remote": _victim(None, {"outcome": "MCPError", "seconds": 0.016}, None, listening=2.1),
        "stuck": _victim(None, {"outcome": "hung", "seconds": 20.0}, None),
        "close": {"seconds": 4.02, "error": None, "servers": 1, "left": [456]},
    },
    "left_after_exit": {"startup": 1, "faults": 0},
}


def test_cells_say_what_a_supervised_contender_did():
    cells = sbs.cells(SUPERVISED)
    assert cells["startup"] == "back after 5.02 s; 7/8 offered"
    assert cells["local_noticed"] == "17 ms"
    assert cells["local_call"] == "fails (ServerUnavailable) after 3 ms"
    assert cells["remote_recovered"] == "yes, after 2.55 s (server listening again at 2.14 s)"
    assert cells["stuck_noticed"] == "15.30 s"
    assert cells["faults_close"] == "0.63 s; 0 of 2 servers left, 0 after exit"


def test_cells_never_claim_what_did_not_happen():
    cells = sbs.cells(UNSUPERVISED)
    window = f"{sbs.FAULT_WINDOW:g} s"
    assert cells["startup"] == f"not back within {sbs.STARTUP_DEADLINE:g} s; 3/8 offered"
    assert cells["local_noticed"] == f"never (no health notion; still offered at {window})"
    assert cells["stuck_call"] == f"no answer within {window}"
    assert cells["local_recovered"] == f"no (not within {window})"
    assert cells["startup_close"] == "4.00 s; 1 of 4 servers left, 1 after exit"


def test_table_has_one_row_per_scenario_and_one_column_per_contender():
    table = sbs.side_by_side_table({"sidecar": SUPERVISED, "agents-sequential": UNSUPERVISED})
    lines = table.splitlines()
    assert len(lines) == 2 + len(sbs.SCENARIOS)
    assert all(line.count(" | ") == 2 for line in lines)  # scenario + 2 contenders
    assert sbs.CONTENDERS["agents-sequential"] in lines[0]


def test_a_contender_that_never_ran_fills_its_column_with_the_reason():
    cells = sbs.cells({"error": "skipped: .cache/bench-baseline missing"})
    assert set(cells) == {key for key, _ in sbs.SCENARIOS}
    assert all(cell == "(skipped: .cache/bench-baseline missing)" for cell in cells.values())


def test_markdown_keeps_cells_from_breaking_the_table():
    assert sbs.markdown(["a", "b"], [["x|y", "z"]]).splitlines()[-1] == "| x/y | z |"
