"""The `nsync-bench` command line: thin verbs over library functions (`app.py` holds the app and what
every command shares, `main.py` assembles the verbs; Rich output lives only in this package)."""
