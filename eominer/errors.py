"""Every error eominer raises on purpose.

One root, `EominerError`; each subclass also inherits the builtin that fits, so
callers can catch either. Messages name the thing, what was expected, what was
found, and how to fix it.
"""

from __future__ import annotations

from types import ModuleType  # for `require`; functools imports it anyway (typing: ~8 ms)


class EominerError(Exception):
    """Root of all eominer errors."""


class ConfigError(EominerError, ValueError):
    """A setting, URL or argument is malformed."""


class ProductReadError(EominerError, OSError):
    """A product or one of its files cannot be read (missing, truncated, corrupt)."""


class UnsupportedFormatError(EominerError, ValueError):
    """A path is not a product format eominer knows."""


class MissingBandError(ProductReadError):
    """A product lacks a band it must have."""


class GridMismatchError(EominerError, ValueError):
    """Rasters that must share a CRS or grid do not."""


class StoreError(EominerError, RuntimeError):
    """The feature database refused or failed an operation."""


class StoreWriteError(StoreError, OSError):
    """The file system refused a write (disk full, quota): nothing was committed."""


class StoreConnectionError(StoreError, ConnectionError):
    """The feature database cannot be reached or opened."""


class SchemaVersionError(StoreError):
    """The database was written by an incompatible eominer version."""


class ReadOnlySQLError(StoreError, PermissionError):
    """User SQL tried to write, or to read local files."""


class UserSQLError(StoreError, ValueError):
    """User SQL is invalid (syntax, unknown table or column...)."""


class FeatureError(EominerError, ValueError):
    """A descriptor or feature set is unknown, missing or inconsistent."""


class ModelNotTrainedError(FeatureError):
    """A model (encoder, fusion network) is needed before it was trained."""


class MissingExtraError(EominerError, ImportError):
    """An optional dependency is not installed."""

    def __init__(self, module: str, extra: str, purpose: str = "") -> None:
        why = f" for {purpose}" if purpose else ""
        super().__init__(
            f"{module} is needed{why} but is not installed: "
            f"pip install 'eominer[{extra}]'"
        )
        self.module = module
        self.extra = extra


class JobError(EominerError, RuntimeError):
    """A batch job failed after its retries."""


class SessionError(EominerError, ValueError):
    """A mining session cannot do what was asked (empty scope, bad label...)."""


class ScopeTooLargeError(SessionError):
    """A session's scope would not fit in the memory available (checked before loading);
    the archive index can still search it (ui/archive.py)."""

    def __init__(self, message: str, n: int, need: int, available: int) -> None:
        super().__init__(message)
        self.n, self.need, self.available = n, need, available


class AOIError(EominerError, ValueError):
    """An area of interest cannot be read or used (no polygon, unknown CRS...)."""


class SearchError(EominerError, ValueError):
    """A search cannot run as asked (unknown example, nothing kept...)."""


class ExportError(EominerError, ValueError):
    """A result cannot be exported as asked (nothing above the threshold...)."""


class FeaturesChangedError(SessionError):
    """A session's features were re-extracted since it started: its labels may mean
    something else on the new ones; the analyst chooses to re-rank or to stop."""


class PairingError(EominerError, ValueError):
    """Two products cannot be paired (no overlap, different sensors...)."""


def require(module: str, extra: str, purpose: str = "") -> ModuleType:
    """Import an optional module, or raise `MissingExtraError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise MissingExtraError(module, extra, purpose) from exc


class CloudError(EominerError, RuntimeError):
    """A cloud (OpenStack) API call failed after its bounded retries, or was refused."""


class CloudQuotaError(CloudError):
    """The cloud refused to create a server because a project quota is used up."""
