# The `twistd coredns` subcommand. Kept tiny: twistd imports every dropin at each start.
from twisted.application.service import ServiceMaker

coredns = ServiceMaker(
    "twisted-coredns",
    "twisted_coredns.tap",
    "A DNS server that reads CoreDNS Corefiles.",
    "coredns",
)
