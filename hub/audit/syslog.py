"""Audit records as syslog messages (RFC 5424) in octet-counted TLS framing (RFC 5425), as ATNA sends them.

IHE ITI-20 Record Audit Event (ITI TF-2 3.20.6) carries each DICOM audit
message (PS3.15 A.5.1) as the MSG of one RFC 5424 syslog message:

    <PRI>1 TIMESTAMP HOSTNAME xdshub - IHE+RFC-3881 [xdshub@32473 seq="N"] BOM<AuditMessage .../>

- PRI = facility 10 (security/authorization, "authpriv") * 8 + severity:
  5 (notice) for a successful event, 4 (warning) for any failure
  (EventOutcomeIndicator 4, 8 or 12);
- TIMESTAMP is when the record was written, RFC 3339 in UTC with
  microseconds (RFC 5424 6.2.3, TIME-SECFRAC of at most six digits);
- STRUCTURED-DATA carries the record's position in the audit chain so a
  collector can drop the repeats an at-least-once sender may produce
  (`hub.audit.export`). The SD-ID is of the private form name@PEN
  (RFC 5424 7.2.2); 32473 is the enterprise number IANA reserves for
  documentation (RFC 5612);
- MSG is the XML in UTF-8, preceded by the byte order mark RFC 5424 6.4
  prescribes for a UTF-8 MSG.

On the wire every message is framed as ``MSG-LEN SP SYSLOG-MSG``
(RFC 5425 4.3, octet counting): `frame` writes it, `parse_frames` reads it
back (the test receivers use it, and so can a collector).
"""

from __future__ import annotations

from datetime import UTC, datetime

from hub.audit.tables import AuditRecord
from hub.clock import as_utc

FACILITY_AUTHPRIV = 10          # RFC 5424 6.2.1, Table 1: security/authorization messages
SEVERITY_NOTICE = 5             # normal but significant condition
SEVERITY_WARNING = 4
VERSION = "1"                   # RFC 5424 6.2.2
APP_NAME = "xdshub"
PROCID = "-"
MSGID = "IHE+RFC-3881"          # ITI TF-2 3.20.6
SD_ID = "xdshub@32473"          # RFC 5424 7.2.2 private SD-ID; 32473: RFC 5612 documentation PEN
BOM = b"\xef\xbb\xbf"           # RFC 5424 6.4: a UTF-8 MSG starts with the BOM
NILVALUE = "-"

MAX_HOSTNAME = 255              # RFC 5424 6.2.4
MAX_LENGTH_DIGITS = 10          # a MSG-LEN longer than this is not a frame any receiver would accept


class FramingError(ValueError):
    """The bytes received are not octet-counted syslog frames (RFC 5425 4.3)."""


def priority(outcome: int) -> int:
    """PRI value (RFC 5424 6.2.1): authpriv, notice for success (outcome 0), warning otherwise."""
    severity = SEVERITY_NOTICE if outcome == 0 else SEVERITY_WARNING
    return FACILITY_AUTHPRIV * 8 + severity


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds, e.g. 2024-05-01T10:17:39.575123Z (RFC 5424 6.2.3).

    SQLite gives timestamps back without their zone: they were written in UTC.
    """
    stamp = as_utc(moment)
    return stamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_hostname(hostname: str) -> str:
    """The HOSTNAME header field: 1 to 255 printable US-ASCII characters, or the NILVALUE when empty."""
    if not hostname:
        return NILVALUE
    if len(hostname) > MAX_HOSTNAME or any(not 33 <= ord(c) <= 126 for c in hostname):
        raise ValueError(f"{hostname!r} cannot be a syslog HOSTNAME (RFC 5424 6.2.4: 1*255 PRINTUSASCII)")
    return hostname


def escape_param_value(value: str) -> str:
    """PARAM-VALUE escaping (RFC 5424 6.3.3): backslash before '"', '\\' and ']'."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def structured_data(seq: int) -> str:
    """The SD element carrying the record's seq, e.g. ``[xdshub@32473 seq="123"]``."""
    return f'[{SD_ID} seq="{escape_param_value(str(seq))}"]'


def format_message(record: AuditRecord, hostname: str) -> bytes:
    """One SYSLOG-MSG (RFC 5424 6) for an audit record, as ITI-20 prescribes (unframed)."""
    header = " ".join((f"<{priority(record.outcome)}>{VERSION}", timestamp(record.recorded_at),
                       check_hostname(hostname), APP_NAME, PROCID, MSGID))
    return f"{header} {structured_data(record.seq)} ".encode("ascii") + BOM + record.message.encode("utf-8")


def frame(message: bytes) -> bytes:
    """Octet-counting framing (RFC 5425 4.3): ``MSG-LEN SP SYSLOG-MSG``."""
    return str(len(message)).encode("ascii") + b" " + message


def parse_frames(buffer: bytes) -> tuple[list[bytes], bytes]:
    """The complete frames at the start of `buffer` and what remains (an incomplete frame, or nothing).

    Raises FramingError when the buffer does not start with ``NONZERO-DIGIT *DIGIT SP``.
    """
    messages: list[bytes] = []
    position = 0
    while position < len(buffer):
        space = buffer.find(b" ", position, position + MAX_LENGTH_DIGITS + 1)
        if space < 0:
            digits = buffer[position:position + MAX_LENGTH_DIGITS + 1]
            if len(digits) > MAX_LENGTH_DIGITS or not digits.isdigit() or digits.startswith(b"0"):
                raise FramingError(f"no MSG-LEN at offset {position}: {digits[:16]!r}")
            break                                   # the length itself is still arriving
        digits = buffer[position:space]
        if not digits.isdigit() or digits.startswith(b"0"):
            raise FramingError(f"bad MSG-LEN at offset {position}: {digits[:16]!r}")
        end = space + 1 + int(digits)
        if end > len(buffer):
            break
        messages.append(buffer[space + 1:end])
        position = end
    return messages, buffer[position:]
