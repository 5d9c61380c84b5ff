import sys

from bazkhord.cli import main

sys.exit(main())
