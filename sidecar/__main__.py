"""`python -m sidecar` is `mcp-sidecar`."""

import sys

from .cli import main

sys.exit(main())
