"""Audit trail of the hub: DICOM PS3.15 A.5 audit messages (IHE ITI ATNA), recorded in a hash chain."""
