"""Security: development PKI, TLS client identity, OAuth2 (IUA style) and policy."""
