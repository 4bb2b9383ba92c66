from trainboard.cli import main

raise SystemExit(main())
