"""Errors that carry a message meant for a person, not a stack trace.

Every error that a user can cause (a bad file, a missing data set, a diverging fit) is a
:class:`DapError`; the command line and ``run_all.sh`` print its message as one line.
"""


class DapError(Exception):
    """Base class: the message names the problem and, where it helps, what to do about it."""


class AudioError(DapError, ValueError):
    """An audio file or array is unusable (unreadable, empty, silent, NaN, wrong rate...)."""


class DatasetError(DapError, FileNotFoundError):
    """A data set is missing, malformed, or fails its checksum."""


class FitDiverged(DapError, RuntimeError):
    """A fit produced a non-finite or exploding loss and was stopped."""
