import sys

from emucli.main import main

sys.exit(main())
