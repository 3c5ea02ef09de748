"""Built-in plugins, one module or package each, named by the dropin
``twisted/plugins/coredns_builtins.py``."""
