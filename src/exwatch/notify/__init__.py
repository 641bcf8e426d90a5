"""Notifying the owners of vulnerable or compromised hosts, and tracking what they fix.

    contacts.py     who gets told (contacts file, constituency, security.txt, opt-out)
    hosts.py        which hosts of a scan have findings (never Exchange Online or suspect)
    remedy.py       what to install, patch lag and CVE facts, from the catalogue
    plan.py         dedup, reminders, escalation, rate limits: who gets which message
    render.py       Jinja2 templates per language (nl, fr, de, en; overridable)
    message.py      the RFC 5322 message: parts, CSV attachment, headers that survive
    escaping.py     server strings made safe for headers, text and HTML
    ledger.py       messages, items and cases in the store; crash-safe states
    cases.py        cases follow later scans: still vulnerable, fixed at, days to fix
    securitytxt.py  RFC 9116 files, fetched under the scanner's rules
    run.py          one run, dry or sending

Nothing here opens a socket: SMTP and HTTPS go through `exwatch.net`.  docs/notify.md
describes the files, the tables and the message context.
"""
