#!/bin/sh
# make demo: not yet. The demo (SMTPS and STARTTLS sessions on 127.0.0.1)
# arrives with deferred TLS; see the README.
echo "make demo: not yet - the demo needs deferred TLS (STARTTLS), which is not built yet."
echo "Run 'make check' to see sslserver's immediate TLS tested against real peers."
