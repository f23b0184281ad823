"""Headless Debian Chromium under Playwright for the browser tests, trusting the hub's certificate by pinning its
public key (--ignore-certificate-errors-spki-list), not by ignoring certificate errors.

Importing this module skips the importing test module when Playwright or Chromium is missing, saying which.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

CHROMIUM = Path(os.environ.get("XDSHUB_CHROMIUM", "/usr/bin/chromium"))

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
if not CHROMIUM.exists():
    pytest.skip(f"Chromium is not installed at {CHROMIUM} (Debian package chromium; .ci/run installs it)",
                allow_module_level=True)


def spki_pin(certificate: Path) -> str:
    """Base64 SHA-256 of the certificate's SubjectPublicKeyInfo, as Chromium's pin list wants it."""
    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    der = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def launch_chromium(playwright: Any, server_certificate: Path) -> Any:
    """Headless Chromium trusting exactly the hub's server key."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
              f"--ignore-certificate-errors-spki-list={spki_pin(server_certificate)}"])
