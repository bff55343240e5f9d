"""``python -m sharedctx``: the command line (see ``sharedctx --help``)."""

from sharedctx._cli import main

raise SystemExit(main())
