"""Generate (or find) the synthetic rooms and print their folder: `uv run apps/re10k/synthetic.py --help`."""

import sys

from app_re10k.synthetic import main

if __name__ == "__main__":
    sys.exit(main())
