# The built-in plugins of twisted-coredns, named exactly as a third-party package names its own.
# Setup functions are given by dotted name: nothing is imported until a Corefile uses the plugin.
from twisted_coredns.plugin import Plugin

_P = "twisted_coredns.plugins"

acl = Plugin("acl", f"{_P}.acl.setup.setup", description="allows, blocks, filters or drops queries by source")
any = Plugin("any", f"{_P}.any.setup", description="RFC 8482 answers to ANY queries")
auto = Plugin("auto", f"{_P}.auto.setup.setup", description="serves the zone files of a directory")
autopath = Plugin(
    "autopath", f"{_P}.autopath.setup.setup", description="the client's search path, on the server"
)
bind = Plugin("bind", f"{_P}.bind.setup", description="addresses and interfaces to listen on")
bufsize = Plugin("bufsize", f"{_P}.bufsize.setup", description="caps the EDNS buffer size of queries")
cache = Plugin("cache", f"{_P}.cache.setup.setup", description="a cache of replies, in wire format")
cancel = Plugin("cancel", f"{_P}.cancel.setup", description="a deadline for the rest of the chain")
chaos = Plugin("chaos", f"{_P}.chaos.setup", description="answers CH class version/authors queries")
debug = Plugin("debug", f"{_P}.debug.setup", description="debug logging, no crash recovery")
dns64 = Plugin("dns64", f"{_P}.dns64.setup.setup", description="AAAA synthesized from A for NAT64 (RFC 6147)")
dnssec = Plugin(
    "dnssec", f"{_P}.dnssec.setup.setup", description="signs replies on the fly (DNSSEC, NSEC black lies)"
)
dnstap = Plugin("dnstap", f"{_P}.dnstap.setup.setup", description="dnstap messages for every query and reply")
erratic = Plugin(
    "erratic", f"{_P}.erratic.setup.setup", description="answers erratically, for testing clients"
)
errors = Plugin("errors", f"{_P}.errors.setup.setup", description="logs errors of the plugin chain")
etcd = Plugin("etcd", f"{_P}.etcd.setup.setup", description="SkyDNS service discovery from etcd")
file = Plugin("file", f"{_P}.file.setup.setup", description="authoritative answers from zone files")
forward = Plugin("forward", f"{_P}.forward.setup.setup", description="forwards queries to upstreams")
geoip = Plugin("geoip", f"{_P}.geoip.setup.setup", description="the client's place and network, as metadata")
grpc = Plugin("grpc", f"{_P}.grpc.setup.setup", description="relays queries to gRPC upstreams")
grpc_server = Plugin("grpc_server", f"{_P}.grpc_server.setup", description="gRPC server limits")
header = Plugin("header", f"{_P}.header.setup", description="sets or clears AA, RA and RD")
health = Plugin("health", f"{_P}.health.setup.setup", description="/health for liveness probes")
hosts = Plugin("hosts", f"{_P}.hosts.setup.setup", description="answers from a hosts file and inline entries")
https = Plugin("https", f"{_P}.https.setup", description="options of the DNS-over-HTTPS server")
https3 = Plugin("https3", f"{_P}.https3.setup", description="DNS-over-HTTP/3 server limits")
loadbalance = Plugin("loadbalance", f"{_P}.loadbalance.setup.setup", description="reorders address records")
local = Plugin("local", f"{_P}.local.setup", description="answers localhost and RFC 6303 reverse zones")
log = Plugin("log", f"{_P}.log.setup.setup", description="logs every query")
loop = Plugin("loop", f"{_P}.loop.setup", description="detects forwarding loops at start")
metadata = Plugin("metadata", f"{_P}.metadata.setup", description="collects metadata for each query")
minimal = Plugin("minimal", f"{_P}.minimal.setup", description="drops authority and additional sections")
multisocket = Plugin("multisocket", f"{_P}.multisocket.setup", description="N worker processes on one port")
nsid = Plugin("nsid", f"{_P}.nsid.setup", description="the EDNS NSID option in replies")
on = Plugin("on", f"{_P}.on.setup.setup", description="runs commands at startup and shutdown")
prometheus = Plugin("prometheus", f"{_P}.prometheus.setup.setup", description="metrics on /metrics")
proxyproto = Plugin(
    "proxyproto", f"{_P}.proxyproto.setup.setup", description="client addresses from PROXY protocol headers"
)
quic = Plugin("quic", f"{_P}.quic.setup", description="DNS-over-QUIC server limits")
ready = Plugin("ready", f"{_P}.ready.setup.setup", description="/ready for readiness probes")
reload = Plugin("reload", f"{_P}.reload.setup.setup", description="reloads the Corefile when it changes")
rewrite = Plugin("rewrite", f"{_P}.rewrite.setup.setup", description="rewrites queries and their replies")
root = Plugin("root", f"{_P}.root.setup", description="the directory zone files are relative to")
secondary = Plugin(
    "secondary", f"{_P}.secondary.setup.setup", description="zones transferred in from primaries"
)
shed = Plugin(
    "shed", f"{_P}.shed.setup.setup", description="drops UDP queries past a bound of unanswered ones"
)
sign = Plugin("sign", f"{_P}.sign.setup.setup", description="signs zone files offline (DNSSEC, NSEC)")
template = Plugin(
    "template", f"{_P}.template.setup.setup", description="answers from templates of regex matches"
)
timeouts = Plugin("timeouts", f"{_P}.timeouts.setup", description="TCP timeouts and limits")
tls = Plugin(
    "tls", f"{_P}.tls.setup.setup", description="certificates for the DoT, DoH, DoQ and gRPC servers"
)
trace = Plugin("trace", f"{_P}.trace.setup.setup", description="spans per query and per plugin, to Zipkin")
transfer = Plugin(
    "transfer", f"{_P}.transfer.setup.setup", description="zone transfers out (AXFR, IXFR) and NOTIFY"
)
tsig = Plugin("tsig", f"{_P}.tsig.setup.setup", description="TSIG keys: checks signed queries, signs replies")
view = Plugin(
    "view", f"{_P}.view.setup.setup", description="serves a block only to queries its expressions accept"
)
whoami = Plugin("whoami", f"{_P}.whoami.setup", description="client address and port")
