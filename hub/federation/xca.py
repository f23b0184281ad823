"""XCA and XCA-I on the wire: the SOAP actions and the paths both gateways use.

ITI TF-2b 3.38.4.1.2 and 3.39.4.1.2, RAD TF-3 4.75; shared/schemas/wsdl/XCARespondingGateway*.wsdl and
rad75.wsdl. The RAD-75 answer is an xdsb:RetrieveDocumentSetResponse under its own action.
"""

from __future__ import annotations

ACTION_CROSS_GATEWAY_QUERY = "urn:ihe:iti:2007:CrossGatewayQuery"
ACTION_CROSS_GATEWAY_QUERY_RESPONSE = "urn:ihe:iti:2007:CrossGatewayQueryResponse"
ACTION_CROSS_GATEWAY_RETRIEVE = "urn:ihe:iti:2007:CrossGatewayRetrieve"
ACTION_CROSS_GATEWAY_RETRIEVE_RESPONSE = "urn:ihe:iti:2007:CrossGatewayRetrieveResponse"
ACTION_CROSS_GATEWAY_RETRIEVE_IMAGING = "urn:ihe:rad:2011:CrossGatewayRetrieveImagingDocumentSet"
ACTION_CROSS_GATEWAY_RETRIEVE_IMAGING_RESPONSE = "urn:ihe:rad:2011:CrossGatewayRetrieveImagingDocumentSetResponse"

QUERY_PATH = "/xca/query"
RETRIEVE_PATH = "/xca/retrieve"
