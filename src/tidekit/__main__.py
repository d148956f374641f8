"""``python -m tidekit`` runs the CLI."""

from tidekit.cli import run

run()
