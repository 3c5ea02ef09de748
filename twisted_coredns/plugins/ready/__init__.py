"""ready: ``/ready`` answers 200 ``OK`` once every plugin that can be not-ready is ready
(CoreDNS's ``plugin/ready``).

A plugin joins by providing ``twisted_coredns.IReady`` on its handler. The front process asks
every process (``IFront.not_ready``): with ``multisocket`` that is each worker, over its control
pipe, and a worker not serving yet counts as not ready.
"""

from .endpoint import ReadyPage

__all__ = ["ReadyPage"]
