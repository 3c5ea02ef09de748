"""cache: a frontend cache of replies (CoreDNS's plugin/cache).

``setup`` reads the directive, ``handler`` serves queries, ``storage`` holds replies as wire bytes,
``wire`` reads a reply once to classify it, ``metrics`` names the counters as CoreDNS does.
"""
