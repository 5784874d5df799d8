"""What importing the package costs: `--version`, `check` and `import sidecar` stay away from
the mcp SDK, OpenTelemetry and aiohttp, and an uninstalled source tree imports and runs.

Each case runs in a fresh interpreter and reads its `sys.modules`: a statement about what is
imported, which a loaded machine cannot make flaky (the timings are in benchmarks/).
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO

HEAVY = ("aiohttp", "httpx2", "mcp", "mcp_types", "opentelemetry")

# Runs the statement under test, then prints which heavy top-level packages it loaded.
_PROBE = """\
import json, sys
try:
{body}
finally:
    loaded = sorted({{name.split(".")[0] for name in sys.modules}} & set({heavy!r}))
    print("HEAVY " + json.dumps(loaded), flush=True)
"""


def _probe(body: str, *, cwd: Path, python: list[str] | None = None, env: dict[str, str] | None = None):
    script = _PROBE.format(body="\n".join("    " + line for line in body.splitlines()), heavy=HEAVY)
    done = subprocess.run(
        [*(python or [sys.executable]), "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = done.stdout.splitlines()
    assert lines and lines[-1].startswith("HEAVY "), done.stdout + done.stderr
    return json.loads(lines[-1].removeprefix("HEAVY ")), "\n".join(lines[:-1]), done


@pytest.mark.parametrize(
    "statement",
    [
        "import sidecar",
        "import sidecar.cli",
        "from sidecar import ServerConfig, parse_config, load_config, ConfigError, ServerState",
        "import sidecar; sidecar.__version__",
    ],
)
def test_light_imports_load_no_heavy_package(statement: str, tmp_path: Path) -> None:
    heavy, _, done = _probe(statement, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert heavy == [], f"{statement!r} imported {heavy}"


def test_the_probe_sees_a_heavy_import(tmp_path: Path) -> None:
    """The manager needs the SDK: if this found nothing, the probe above could not fail."""
    heavy, _, done = _probe("from sidecar import MCPServerManager", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "mcp" in heavy and "mcp_types" in heavy


def test_version_imports_no_heavy_package(tmp_path: Path) -> None:
    body = (
        "from sidecar.cli import main\n"
        "try:\n"
        "    main(['--version'])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0"
    )
    heavy, output, done = _probe(body, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert heavy == []
    assert output.startswith("mcp-sidecar ") and "(mcp 2." in output, output


def test_check_imports_no_heavy_package(tmp_path: Path) -> None:
    config = tmp_path / "servers.yaml"
    config.write_text(
        "servers:\n"
        "  - {name: fs, transport: stdio, command: node}\n"
        "  - {name: db, transport: streamable-http, url: 'http://127.0.0.1:8001/mcp'}\n"
    )
    body = f"from sidecar.cli import main\nassert main(['check', '-c', {str(config)!r}]) == 0"
    heavy, output, done = _probe(body, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert heavy == []
    assert output == f"{config}: ok, 2 servers"


def test_a_bad_config_is_reported_without_heavy_imports(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("servers:\n  - {name: fs, transport: stdio}\n")
    body = f"from sidecar.cli import main\nassert main(['check', '-c', {str(config)!r}]) == 2"
    heavy, _, done = _probe(body, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert heavy == []
    assert "servers[0] (fs)" in done.stderr


def _uninstalled_tree(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the package with no metadata anywhere, and the venv's dependencies without ours."""
    source = tmp_path / "src"
    shutil.copytree(REPO / "sidecar", source / "sidecar", ignore=shutil.ignore_patterns("__pycache__"))
    deps = tmp_path / "deps"
    deps.mkdir()
    for site_dir in site.getsitepackages():
        for entry in Path(site_dir).iterdir():
            ours = entry.name.startswith(("mcp_sidecar", "__editable__")) or entry.suffix == ".pth"
            if not ours and not (deps / entry.name).exists():
                (deps / entry.name).symlink_to(entry)
    return source, deps


def test_an_uninstalled_source_tree_imports_and_runs(tmp_path: Path) -> None:
    source, deps = _uninstalled_tree(tmp_path)
    # -S: no site-packages (where the installed metadata lives); the copy and the deps only.
    env = {**os.environ, "PYTHONPATH": f"{source}{os.pathsep}{deps}"}
    python = [sys.executable, "-S"]
    body = (
        "import importlib.metadata, sidecar\n"
        "try:\n"
        "    importlib.metadata.version('mcp-sidecar')\n"
        "    raise AssertionError('the package metadata is still visible')\n"
        "except importlib.metadata.PackageNotFoundError:\n"
        "    pass\n"
        f"assert sidecar.__file__.startswith({str(source)!r}), sidecar.__file__\n"
        "import sidecar.connection, sidecar.telemetry.tracing\n"
        "from sidecar import MCPServerManager\n"
        "print(sidecar.__version__)"
    )
    heavy, output, done = _probe(body, cwd=tmp_path, python=python, env=env)
    assert done.returncode == 0, done.stderr
    assert output == "0.0.0"
    assert "mcp" in heavy  # the manager was really imported

    version = subprocess.run(
        [*python, "-m", "sidecar", "--version"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("mcp-sidecar 0.0.0 (mcp 2.")
