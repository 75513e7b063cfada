"""Errors a user can cause: the CLI prints their message on one line and exits 1."""


class IbashError(Exception):
    """A problem the user can fix; the message says what and how."""


class NotAnIndex(IbashError):
    """The database file exists but was not made by ibash-index."""


class SchemaTooNew(IbashError):
    """The database was made by a newer ibash-index."""


class BuildLocked(IbashError):
    """Another build is writing to the same database."""


class ReportNotFound(IbashError):
    """No saved report has that name."""


class BadReportParams(IbashError):
    """A report parameter is missing or unknown."""
