"""dnstap: every query and reply, as dnstap messages to a collector (CoreDNS's plugin/dnstap).

The pieces, in the order a query meets them:

- ``setup`` reads the ``dnstap`` lines: where to send (or listen), ``full``, identity, version,
  extra;
- ``handler`` taps the query as it comes in and the reply the chain gives, for each tap;
- ``message`` encodes the dnstap protobuf payloads, by hand;
- ``output`` queues them for a collector and drains the queue on the reactor, dropping (and
  counting) what does not fit; ``listener`` sends them to the sinks that connect to us;
- ``framestream`` is the Frame Streams protocol both of those speak.
"""
