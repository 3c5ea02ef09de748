"""erratic: a fixed answer to every query, some dropped, delayed or truncated on purpose, for
testing how clients cope (CoreDNS's plugin/erratic).

- ``setup``: the ``erratic`` block (drop, truncate, delay; CoreDNS's undocumented ``large``);
- ``handler``: the answers, the query counter that picks which to spoil, readiness and the
  search path ``autopath @erratic`` asks for.
"""
