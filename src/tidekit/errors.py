"""The domain errors tidekit raises.

Every error a user can cause or fix is one of these. Each message says what is wrong and what to
do next. The CLI prints them without a traceback and exits non-zero (see ``tidekit.cli``); set
``TIDEKIT_DEBUG=1`` to see the traceback.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "ConfigError",
    "DataError",
    "MissingDependencyError",
    "TidekitError",
]


class TidekitError(Exception):
    """Base class: a problem the user can understand and act on."""

    exit_code: int = 1


class ConfigError(TidekitError):
    """A configuration file, option or override is invalid (all problems listed at once)."""

    exit_code = 2


class DataError(TidekitError):
    """Input data is missing, malformed or inconsistent."""


class BackendError(TidekitError):
    """A model backend could not be loaded or called."""


class MissingDependencyError(TidekitError):
    """An optional package needed by one feature is not installed."""

    def __init__(self, feature: str, package: str, install: str | None = None) -> None:
        self.feature = feature
        self.package = package
        self.install = install or f"pip install {package}"
        super().__init__(
            f"{feature} needs the package '{package}', which is not installed. "
            f"Install it with: {self.install}"
        )
