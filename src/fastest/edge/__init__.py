"""The Worker's HTTP edges: what `src/entry.py` serves around the ASGI app (blob bodies streamed
between the client and R2, a conversation's live streams handed to its Durable Object).

They stand beside the entry, above the app: they call `api` helpers and `services` as the app's
routes do, and reach the runtime only through `platform.cloudflare` (the only package, with
`src/entry.py` and `durable_objects/cloudflare.py`, that imports `js`/`workers`).
"""
