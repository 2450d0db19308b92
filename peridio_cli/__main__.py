from peridio_cli.main import main

raise SystemExit(main())
