"""Exception types. Library code raises these; only the CLI prints them and picks exit codes.

Every message is meant to be shown to a user as one line, so it names the bad value and,
where there is one, the fix.
"""

from __future__ import annotations


class RtstyleError(Exception):
    """Base class for every error rtstyle raises on purpose."""

    exit_code = 2


class InputError(RtstyleError):
    """A user-supplied value or file is unusable (missing, unreadable, wrong kind)."""


class ConfigError(InputError, ValueError):
    """A config dataclass was given a value it cannot take. Configs check themselves when built, so
    the CLI shows this as a one-line usage error; it is also a ValueError, the type Python code
    expects from a constructor given a bad argument."""


class CheckpointError(RtstyleError):
    """A checkpoint is missing, corrupt, foreign, or of the wrong task."""


class WeightsNotFoundError(RtstyleError):
    """No source of pretrained VGG16 weights could be found."""


class BackendUnavailableError(RtstyleError):
    """An inference backend was asked for but its dependency or device is missing."""


class ExportError(RtstyleError):
    """Exporting or building a deployable model failed (tracer error, parser error, parity check)."""


class ClusterError(RtstyleError):
    """A Ray cluster cannot be joined (nothing listening, authentication, versions) or cannot host a
    worker of the job."""


class OutputError(RtstyleError):
    """An output path is unusable (exists without -y, equals the input, not writable, disk full)."""


class Interrupted(RtstyleError):
    """A run was stopped by SIGINT/SIGTERM after its partial output was finalised."""

    exit_code = 130
