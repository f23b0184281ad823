"""The XDS.b document registry: ebRIM model, codec, validation, ITI-42 and ITI-18."""
