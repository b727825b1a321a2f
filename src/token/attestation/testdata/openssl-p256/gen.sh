#!/bin/sh
# A synthetic P-256 attestation hierarchy made by OpenSSL 3.0: root -> F9 -> slot 9a, valid from
# the day it is made for about a century; an independent implementation's chain for the
# verifier's tests and its fuzz target. Run in this directory; the private keys are deleted.
set -e
openssl ecparam -name prime256v1 -genkey -noout -out root.key
openssl ecparam -name prime256v1 -genkey -noout -out f9.key
openssl ecparam -name prime256v1 -genkey -noout -out slot.key
cat > ext.cnf <<'CNF'
[root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign
[f9]
basicConstraints = critical, CA:TRUE, pathlen:0
1.3.6.1.4.1.41482.3.3 = DER:05:07:04
[slot]
1.3.6.1.4.1.41482.3.3 = DER:05:07:04
1.3.6.1.4.1.41482.3.7 = DER:02:04:00:98:96:81
1.3.6.1.4.1.41482.3.8 = DER:03:02
1.3.6.1.4.1.41482.3.9 = DER:03
CNF
openssl req -new -x509 -key root.key -subj "/CN=OpenSSL Test Attestation Root" -days 36500 -sha256 -extensions root -config ext.cnf -out root.pem 2>/dev/null || \
openssl req -new -x509 -key root.key -subj "/CN=OpenSSL Test Attestation Root" -days 36500 -sha256 -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" -out root.pem
openssl req -new -key f9.key -subj "/CN=Yubico PIV Attestation" -out f9.csr
openssl x509 -req -in f9.csr -CA root.pem -CAkey root.key -set_serial 0x0102 -days 36000 -sha256 -extfile ext.cnf -extensions f9 -out f9.pem
openssl req -new -key slot.key -subj "/CN=YubiKey PIV Attestation 9a" -out slot.csr
openssl x509 -req -in slot.csr -CA f9.pem -CAkey f9.key -set_serial 0x0103 -days 35000 -sha256 -extfile ext.cnf -extensions slot -out slot.pem
openssl verify -CAfile root.pem -untrusted f9.pem slot.pem
mv slot.pem slot-9a.pem
rm -f root.key f9.key slot.key f9.csr slot.csr ext.cnf
