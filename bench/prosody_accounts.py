#!/usr/bin/env python3
"""Writes Prosody accounts into its internal store (mod_auth_internal_hashed, SHA-1), as
prosodyctl register would: data/<host>/accounts/<user>.dat with salt, iteration count and the
hex StoredKey/ServerKey of RFC 5802. Usage: prosody_accounts.py DATA HOST COUNT PASSWORD"""
import hashlib, hmac, os, sys, uuid

data, host, count, password = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
iterations = 4096
# Prosody encodes '.' in path components as %2e.
folder = os.path.join(data, host.replace(".", "%2e"), "accounts")
os.makedirs(folder, exist_ok=True)
for n in range(1, count + 1):
    salt = str(uuid.uuid4())
    salted = hashlib.pbkdf2_hmac("sha1", password.encode(), salt.encode(), iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha1).digest()
    stored_key = hashlib.sha1(client_key).hexdigest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha1).hexdigest()
    with open(os.path.join(folder, f"user{n}.dat"), "w") as f:
        f.write('return {\n\t["iteration_count"] = %d;\n\t["salt"] = "%s";\n'
                '\t["server_key"] = "%s";\n\t["stored_key"] = "%s";\n};\n'
                % (iterations, salt, server_key, stored_key))
