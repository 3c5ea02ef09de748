"""health: ``/health`` answers 200 ``OK`` while the process runs (CoreDNS's ``plugin/health``).

``setup`` reads the directive; ``endpoint`` is the page, the self-check that feeds the
``coredns_health_*`` metrics, and the lameduck wait at shutdown. Process-wide: it runs in the
front process only, never once per multisocket worker.
"""

from .endpoint import HealthPage, SelfCheck

__all__ = ["HealthPage", "SelfCheck"]
