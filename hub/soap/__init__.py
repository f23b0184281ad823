"""SOAP 1.2 with WS-Addressing and MTOM/XOP: the hub's SOAP codec and its one fault mapper."""
