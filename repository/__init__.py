"""The XDS document repository and imaging document source (ITI-41/43, RAD-68/69).

Empty until the repository issue: the registry (issue 2) is the foundation it builds on.
"""
