"""Registry transactions, one module per IHE transaction (ITI-42 register, ITI-18 query)."""
