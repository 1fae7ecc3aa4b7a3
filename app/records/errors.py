"""Errors raised by the records layer (app/records)."""

from __future__ import annotations


class RecordsError(RuntimeError):
    """Base class of every records-layer error."""


class DatabaseUnreachableError(RecordsError):
    """The database cannot be reached or opened. `url` is the URL with its password masked."""

    def __init__(self, url: str, reason: str):
        self.url, self.reason = url, reason
        super().__init__(f"cannot reach database {url}: {reason}")


class RecordNotFoundError(RecordsError, LookupError):
    """No row has that id. `kind` names the table's record ('note', 'report', 'match'), `key` the id."""

    def __init__(self, kind: str, key: object):
        self.kind, self.key = kind, key
        super().__init__(f"no {kind} with id {key!r} in the records database")


class MigrationPermissionError(RecordsError):
    """The database is behind the latest revision and this role may not upgrade it (PostgreSQL's
    insufficient_privilege): the application's role of the two-role setup. `url` has its password masked."""

    def __init__(self, url: str, reason: str):
        self.url, self.reason = url, reason
        super().__init__(f"the records database {url} needs migrating and this role may not do it ({reason}): "
                         "run `uninote migrate` with MIGRATION_DATABASE_URL set to the owner role (docs/scaling.md)")
