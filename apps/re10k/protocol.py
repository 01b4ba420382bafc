"""Write a Flash3D-format evaluation split (`key src tgt5 tgt10 tgt_rand` rows) for a RealEstate10K split in either
layout: `uv run apps/re10k/protocol.py --root data/re10k --split test --out data/re10k/test_files.txt --every 10`."""

import sys

from app_re10k.protocol import main

if __name__ == "__main__":
    sys.exit(main())
