"""file: authoritative answers from zone files (CoreDNS's plugin/file).

The pieces, in the order a query meets them: ``setup`` (the directive, zones loaded at start),
``handler`` (zone match, answer cache, reloads, transfers), ``zone`` (the index and CoreDNS's
lookup), ``zonefile`` (zone file text to RRsets, errors with file and line).
"""

from .zone import Answer, Result, Zone, ZoneFileError

__all__ = ["Answer", "Result", "Zone", "ZoneFileError"]
