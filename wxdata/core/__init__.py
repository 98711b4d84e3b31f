"""The sans-IO core: plans that decide every statement, driven by a sync or an async shell.

A *plan* is a generator that yields :mod:`effects <wxdata.core.effects>` (a statement to run, a
record to write on audit lane 2, hooks to call...) and receives their answers; database errors are
thrown into it at the ``yield``. It never touches a socket. :func:`wxdata.core.drive.run` executes a
plan on a :class:`psycopg.Connection`, :func:`wxdata.core.drive.arun` on a
:class:`psycopg.AsyncConnection`: each is a loop of a few lines around one handler per effect, so
the sync API (:mod:`wxdata.crud`, :mod:`wxdata.tx`) and the async one (:mod:`wxdata.aio`) share
every decision.
"""
