-- Prosody for bench/compare.sh: a private instance on loopback, STARTTLS required, SCRAM-SHA-1
-- storage (internal_hashed) with 4096 iterations, no mod_limits (no rate limits), no s2s.
-- @WORK@ is replaced by the script.
run_as_root = true
daemonize = false
pidfile = "@WORK@/prosody/prosody.pid"
data_path = "@WORK@/prosody/data"
plugin_paths = {}
c2s_ports = { 25222 }
c2s_direct_tls_ports = {}
s2s_ports = {}
component_ports = {}
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "presence" }
modules_disabled = { "s2s"; "offline"; "c2s_limits"; "limits" }
authentication = "internal_hashed"
default_iteration_count = 4096
c2s_require_encryption = true
allow_registration = false
storage = "internal"
log = { warn = "@WORK@/prosody/prosody.log" }
certificate = "@WORK@/cert/cert.pem"
ssl = { certificate = "@WORK@/cert/cert.pem"; key = "@WORK@/cert/key.pem" }
VirtualHost "localhost"
    ssl = { certificate = "@WORK@/cert/cert.pem"; key = "@WORK@/cert/key.pem" }
