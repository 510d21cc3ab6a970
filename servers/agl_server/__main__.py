import sys

from agl_server.cli import main

sys.exit(main())
