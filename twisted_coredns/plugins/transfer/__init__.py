"""transfer: zone transfers out, AXFR and IXFR, and NOTIFY to the secondaries (CoreDNS's
plugin/transfer).

The pieces, in the order a transfer request meets them: ``setup`` reads the ``transfer`` blocks
and, at startup, finds the block's handlers that provide ``ITransferer`` (file, auto,
secondary); ``handler`` checks the client against ``to`` and asks those handlers for the zone;
``messages`` packs the records into TCP messages as CoreDNS batches them, signing each one when
the query was TSIG-signed; ``notify`` tells the ``to`` addresses that a zone changed.
"""
