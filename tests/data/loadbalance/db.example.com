; The zone of loadbalance's README example (coredns/coredns plugin/loadbalance/README.md, Apache-2.0).
$ORIGIN example.com.
@   3600 IN SOA ns.example.com. admin.example.com. 1 7200 3600 1209600 3600
    3600 IN NS  ns.example.com.
ns  3600 IN A   127.0.0.1
www 3600 IN A   100.64.1.1
www 3600 IN A   100.64.1.2
www 3600 IN A   100.64.1.3
