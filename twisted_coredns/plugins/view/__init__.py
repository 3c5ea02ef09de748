"""view: a server block serves only the queries its expressions accept (CoreDNS's plugin/view).

- ``expression``: the expr-lang subset, compiled once at setup into closures;
- ``setup``: reads ``view NAME { expr ... }`` and gives the block its filter and view name;
- ``handler``: the pass-through handler, which publishes ``view/name`` as metadata.

The router (``server/router.py``) asks each block serving a zone in turn, in Corefile order, and
the first whose filters all pass serves the query.
"""
