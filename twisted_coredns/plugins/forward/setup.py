"""``forward FROM TO... { ... }``: every option CoreDNS has, its defaults and its error messages.

Options are read before the **TO** addresses, as CoreDNS reads them (``resolver`` must be known to
resolve hostnames). Errors CoreDNS raises with the dispenser carry the file and line; the others
are bare messages, both prefixed ``plugin/forward: `` by the framework. Several ``forward`` lines in
one block become a chain, each passing on to the next (see ``Forward.next``).
"""

from __future__ import annotations

import itertools
from typing import Any

from ...address import host_zones
from ...clog import PluginLogger
from ...corefile.errors import CorefileError
from ...corefile.model import Directive
from ...dns import Zones
from ...duration import format_duration, parse_duration_ns
from ...plugin import Controller
from ...server.tlsconfig import client_tls_paths, read_ca, read_cert_pair
from ...strconv import atoi, go_quote, parse_uint
from . import addresses
from .addresses import HTTPS, TLS, AddressError
from .forward import Forward
from .policy import POLICIES, Random
from .proxy import Proxy

_log = PluginLogger("forward")

MAX_UPSTREAMS = 15

# miekg's dns.StringToRcode.
RCODES = {
    "NOERROR": 0,
    "FORMERR": 1,
    "SERVFAIL": 2,
    "NXDOMAIN": 3,
    "NOTIMP": 4,
    "NOTIMPL": 4,
    "REFUSED": 5,
    "YXDOMAIN": 6,
    "YXRRSET": 7,
    "NXRRSET": 8,
    "NOTAUTH": 9,
    "NOTZONE": 10,
    "DSOTYPENI": 11,
    "BADSIG": 16,
    "BADKEY": 17,
    "BADTIME": 18,
    "BADMODE": 19,
    "BADNAME": 20,
    "BADALG": 21,
    "BADTRUNC": 22,
    "BADCOOKIE": 23,
}


class _Options:
    """What a stanza's block sets, before the upstreams exist."""

    def __init__(self) -> None:
        self.tls: tuple[Any, Any] | None = None
        self.tls_servername = ""
        self.expire_ns = 10 * 1_000_000_000
        self.max_age_ns = 0
        self.read_timeout_ns = 2 * 1_000_000_000
        self.max_idle_conns = 0
        self.doh_method = "POST"
        self.hc_recursion_desired = True
        self.hc_domain = "."
        self.resolvers: list[str] = []
        self.source_address: str | None = None


def _duration(text: str) -> int:
    return parse_duration_ns(text)


def _one_arg(c: Controller, prop: Directive) -> str:
    if len(prop.args) != 1:
        if not prop.args:
            raise c.arg_error(prop.token)
        # caddy's NextArg takes one word; CoreDNS's block loop then reads the next word as the
        # next property, so an extra argument is reported as an unknown property.
        raise c.err(prop.args[1], f"unknown property '{prop.args[1].text}'")
    return prop.args[0].text


def _flag(c: Controller, prop: Directive) -> None:
    if prop.args:
        raise c.arg_error(prop.args[0])


def _rcodes(c: Controller, prop: Directive, failover: bool) -> frozenset[int]:
    if not prop.args:
        raise c.arg_error(prop.token)
    codes = []
    for tok in prop.args:
        rc = RCODES.get(tok.text.upper())
        if rc is None:
            raise ValueError(f"{tok.text} is not a valid rcode")
        if failover and rc == 0:
            raise ValueError("NoError cannot be used in failover")
        codes.append(rc)
    return frozenset(codes)


