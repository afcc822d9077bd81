"""PostgreSQL helpers of the ingestion path."""

from __future__ import annotations

import psycopg
from django.db import connection


def pg_cursor():
    """A server-side-binding psycopg cursor on Django's connection (same transaction).

    Django's default psycopg cursor binds parameters on the client: it renders every
    value into the SQL text and re-parses that text on each call, which for a batch's
    arrays cost more than the database work. With this cursor the statement text is
    constant, values travel separately (``%b``: binary), and psycopg prepares a statement
    after a few executions. Use it inside ``with connection.wrap_database_errors:`` so
    errors are Django's and mark the connection as Django expects.
    """
    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)
