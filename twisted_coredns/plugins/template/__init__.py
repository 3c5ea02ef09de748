"""template: answers built from Go templates of regex matches (CoreDNS's plugin/template).

- ``gotemplate``: the Go text/template subset, parsed at setup;
- ``rr``: a rendered record read as miekg's ``dns.NewRR`` reads it;
- ``handler``: matching (class, type, zone, regex, ``var``/``expr``), rendering, ``upstream``;
- ``setup``: ``template CLASS TYPE [ZONE...] { ... }`` with CoreDNS's error texts.
"""
