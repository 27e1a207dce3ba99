from edge_anpr.cli import main

raise SystemExit(main())
