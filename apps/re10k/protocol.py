"""Write a Flash3D-format evaluation split: `uv run apps/re10k/protocol.py --root data/re10k --out test_files.txt`."""

import sys

from app_re10k.protocol import main

if __name__ == "__main__":
    sys.exit(main())
