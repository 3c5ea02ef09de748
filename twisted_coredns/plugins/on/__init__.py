"""on: runs a command when the server starts or stops (the ``on`` directive CoreDNS takes from
coredns/caddy's onevent).

``on EVENT COMMAND [ARGS...] [&]``: EVENT is ``startup``, ``shutdown`` or ``certrenew``.
- ``setup`` reads the directives and registers the hooks;
- ``hook`` runs the command through the reactor's process support, so the reactor never waits.
"""
