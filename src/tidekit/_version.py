"""tidekit version (a base module, so any layer can record it without importing the package)."""

__version__ = "0.1.0"
