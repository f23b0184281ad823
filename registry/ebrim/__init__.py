"""The ebRIM / ebRS 3.0 XML codec of the registry: the only registry module importing lxml.

`parse_*` turn request bodies into `registry.model` objects, `render_*` turn
model objects into response (or, client side, request) elements. See
`registry.ebrim.parse` and `registry.ebrim.render`; ITI TF-3 4.2 (metadata),
ITI TF-2a 3.18 and ITI TF-2b 3.42 (messages).
"""

from __future__ import annotations

from registry.ebrim.parse import (
    parse_adhoc_query_request,
    parse_object_list,
    parse_registry_object,
    parse_submit_objects_request,
)
from registry.ebrim.render import (
    render_adhoc_query_request,
    render_adhoc_query_response,
    render_objects,
    render_registry_response,
    render_submit_objects_request,
)

__all__ = [
    "parse_adhoc_query_request",
    "parse_object_list",
    "parse_registry_object",
    "parse_submit_objects_request",
    "render_adhoc_query_request",
    "render_adhoc_query_response",
    "render_objects",
    "render_registry_response",
    "render_submit_objects_request",
]
