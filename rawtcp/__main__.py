"""`python -m rawtcp` is the `rawtcp` command."""

import sys

from rawtcp.cli import main

sys.exit(main())
