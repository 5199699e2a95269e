"""The engine: named passes over the database, run by one supervisor (GoAlert's shape).

Data flows one way: inbound event → inbox row → decision → outbox rows → channel senders →
delivery state. Each pass has one entry point (``run_once``) and one job:

- :mod:`bot.engine.inbox` — stored inbound events handled, each in one transaction;
- :mod:`bot.engine.due` — reminders, escalation steps and delivery deadlines fire;
- :mod:`bot.engine.delivery` — the one outbox, every channel;
- :mod:`bot.engine.cleanup` — what has outlived its use is deleted;
- :mod:`bot.engine.metrics` — the Prometheus gauges refreshed from the database.

Around them: :mod:`~bot.engine.routing` and :mod:`~bot.engine.replies` (the ways in),
:mod:`~bot.engine.writer` (an outcome as rows), :mod:`~bot.engine.prepare` (a row at its send),
:mod:`~bot.engine.fallback` (a party unreached moves on), :mod:`~bot.engine.upkeep` (Matrix
keys after each sync), :mod:`~bot.engine.supervisor` and :mod:`~bot.engine.faults`.
"""
