import sys

from ebmlib.cli import main

sys.exit(main())
