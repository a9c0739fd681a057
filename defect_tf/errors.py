"""Errors a user can fix: the command-line tools print them as one line and exit with status 2."""


class DefectTFError(Exception):
    """Base class for every mistake the user can correct (bad labels, images, bundles, weights)."""


class LabelError(DefectTFError):
    """A label file is malformed; the message names the file and line."""


class ImageError(DefectTFError):
    """An image is missing or cannot be decoded; the message names the file, `reason` says why, `path` is the file."""

    def __init__(self, message: str, reason: str | None = None, path: str | None = None):
        super().__init__(message)
        self.reason, self.path = reason, path


class BundleError(DefectTFError):
    """A model bundle is missing, incomplete or does not match what the command expects."""


class WeightsError(DefectTFError):
    """Backbone weights cannot be obtained (for example ImageNet weights while offline)."""
