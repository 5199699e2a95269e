"""Chat commands: declarations, argument parsing, access rules, executors, rendering.

The engine's only entry points are :func:`commands.dispatch.handle_message` and
:func:`commands.dispatch.handle_reaction`; both return an :class:`commands.outcome.Outcome`
(decisions, never side effects) or None when the event is not a command.
"""
