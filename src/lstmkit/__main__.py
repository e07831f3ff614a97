"""`python -m lstmkit` runs the command line."""

from lstmkit.cli import main

raise SystemExit(main())
