import sys

from ibhq.cli import main

sys.exit(main())
