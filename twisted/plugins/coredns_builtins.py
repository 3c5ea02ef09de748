# The built-in plugins of twisted-coredns, named exactly as a third-party package names its own.
# Setup functions are given by dotted name: nothing is imported until a Corefile uses the plugin.
from twisted_coredns.plugin import Plugin

_P = "twisted_coredns.plugins"

any = Plugin("any", f"{_P}.any.setup", description="RFC 8482 answers to ANY queries")
bind = Plugin("bind", f"{_P}.bind.setup", description="addresses and interfaces to listen on")
cache = Plugin("cache", f"{_P}.cache.setup.setup", description="a cache of replies, in wire format")
chaos = Plugin("chaos", f"{_P}.chaos.setup", description="answers CH class version/authors queries")
dnstap = Plugin("dnstap", f"{_P}.dnstap.setup.setup", description="dnstap messages for every query and reply")
debug = Plugin("debug", f"{_P}.debug.setup", description="debug logging, no crash recovery")
errors = Plugin("errors", f"{_P}.errors.setup.setup", description="logs errors of the plugin chain")
forward = Plugin("forward", f"{_P}.forward.setup.setup", description="forwards queries to upstreams")
hosts = Plugin("hosts", f"{_P}.hosts.setup.setup", description="answers from a hosts file and inline entries")
log = Plugin("log", f"{_P}.log.setup.setup", description="logs every query")
loop = Plugin("loop", f"{_P}.loop.setup", description="detects forwarding loops at start")
multisocket = Plugin("multisocket", f"{_P}.multisocket.setup", description="N worker processes on one port")
root = Plugin("root", f"{_P}.root.setup", description="the directory zone files are relative to")
whoami = Plugin("whoami", f"{_P}.whoami.setup", description="client address and port")
health = Plugin("health", f"{_P}.health.setup.setup", description="/health for liveness probes")
prometheus = Plugin("prometheus", f"{_P}.prometheus.setup.setup", description="metrics on /metrics")
ready = Plugin("ready", f"{_P}.ready.setup.setup", description="/ready for readiness probes")
reload = Plugin("reload", f"{_P}.reload.setup.setup", description="reloads the Corefile when it changes")
timeouts = Plugin("timeouts", f"{_P}.timeouts.setup", description="TCP timeouts and limits")
