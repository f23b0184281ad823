"""Share links and the viewer they open, and the EMR launch (IHE Invoke Image Display).

`tables` the links and their visits, `links` what a link allows (tokens,
passcodes, uses, expiry, revocation), `content` what a link shows,
`api` `/api/shares` for organisations, `viewer` `/s/<token>` for the
person who got the link, `launch` `/IHEInvokeImageDisplay` for clinicians.
"""
