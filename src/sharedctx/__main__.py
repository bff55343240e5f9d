"""``python -m sharedctx``: the command line (see ``sharedctx --help``)."""

from sharedctx.cli import main

raise SystemExit(main())
