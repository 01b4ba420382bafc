"""Generate (or find) the built-in synthetic RealEstate10K-format rooms and print their folder:
`uv run apps/re10k/synthetic.py --train-scenes 20 --frames 60` (every option: `--help`)."""

import sys

from app_re10k.synthetic import main

if __name__ == "__main__":
    sys.exit(main())
