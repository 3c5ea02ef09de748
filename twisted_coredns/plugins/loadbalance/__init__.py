"""loadbalance: reorders the address records of replies (CoreDNS's plugin/loadbalance).

- ``setup``: ``loadbalance [round_robin | weighted WEIGHTFILE] { reload DURATION; prefer CIDR... }``;
- ``handler``: waits for the rest of the chain's reply and reorders it;
- ``reorder``: the policies on a list of records (round robin, weighted top record, preferred
  subnets first), the same whether the records came from the wire or from dnspython;
- ``weights``: the weight file, read and re-read off the reactor thread.
"""
