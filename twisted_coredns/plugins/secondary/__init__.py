"""secondary: zones transferred in from primaries, kept fresh, and served (CoreDNS's
plugin/secondary).

The pieces: ``setup`` reads the Corefile; ``inbound`` runs dnspython's zone transfer client (IXFR
when there is a zone to update, AXFR otherwise or when IXFR fails) and the SOA check, on a worker
thread so the reactor never waits on a primary; ``handler`` serves the zones with ``file``'s
handler and ``Zone``, takes NOTIFY from the primaries, and follows each SOA's refresh, retry and
expire timers.
"""
