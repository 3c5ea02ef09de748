"""rewrite: rewrites queries before the rest of the chain sees them, and their replies on the way
back (CoreDNS's plugin/rewrite). ``setup`` reads the rules, ``rules`` and ``edns0`` hold the rule
types, ``answers`` the reply rewriters, ``handler`` the plugin itself."""
