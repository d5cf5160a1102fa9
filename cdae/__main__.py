from cdae.cli import main

raise SystemExit(main())
