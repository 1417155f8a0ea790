"""`python -m devstack up|down`: what `make up` and `make down` run."""

import sys

from devstack.up import down, up

COMMANDS = {"up": up, "down": down}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in COMMANDS:
        sys.exit("usage: python -m devstack up|down")
    sys.exit(COMMANDS[sys.argv[1]]())
