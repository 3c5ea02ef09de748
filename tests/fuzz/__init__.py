"""Fuzzing the server and the Corefile reader, in CI (these tests) and by hand (``bench/fuzz.py``).

The pieces, in the order a packet meets them:

- ``packets.py``: hypothesis strategies for valid queries and their mutations;
- ``target.py``: unbound and ``twisted-coredns`` (``multisocket 2``) on loopback, batches sent
  over UDP and TCP, the server's health after each batch;
- ``checks.py``: what every reply must be (the oracle);
- ``test_server_fuzz.py``: 20,000 packets in CI; ``test_found.py``: what the fuzzer found, one
  focused test each; ``test_checks.py``: the oracle's own rows;
- ``test_corefile_fuzz.py``: any text through ``instance.build`` and the command.
"""
