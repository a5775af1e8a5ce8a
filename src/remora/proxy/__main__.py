"""`python -m remora.proxy SETTINGS`: what `remora proxy` execs into (remora.proxy.launch)."""

import sys

from remora.proxy.launch import main

sys.exit(main(sys.argv[1:]))
