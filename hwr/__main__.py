import sys

from hwr.cli import main

sys.exit(main())
