# Varnish in front of ghostread: the built-in VCL does the rest (event
# streams are passed and streamed, never cached: they say no-cache). Tested
# as it stands by tests/behind_proxies.rs, with 127.0.0.1:4000 set to the test's
# server; varnishd listens where -a says.
vcl 4.1;

backend ghostread {
    .host = "127.0.0.1";
    .port = "4000";
    .first_byte_timeout = 60s;
    .between_bytes_timeout = 60s;        # above --heartbeat-secs (15)
}
