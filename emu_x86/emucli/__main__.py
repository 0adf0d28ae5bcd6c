import sys

from emu_x86.emucli.launch import main

sys.exit(main())
