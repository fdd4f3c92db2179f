"""The exceptions a user can cause, one type per kind.

They travel unchanged from where they are raised to the edges, where the CLI turns them into a
one-line message and an exit code and the server into a JSON error with a 4xx/5xx status.
"""


class DualcamError(Exception):
    """Base of every error dualcam-rt reports to a user."""

    exit_code = 1
    http_status = 500
    code = "internal_error"


class BadInput(DualcamError):
    """The caller gave something unusable (a bad URI, file, option or payload)."""

    exit_code = 2
    http_status = 400
    code = "bad_input"


class NotFound(BadInput):
    """A named thing (file, session, model) does not exist."""

    http_status = 404
    code = "not_found"


class TooLarge(BadInput):
    """The caller sent more than a configured limit allows (bytes, seconds, frame size)."""

    http_status = 413
    code = "too_large"


class DeviceError(DualcamError):
    """A device could not be opened or stopped delivering data."""

    exit_code = 1
    http_status = 503
    code = "device_error"
