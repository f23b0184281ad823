"""Federation: patient identity across organisations, repositories elsewhere in the affinity domain, and
other communities (XCA peers)."""
