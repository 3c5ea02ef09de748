# Names the greet plugin for twisted.plugin.getPlugins. No __init__.py here or in twisted/.
# The same object as the entry point, so the registry sees one plugin, not two.
from coredns_greet import plugin as greet

__all__ = ["greet"]
