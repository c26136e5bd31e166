"""`python -m stylegan_core ...`: see stylegan_core/cli.py."""
import sys

from .cli import main

sys.exit(main())
