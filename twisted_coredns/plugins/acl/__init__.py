"""acl: allows, blocks, filters or drops queries by source address and type (CoreDNS's plugin/acl).

- ``setup``: reads ``acl [ZONES...] { ACTION [type QTYPE...] [net SOURCE...] }`` into rules;
- ``handler``: walks the rules in order; the first policy that matches decides.
"""
