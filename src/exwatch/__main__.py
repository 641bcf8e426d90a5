"""`python -m exwatch`."""

from exwatch.cli import run

run()
