"""prometheus: CoreDNS's metrics on ``/metrics`` (CoreDNS's ``plugin/metrics``).

In the order a query meets it: ``handler`` counts each reply into ``metrics.queries`` (the
per-query families, kept as plain counters and turned into Prometheus families at scrape time);
``endpoint`` serves the exposition text from the front process, summed over the workers under
``multisocket``; ``setup`` reads the directive and marks the block's plugins enabled.
"""

from .handler import Metrics

__all__ = ["Metrics"]
