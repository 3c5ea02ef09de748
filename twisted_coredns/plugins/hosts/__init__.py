"""hosts: answers from a hosts(5) file and inline entries (CoreDNS's plugin/hosts)."""
