"""``python -m labelvault``: the command line."""

from labelvault.cli import run

if __name__ == "__main__":
    run()
