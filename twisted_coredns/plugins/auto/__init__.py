"""auto: serves every zone file of a directory whose name matches a pattern (CoreDNS's
plugin/auto). ``setup`` reads the directive; ``handler`` walks the directory and answers through
the ``file`` plugin's zones and lookup."""