def _parse_block(c: Controller, prop: Directive, f: Forward, o: _Options) -> None:
    name = prop.name
    if prop.block is not None and prop.open_brace is not None:
        raise c.err(prop.open_brace, "unknown property '{'")
    if name == "except":
        if not prop.args:
            raise c.arg_error(prop.token)
        f.ignored = Zones([*f.ignored, *(z for tok in prop.args for z in host_zones(tok.text))])
    elif name == "max_fails":
        f.max_fails = parse_uint(_one_arg(c, prop), 32)
    elif name == "max_connect_attempts":
        f.max_connect_attempts = parse_uint(_one_arg(c, prop), 32)
        f.max_connect_attempts_set = True
    elif name == "health_check":
        if not prop.args:
            raise c.arg_error(prop.token)
        ns = _duration(prop.args[0].text)
        if ns < 0:
            raise ValueError(f"health_check can't be negative: {ns}")
        f.hc_interval = ns / 1e9
        o.hc_domain = "."
        rest = prop.args[1:]
        i = 0
        while i < len(rest):
            opt = rest[i].text
            if opt == "no_rec":
                o.hc_recursion_desired = False
            elif opt == "domain":
                if i + 1 >= len(rest):
                    raise c.arg_error(rest[i])
                i += 1
                domain = rest[i].text
                if not addresses.is_domain_name(domain):
                    raise ValueError(f"health_check: invalid domain name {domain}")
                o.hc_domain = (domain if domain.endswith(".") else domain + ".").lower()
            else:
                raise ValueError(f"health_check: unknown option {opt}")
            i += 1
    elif name == "force_tcp":
        _flag(c, prop)
        f.force_tcp = True
    elif name == "prefer_udp":
        _flag(c, prop)
        f.prefer_udp = True
    elif name == "tls":
        if len(prop.args) > 3:
            raise c.arg_error(prop.args[-1])
        o.tls = tls_material([a.text for a in prop.args], c.config.root)
    elif name == "tls_servername":
        o.tls_servername = _one_arg(c, prop)
    elif name == "expire":
        ns = _duration(_one_arg(c, prop))
        if ns < 0:
            raise ValueError(f"expire can't be negative: {format_duration(ns)}")
        o.expire_ns = ns
    elif name == "max_age":
        ns = _duration(_one_arg(c, prop))
        if ns < 0:
            raise ValueError(f"max_age can't be negative: {format_duration(ns)}")
        o.max_age_ns = ns
    elif name == "max_idle_conns":
        n = atoi(_one_arg(c, prop))
        if n < 0:
            raise ValueError(f"max_idle_conns can't be negative: {n}")
        o.max_idle_conns = n
    elif name == "read_timeout":
        ns = _duration(_one_arg(c, prop))
        if ns <= 0:
            raise ValueError(f"read_timeout must be positive: {format_duration(ns)}")
        o.read_timeout_ns = ns
    elif name == "doh_method":
        method = _one_arg(c, prop)
        if method not in ("POST", "GET"):
            raise ValueError("doh_method must be either POST or GET")
        o.doh_method = method
    elif name == "policy":
        value = _one_arg(c, prop)
        policy = POLICIES.get(value)
        if policy is None:
            raise c.err(prop.args[0], f"unknown policy '{value}'")
        f.policy = policy()
    elif name == "max_concurrent":
        text = _one_arg(c, prop)
        n = atoi(text)
        if n < 0:
            raise ValueError(f"max_concurrent can't be negative: {n}")
        f.limit_error = "concurrent queries exceeded maximum " + text
        f.max_concurrent = n
    elif name == "next":
        f.next_rcodes = _rcodes(c, prop, failover=False)
    elif name == "next_on_nodata":
        _flag(c, prop)
        f.next_on_nodata = True
    elif name == "failfast_all_unhealthy_upstreams":
        _flag(c, prop)
        f.failfast = True
    elif name == "failover":
        f.failover_rcodes = _rcodes(c, prop, failover=True)
    elif name == "resolver":
        if not prop.args:
            raise c.arg_error(prop.token)
        for tok in prop.args:
            host = tok.text
            try:
                host = addresses.split_host_port(tok.text)[0]
            except AddressError:
                pass
            if not addresses.parse_ip(host):
                raise ValueError(f"resolver must be an IP address or IP:port: {go_quote(tok.text)}")
        o.resolvers = [t.text for t in prop.args]
    elif name == "source_address":
        text = _one_arg(c, prop)
        if not addresses.parse_ip(text):
            raise c.err(prop.args[0], f"invalid IP address: {text}")
        import ipaddress

        ip = ipaddress.ip_address(text)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        o.source_address = str(ip)
    else:
        raise c.unknown_property(prop)


def tls_material(args: list[str], root: str = "") -> tuple[Any, Any]:
    """The client certificate and trust root of ``tls [CERT KEY CA]`` (CoreDNS's
    ``NewTLSConfigFromArgs``), loaded when the option is read, as CoreDNS loads them; etcd's
    ``tls`` reads its arguments here too."""
    from twisted.internet import ssl

    cert_path, key_path, ca_path = client_tls_paths(args, root)
    client_cert = None
    if cert_path:
        cert_pem, key_pem = read_cert_pair(cert_path, key_path)
        try:
            client_cert = ssl.PrivateCertificate.loadPEM(cert_pem + b"\n" + key_pem)
        except Exception as exc:
            raise ValueError(f"could not load TLS cert: {exc}") from None
    trust: Any
    if ca_path:
        pem = read_ca(ca_path)
        try:
            trust = ssl.trustRootFromCertificates(
                [ssl.Certificate.loadPEM(block) for block in _pem_blocks(pem)]
            )
        except Exception:
            raise ValueError("could not read root certs: <nil>") from None
    else:
        trust = ssl.platformTrust()
    return client_cert, trust


