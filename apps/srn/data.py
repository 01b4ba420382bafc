"""Check an SRN-format dataset: `uv run apps/srn/data.py --check-data PATH` lists every problem with its file."""

import sys

from app_srn.data import main

if __name__ == "__main__":
    sys.exit(main())
