import sys

from agl_core.cli import main

sys.exit(main())
