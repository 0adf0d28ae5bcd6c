import sys

from emu_x86.emucli.main import main

sys.exit(main())