def _tls_creator(material: tuple[Any, Any] | None, server_name: str, host: str) -> Any:
    """A Twisted client TLS connection creator: TLS 1.2 at least, the server checked against
    ``server_name`` (or the address when there is none, as Go checks it)."""
    from twisted.internet import ssl

    client_cert, trust = material if material is not None else tls_material([])
    return ssl.optionsForClientTLS(
        server_name or host,
        trustRoot=trust,
        clientCertificate=client_cert,
        extraCertificateOptions={"raiseMinimumTo": ssl.TLSVersion.TLSv1_2},
    )


def _pem_blocks(pem: bytes) -> list[bytes]:
    marker = b"-----END CERTIFICATE-----"
    blocks = [part + marker for part in pem.split(marker) if b"-----BEGIN CERTIFICATE-----" in part]
    if not blocks:
        raise ValueError("no certificates")
    return blocks


def _parse_stanza(c: Controller, d: Directive) -> tuple[Forward, int]:
    f = Forward(c.reactor)
    f.policy = Random()
    if not d.args:
        raise c.arg_error(d.token)
    orig_from = d.args[0].text
    zones = host_zones(orig_from)
    if not zones:
        raise ValueError(f"unable to normalize '{orig_from}'")
    f.from_zone = zones[0]
    if len(zones) > 1:
        _log.warning(
            f"Unsupported CIDR notation: '{orig_from}' expands to multiple zones. Using only '{f.from_zone}'."
        )
    to = [t.text for t in d.args[1:]]
    if not to:
        raise c.arg_error(d.args[0])
    o = _Options()
    for prop in d.block or []:
        _parse_block(c, prop, f, o)
    if o.max_age_ns > 0 and o.max_age_ns < o.expire_ns:
        raise ValueError(
            f"max_age ({format_duration(o.max_age_ns)}) must not be less than "
            f"expire ({format_duration(o.expire_ns)})"
        )
    for addr in to:
        trans, h = addresses.transport(addr)
        if trans == HTTPS and "/" in h:
            raise ValueError(
                "paths are not allowed in HTTPS upstream addresses (the /dns-query path is used by default): "
                + addr
            )
    entries = addresses.classify(to)
    hosts = addresses.expand(entries, o.resolvers)
    if not hosts:
        raise ValueError("no valid upstream addresses found")
    for host_with_zone in hosts:
        host, server_name = addresses.split_zone(host_with_zone)
        trans, h = addresses.transport(host)
        if trans not in ("dns", TLS, HTTPS):
            raise ValueError(f"'{trans}' is not supported as a destination protocol in forward: {host}")
        if trans == TLS and server_name and o.tls_servername:
            raise ValueError(
                f"both forward ('{o.tls_servername}') and proxy level ('{server_name}') TLS servernames "
                f"are set for upstream proxy '{host}'"
            )
        p = Proxy(h, trans, c.reactor)
        if trans == TLS:
            p.tls = _tls_creator(o.tls, o.tls_servername or server_name, p.host)
        elif trans == HTTPS:
            from .doh import DoHClient

            p.doh = DoHClient(
                p,
                c.reactor,
                method=o.doh_method,
                tls=_tls_creator(o.tls, o.tls_servername or server_name, p.host),
                server_name=o.tls_servername or server_name,
            )
        p.expire = o.expire_ns / 1e9
        p.max_age = o.max_age_ns / 1e9
        p.max_idle_conns = o.max_idle_conns
        p.read_timeout = o.read_timeout_ns / 1e9
        p.source_address = o.source_address
        p.health.recursion_desired = o.hc_recursion_desired
        p.health.domain = o.hc_domain
        p.health.tcp = f.force_tcp and trans != TLS
        f.proxies.append(p)
    return f, len(entries)


def setup(c: Controller) -> Forward:
    forwards: list[tuple[Forward, int]] = []
    for d in c.directives:
        try:
            forwards.append(_parse_stanza(c, d))
        except AddressError as exc:
            raise ValueError(str(exc)) from None
    for _f, count in forwards:
        if count > MAX_UPSTREAMS:
            raise CorefileError(f"more than {MAX_UPSTREAMS} TOs configured: {count}")
    chain = [f for f, _ in forwards]
    for current, following in itertools.pairwise(chain):
        current.follow_with(following)
    for f in chain:
        f.probe_at_start = c.config.watch_ready
        c.on_startup(f.on_startup)
        c.on_shutdown(f.on_shutdown)
    # CoreDNS's EnableChaos: forwarded queries may be of any class.
    c.config.enable_chaos = True
    return chain[0]

