"""Generate (or find) the built-in synthetic SRN-format objects and print their folder (`--help` for the options)."""

import sys

from app_srn.synthetic import main

if __name__ == "__main__":
    sys.exit(main())
