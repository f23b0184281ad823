"""The hub's Storage SCP and Verification SCP (PS3.4 Annexes A and B) on pynetdicom.

`start(settings, database, store)` listens on `dimse_port` (and `host`) as
AE `dimse_ae_title` and answers:

- A-ASSOCIATE-RQ: admitted by `Receiver.admit` in an ``EVT_REQUESTED``
  handler, which sends the A-ASSOCIATE-RJ itself when the peer is not
  registered (pynetdicom then skips its own negotiation);
- C-ECHO (Verification SOP Class 1.2.840.10008.1.1): Success;
- C-STORE for every storage SOP class pynetdicom knows, in the transfer
  syntaxes of `TRANSFER_SYNTAXES`: `Receiver.store`. Received data sets are
  written by pynetdicom to a temporary Part 10 file as their PDVs arrive
  (``_config.STORE_RECV_CHUNKED_DATASET``), so memory stays bounded whatever
  the instance weighs; the file is streamed into the blob store from there.

With `dimse_tls` the listener speaks TLS only (PS3.15 B.1, "The Basic TLS
Secure Transport Connection Profile", with BCP 195's TLS 1.2 or newer): the
hub's server certificate, and a client certificate required and verified
against `ca_certs`, so a peer needs both a certificate of a trusted CA and a
registered AE title.

The handlers only translate between pynetdicom events and `Receiver`
(CONVENTIONS 8).
"""

from __future__ import annotations

import io
import logging
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, cast

from pydicom.dataset import Dataset
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AE, AllStoragePresentationContexts, _config, evt
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from hub.db import Database
from hub.security.tls import server_context
from hub.settings import Settings
from repository.blobstore import BlobStore
from repository.dimse.receiver import Receiver
from repository.dimse.statuses import StoreStatus

log = logging.getLogger(__name__)

# PS3.5 Annex A: the native encodings, then the compressed ones pydicom can read the header of (all of them:
# only the pixel data is encapsulated). Referenced-pixel (JPIP) syntaxes are left out: no pixel data to store.
NATIVE_TRANSFER_SYNTAXES = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian,
                            ExplicitVRBigEndian)
TRANSFER_SYNTAXES = NATIVE_TRANSFER_SYNTAXES + (
    JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1, JPEGLSLossless, JPEGLSNearLossless,
    JPEG2000Lossless, JPEG2000, HTJ2KLossless, HTJ2KLosslessRPCL, HTJ2K, RLELossless,
)
MAXIMUM_PDU_SIZE = 256 * 1024      # what the hub accepts per P-DATA-TF PDU (PS3.8 D.1, Maximum Length)

__all__ = ["TRANSFER_SYNTAXES", "Listener", "application_entity", "ssl_context", "start"]


def application_entity(settings: Settings) -> AE:
    """The hub's AE: Verification and every storage SOP class as SCP, nothing as SCU."""
    ae = AE(ae_title=settings.dimse_ae_title)
    ae.maximum_pdu_size = MAXIMUM_PDU_SIZE
    ae.add_supported_context(Verification, list(NATIVE_TRANSFER_SYNTAXES))
    for context in AllStoragePresentationContexts:
        if context.abstract_syntax is not None:
            ae.add_supported_context(context.abstract_syntax, list(TRANSFER_SYNTAXES))
    # The Called AE Title is checked by Receiver.admit, which also records the refusal.
    ae.require_called_aet = False
    ae.require_calling_aet = []
    return ae


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """Server side TLS: the hub's certificate; client certificates required, verified against ca_certs."""
    return server_context(settings, ssl.CERT_REQUIRED)


# -- event handlers: pynetdicom in, Receiver out ------------------------------------------------------------------

def _requested(event: evt.Event, receiver: Receiver) -> None:
    assoc = event.assoc
    request = assoc.requestor.primitive
    if request is None:      # pynetdicom triggers EVT_REQUESTED only with the A-ASSOCIATE-RQ received
        return
    rejection = receiver.admit(assoc, str(request.calling_ae_title), str(request.called_ae_title),
                               assoc.requestor.address)
    if rejection is not None:
        # PS3.8 7.1.1.9: result 1 rejected-permanent, source 1 DICOM UL service-user
        assoc.acse.send_reject(0x01, 0x01, rejection.diagnostic)
        evt.trigger(assoc, evt.EVT_REJECTED, {})
        assoc.kill()      # as pynetdicom's own rejection does: the DUL sends the A-ASSOCIATE-RJ, then stops


def _echo(_event: evt.Event) -> int:
    return int(StoreStatus.SUCCESS)


def _instance_opener(event: evt.Event) -> Callable[[], BinaryIO]:
    """The received data set as a Part 10 stream: pynetdicom's temporary file, else its bytes."""
    try:
        path = Path(event.dataset_path)
    except AttributeError:
        data = event.encoded_dataset(include_meta=True)
        return lambda: io.BytesIO(data)
    return lambda: path.open("rb")


def _store(event: evt.Event, receiver: Receiver) -> int | Dataset:
    request = cast(C_STORE, event.request)
    refusal = receiver.store(event.assoc, _instance_opener(event), str(request.AffectedSOPClassUID),
                             str(request.AffectedSOPInstanceUID))
    return int(StoreStatus.SUCCESS) if refusal is None else refusal.as_dataset()


def _closed(event: evt.Event, receiver: Receiver) -> None:
    receiver.finish(event.assoc)


class Listener:
    """A running SCP: `stop` aborts open associations, writes their audit records and closes the port."""

    def __init__(self, ae: AE, server: ThreadedAssociationServer, receiver: Receiver) -> None:
        self.ae = ae
        self.server = server
        self.receiver = receiver

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self) -> None:
        self.ae.shutdown()
        self.receiver.finish_all()


def start(settings: Settings, database: Database, store: BlobStore, *, port: int | None = None) -> Listener:
    """Listen on (settings.host, port or settings.dimse_port) in background threads until `stop`."""
    # Received data sets go to a temporary file, not memory (pynetdicom reads this flag per message).
    _config.STORE_RECV_CHUNKED_DATASET = True
    receiver = Receiver(settings, database, store)
    ae = application_entity(settings)
    handlers: list[Any] = [
        (evt.EVT_REQUESTED, _requested, [receiver]),
        (evt.EVT_C_ECHO, _echo),
        (evt.EVT_C_STORE, _store, [receiver]),
        (evt.EVT_CONN_CLOSE, _closed, [receiver]),
    ]
    context = ssl_context(settings) if settings.dimse_tls else None
    address = (settings.host, settings.dimse_port if port is None else port)
    server = ae.start_server(address, block=False, evt_handlers=handlers, ssl_context=context)
    assert server is not None
    listener = Listener(ae, server, receiver)
    log.info("DIMSE listener %s on %s:%d%s", settings.dimse_ae_title, settings.host, listener.port,
             " (TLS)" if context else "")
    return listener
