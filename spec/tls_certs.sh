#!/bin/sh
# tls_certs.sh DIR -- test certificates for the TLS tests, made with the
# openssl CLI only (about a second):
#   ca.pem / ca.key            the test CA
#   server.pem / server.key    signed by it: SAN DNS:localhost, IP:127.0.0.1
#   client.pem / client.key    signed by it, for mutual TLS
#   other-ca.pem               an unrelated CA (verification must fail)
#   server-chain.pem           server.pem followed by ca.pem (a server
#                              sending its root: "self-signed certificate
#                              in certificate chain" for a stranger)
#   wrong.pem / wrong.key      signed by the test CA, SAN DNS:wrong.example
# Every certificate has EKU serverAuth,clientAuth. Existing files are
# overwritten. Exits non-zero on the first failure.
set -eu
dir=${1:?usage: tls_certs.sh DIR}
mkdir -p "$dir"
cd "$dir"

ca() { # ca NAME SUBJECT
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 30 \
        -keyout "$1.key" -out "$1.pem" -subj "$2" \
        -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}

leaf() { # leaf NAME SUBJECT SAN
    openssl req -newkey rsa:2048 -nodes -sha256 -keyout "$1.key" \
        -out "$1.csr" -subj "$2" 2>/dev/null
    printf '%s\n' "subjectAltName=$3" \
        "extendedKeyUsage=serverAuth,clientAuth" \
        "keyUsage=critical,digitalSignature,keyEncipherment" \
        "basicConstraints=CA:FALSE" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key \
        -CAcreateserial -days 30 -sha256 -extfile "$1.ext" \
        -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}

ca ca "/CN=cachert test CA"
ca other-ca "/CN=cachert unrelated CA"
leaf server "/CN=localhost" "DNS:localhost,IP:127.0.0.1"
leaf client "/CN=cachert test client" "DNS:client.example"
leaf wrong "/CN=wrong.example" "DNS:wrong.example"
cat server.pem ca.pem >server-chain.pem
rm -f ca.srl other-ca.key
