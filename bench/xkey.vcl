vcl 4.1;
# The xkey VCL of shared/reference/varnish-bench.md: PURGE by surrogate key, hard
# (xkey-purge) or soft (xkey-softpurge), and counted URL purges; the purged count is in
# X-Purged-Count. bench/cluster.py fills in ${backend_port} and ${grace}.

import std;
import xkey;
import purge;

backend origin {
    .host = "127.0.0.1";
    .port = "${backend_port}";
    .connect_timeout = 1s;
    .first_byte_timeout = 30s;
    .between_bytes_timeout = 10s;
    .probe = { .url = "/healthz"; .interval = 2s; .timeout = 1s; .window = 3; .threshold = 2; .initial = 3; }
}

acl purgers { "127.0.0.1"; "::1"; }

sub vcl_recv {
    unset req.http.x-purged;    # internal header, never trust the client's
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(403, "Forbidden"));
        }
        if (req.http.xkey-purge) {
            set req.http.x-purged = xkey.purge(req.http.xkey-purge);
            return (synth(200, "Purged " + req.http.x-purged));
        }
        if (req.http.xkey-softpurge) {
            set req.http.x-purged = xkey.softpurge(req.http.xkey-softpurge);
            return (synth(200, "Softpurged " + req.http.x-purged));
        }
        # one URL: look the object up (URL + Host, P6) and purge it in vcl_hit/vcl_miss
        return (hash);
    }
    if (req.url == "/wrk-idle") {
        return (synth(204, "Idle"));  # bench/lua/each.lua idles spare connections here
    }
    if (req.method != "GET" && req.method != "HEAD") { return (pass); }
    if (req.url ~ "^/(metrics|healthz|admin)") { return (pass); }
    unset req.http.Cookie;
    return (hash);
}

sub vcl_backend_response {
    # xkey reads only the xkey header (P5)
    if (beresp.http.Surrogate-Key) {
        set beresp.http.xkey = beresp.http.Surrogate-Key;
    }
    set beresp.grace = ${grace}s;
}

sub vcl_hit {
    if (req.method == "PURGE") {
        set req.http.x-purged = purge.hard();
        return (synth(200, "Purged " + req.http.x-purged));
    }
}

sub vcl_miss {
    if (req.method == "PURGE") {
        set req.http.x-purged = purge.hard();
        return (synth(200, "Purged " + req.http.x-purged));
    }
}

sub vcl_synth {
    if (req.method == "PURGE") {
        set resp.http.Content-Type = "application/json";
        if (req.http.x-purged) {
            set resp.http.X-Purged-Count = req.http.x-purged;
            synthetic({"{"status":"ok","purged":"} + req.http.x-purged + {"}"});
        } else {
            synthetic({"{"status":""} + resp.reason + {"""} + "}");
        }
        return (deliver);
    }
}

sub vcl_deliver {
    # STALE: served in grace, e.g. right after a soft purge (P11)
    if (obj.hits > 0 && obj.ttl <= 0s) {
        set resp.http.X-Cache = "STALE";
    } else if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
    set resp.http.X-Cache-Hits = obj.hits;
    unset resp.http.xkey;
}
