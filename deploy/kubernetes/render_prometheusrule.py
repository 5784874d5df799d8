"""Write deploy/kubernetes/prometheusrule.yaml from alerts/mcp-sidecar.rules.yml.

    python deploy/kubernetes/render_prometheusrule.py           # rewrite the manifest
    python deploy/kubernetes/render_prometheusrule.py --check   # exit 1 if it is stale

The rule groups are copied as text (comments and all) under `spec:`, so the PrometheusRule
always carries exactly the rules that promtool tests. Standard library only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "alerts" / "mcp-sidecar.rules.yml"
OUTPUT = ROOT / "deploy" / "kubernetes" / "prometheusrule.yaml"
HEADER = """\
# Generated from alerts/mcp-sidecar.rules.yml by deploy/kubernetes/render_prometheusrule.py:
# edit the rules there, then run the script. A test keeps the two identical.
# Prometheus Operator picks this up when its ruleSelector matches these labels.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: mcp-sidecar
  labels:
    app.kubernetes.io/name: mcp-sidecar
spec:
"""


def render(rules_text: str) -> str:
    lines = rules_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("groups:"))
    body = ["  " + line if line.strip() else "" for line in lines[start:]]
    return HEADER + "\n".join(body) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare with the committed manifest")
    args = parser.parse_args(argv)
    text = render(RULES.read_text())
    if not args.check:
        OUTPUT.write_text(text)
    elif OUTPUT.read_text() != text:
        print(f"{OUTPUT} is stale: run python deploy/kubernetes/render_prometheusrule.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
